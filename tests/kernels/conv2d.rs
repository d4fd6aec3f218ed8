//! Conv2d: every pass on the GPU, in both kernel variants (software and tiled), against the CPU
//! reference on ragged shapes, gradient checks of the reference against finite differences, and
//! determinism.

use std::sync::Arc;

use crate::common::*;
use wgcnn::gpu::Gpu;
use wgcnn::gpu::ops::conv2d;
use wgcnn::reference;
use wgcnn::shape::{Conv2dShape, Padding};

#[allow(clippy::too_many_arguments)] // every field of the shape, in reading order
fn shape(
    batch: usize,
    in_c: usize,
    h: usize,
    w: usize,
    out_c: usize,
    k: usize,
    stride: usize,
    padding: Padding,
) -> Conv2dShape {
    Conv2dShape {
        batch,
        in_channels: in_c,
        in_h: h,
        in_w: w,
        out_channels: out_c,
        kernel_h: k,
        kernel_w: k,
        stride,
        padding,
    }
}

/// Ragged shapes: batch 1 and 3; channels 1, 3, 5; odd sizes; stride 1 and 2; both paddings;
/// more output channels than one 8-row tile (11) and a kernel larger than 3. For the tiled
/// kernels: channel counts that fill none of their 16-, 32- or 64-row tiles (20, 40), filters of
/// a multiple of 4 values (48, 36, 72: the forward pass's vec4 loads) and of other counts (the
/// scalar loads), output pixels of a multiple of 4 (64: the weight gradient's vec4 loads) and not.
pub fn ragged_shapes() -> Vec<Conv2dShape> {
    use Padding::*;
    vec![
        shape(1, 1, 7, 9, 1, 3, 1, Valid),
        shape(3, 3, 7, 9, 5, 3, 1, Same),
        shape(3, 5, 31, 33, 11, 3, 2, Valid),
        shape(1, 3, 31, 33, 5, 3, 2, Same),
        shape(3, 1, 8, 8, 3, 5, 2, Same),
        shape(1, 5, 9, 7, 16, 1, 1, Valid),
        shape(3, 3, 10, 12, 4, 4, 3, Same),
        shape(2, 4, 9, 11, 20, 3, 1, Same),
        shape(2, 8, 8, 8, 40, 3, 1, Same),
    ]
}

/// Long sums of products: the GPU's fma order differs from the CPU's (and the tiled kernels add in
/// 16-deep slices), so allow a few ulps of the largest terms (inputs in [-1, 1], at most
/// 8*3*3 = 72 terms per output of the forward pass).
const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;

#[test]
fn forward_matches_cpu() {
    for (gpu, i, s) in each_variant_and_shape() {
        for relu in [false, true] {
            let x = random(10 + i as u64, s.input_dims().iter().product(), -1.0, 1.0);
            let w = random(20 + i as u64, s.weight_dims().iter().product(), -1.0, 1.0);
            let b = random(30 + i as u64, s.out_channels, -1.0, 1.0);
            let (xg, wg, bg) = (
                upload(&gpu, "x", &s.input_dims(), &x),
                upload(&gpu, "w", &s.weight_dims(), &w),
                upload(&gpu, "b", &[s.out_channels], &b),
            );
            let yg = zeros(&gpu, "y", &s.output_dims());
            gpu.run(&conv2d::forward(&gpu, &s, &xg, &wg, &bg, &yg, relu).unwrap().iter().collect::<Vec<_>>()).unwrap();
            let want = reference::conv2d::forward(&s, &x, &w, &b, relu);
            let what = format!("{} conv2d forward {s:?} relu={relu}", gpu.kernels);
            assert_close(&what, &download(&gpu, &yg), &want, ATOL, RTOL);
        }
    }
}

/// Every (GPU context, shape index, shape): each ragged shape in each kernel variant.
fn each_variant_and_shape() -> Vec<(Arc<Gpu>, usize, Conv2dShape)> {
    gpus()
        .into_iter()
        .flat_map(|gpu| ragged_shapes().into_iter().enumerate().map(move |(i, s)| (gpu.clone(), i, s)))
        .collect()
}

#[test]
fn backward_matches_cpu() {
    for (gpu, i, s) in each_variant_and_shape() {
        let x = random(40 + i as u64, s.input_dims().iter().product(), -1.0, 1.0);
        let w = random(50 + i as u64, s.weight_dims().iter().product(), -1.0, 1.0);
        let dy = random(60 + i as u64, s.output_dims().iter().product(), -1.0, 1.0);
        let (xg, wg, dyg) = (
            upload(&gpu, "x", &s.input_dims(), &x),
            upload(&gpu, "w", &s.weight_dims(), &w),
            upload(&gpu, "dy", &s.output_dims(), &dy),
        );
        let (dxg, dwg, dbg) = (
            zeros(&gpu, "dx", &s.input_dims()),
            zeros(&gpu, "dw", &s.weight_dims()),
            zeros(&gpu, "db", &[s.out_channels]),
        );
        let mut dispatches = conv2d::backward_input(&gpu, &s, &dyg, &wg, &dxg).unwrap();
        dispatches.extend(conv2d::backward_weight(&gpu, &s, &xg, &dyg, &dwg, &dbg).unwrap());
        gpu.run(&dispatches.iter().collect::<Vec<_>>()).unwrap();
        let (dx, dw, db) = reference::conv2d::backward(&s, &x, &w, &dy);
        let kernels = gpu.kernels;
        // dx sums up to 40*3*3 = 360 products, dw and db over batch * out_h * out_w (up to
        // 3*16*17 = 816) in another order (split chunks, then the chunks): relative error grows
        // with the count.
        assert_close(&format!("{kernels} conv2d dx {s:?}"), &download(&gpu, &dxg), &dx, 1e-4, 1e-4);
        assert_close(&format!("{kernels} conv2d dw {s:?}"), &download(&gpu, &dwg), &dw, 1e-4, 1e-4);
        assert_close(&format!("{kernels} conv2d db {s:?}"), &download(&gpu, &dbg), &db, 1e-4, 1e-4);
    }
}

#[test]
fn gradients_match_finite_differences() {
    for s in [
        shape(2, 3, 5, 6, 2, 3, 1, Padding::Same),
        shape(1, 2, 7, 6, 3, 3, 2, Padding::Valid),
        shape(2, 1, 6, 5, 2, 2, 2, Padding::Same),
    ] {
        let x = random_f64(1, s.input_dims().iter().product(), -1.0, 1.0);
        let w = random_f64(2, s.weight_dims().iter().product(), -1.0, 1.0);
        let b = random_f64(3, s.out_channels, -1.0, 1.0);
        let r = random_f64(4, s.output_dims().iter().product(), -1.0, 1.0);
        let (dx, dw, db) = reference::conv2d::backward(&s, &x, &w, &r);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| weighted_sum(&reference::conv2d::forward(&s, x, w, b, false), &r);
        check_gradient(&format!("conv2d dx {s:?}"), &x, &dx, |x| loss(x, &w, &b), 1e-6, 1e-6);
        check_gradient(&format!("conv2d dw {s:?}"), &w, &dw, |w| loss(&x, w, &b), 1e-6, 1e-6);
        check_gradient(&format!("conv2d db {s:?}"), &b, &db, |b| loss(&x, &w, b), 1e-6, 1e-6);
    }
}

#[test]
fn every_pass_is_deterministic() {
    for gpu in gpus() {
        passes_are_deterministic(gpu);
    }
}

fn passes_are_deterministic(gpu: Arc<Gpu>) {
    let s = shape(3, 5, 31, 33, 11, 3, 1, Padding::Same);
    let x = upload(&gpu, "x", &s.input_dims(), &random(70, s.input_dims().iter().product(), -1.0, 1.0));
    let w = upload(&gpu, "w", &s.weight_dims(), &random(71, s.weight_dims().iter().product(), -1.0, 1.0));
    let b = upload(&gpu, "b", &[s.out_channels], &random(72, s.out_channels, -1.0, 1.0));
    let dy = upload(&gpu, "dy", &s.output_dims(), &random(73, s.output_dims().iter().product(), -1.0, 1.0));
    let run = || {
        let (y, dx, dw, db) = (
            zeros(&gpu, "y", &s.output_dims()),
            zeros(&gpu, "dx", &s.input_dims()),
            zeros(&gpu, "dw", &s.weight_dims()),
            zeros(&gpu, "db", &[s.out_channels]),
        );
        let mut d = conv2d::forward(&gpu, &s, &x, &w, &b, &y, true).unwrap();
        d.extend(conv2d::backward_input(&gpu, &s, &dy, &w, &dx).unwrap());
        d.extend(conv2d::backward_weight(&gpu, &s, &x, &dy, &dw, &db).unwrap());
        gpu.run(&d.iter().collect::<Vec<_>>()).unwrap();
        [&y, &dx, &dw, &db].map(|t| download(&gpu, t))
    };
    let (first, second) = (run(), run());
    for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(first.iter().zip(&second)) {
        assert_bits_equal(&format!("{} conv2d {name}", gpu.kernels), a, b);
    }
}

#[test]
fn bad_shapes_are_errors() {
    for gpu in gpus() {
        bad_shapes_fail(gpu);
    }
}

fn bad_shapes_fail(gpu: Arc<Gpu>) {
    let s = shape(1, 3, 7, 9, 4, 3, 1, Padding::Valid);
    let x = zeros(&gpu, "x", &s.input_dims());
    let w = zeros(&gpu, "w", &[4, 3, 3, 2]);
    let b = zeros(&gpu, "b", &[4]);
    let y = zeros(&gpu, "y", &s.output_dims());
    let err = conv2d::forward(&gpu, &s, &x, &w, &b, &y, false).unwrap_err().to_string();
    assert!(err.contains("conv2d weight"), "{err}");
    let too_big = shape(1, 3, 2, 2, 4, 3, 1, Padding::Valid);
    assert!(conv2d::forward(&gpu, &too_big, &x, &w, &b, &y, false).unwrap_err().to_string().contains("does not fit"));
}

//! Max-pooling 2-D: GPU against the CPU reference (values, argmax, gradient), the gradient against
//! finite differences, ties, NaN, determinism and bad shapes.

use crate::common::*;
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use wgcnn::gpu::ops::max_pool2d;
use wgcnn::gpu::{Gpu, GpuTensor};
use wgcnn::reference::max_pool2d as cpu_pool;
use wgcnn::shape::Pool2dShape;

fn shape(batch: usize, channels: usize, in_h: usize, in_w: usize, pool: usize, stride: usize) -> Pool2dShape {
    Pool2dShape { batch, channels, in_h, in_w, pool, stride }
}

/// What the GPU computed for one shape: y, argmax and dx.
struct GpuPool {
    y: Vec<f32>,
    argmax: Vec<u32>,
    dx: Vec<f32>,
    /// The backward pass fused with a ReLU's before the pool.
    dx_relu: Vec<f32>,
}

/// Runs forward then backward (with `dy`) on the GPU in one submit.
fn run_gpu(gpu: &Gpu, s: &Pool2dShape, x: &[f32], dy: &[f32]) -> GpuPool {
    let x = upload(gpu, "x", &s.input_dims(), x);
    let y = zeros(gpu, "y", &s.output_dims());
    let argmax = zeros(gpu, "argmax", &s.output_dims());
    let dy = upload(gpu, "dy", &s.output_dims(), dy);
    let dx = zeros(gpu, "dx", &s.input_dims());
    let dx_relu = zeros(gpu, "dx_relu", &s.input_dims());
    let fwd = max_pool2d::forward(gpu, s, &x, &y, &argmax).unwrap();
    let bwd = max_pool2d::backward(gpu, s, &argmax, &y, &dy, &dx, false).unwrap();
    let bwd_relu = max_pool2d::backward(gpu, s, &argmax, &y, &dy, &dx_relu, true).unwrap();
    gpu.run(&[&fwd, &bwd, &bwd_relu]).unwrap();
    GpuPool {
        y: download(gpu, &y),
        argmax: argmax.read(gpu).unwrap(),
        dx: download(gpu, &dx),
        dx_relu: download(gpu, &dx_relu),
    }
}

/// Compares the GPU with the CPU reference on `x`, exactly: max and the argmax do no arithmetic,
/// and the gather adds the same dy values in the same order as the CPU's loop over the outputs.
fn assert_gpu_matches_cpu(gpu: &Gpu, s: &Pool2dShape, x: &[f32], seed: u64) {
    let out_len: usize = s.output_dims().iter().product();
    let dy = random(seed, out_len, -1.0, 1.0);
    let got = run_gpu(gpu, s, x, &dy);
    let (y, argmax) = cpu_pool::forward(s, x).unwrap();
    let dx = cpu_pool::backward(s, &argmax, &dy).unwrap();
    assert_close(&format!("forward {s:?}"), &got.y, &y, 0.0, 0.0);
    assert_eq!(got.argmax, argmax, "argmax {s:?}");
    assert_close(&format!("backward {s:?}"), &got.dx, &dx, 0.0, 0.0);
    let dx_relu = cpu_pool::backward_relu(s, &argmax, &y, &dy).unwrap();
    assert_close(&format!("backward with ReLU mask {s:?}"), &got.dx_relu, &dx_relu, 0.0, 0.0);
    // The fused pass equals a ReLU backward over the pool's input followed by the pool backward.
    let unfused = cpu_pool::backward(s, &argmax, &relu_backward_at(&argmax, x, &dy)).unwrap();
    assert_eq!(dx_relu, unfused, "fused ReLU mask {s:?}");
}

/// dy masked as a ReLU's backward pass over the pool's input would mask it at each chosen element.
fn relu_backward_at(argmax: &[u32], x: &[f32], dy: &[f32]) -> Vec<f32> {
    argmax.iter().zip(dy).map(|(&at, &g)| if x[at as usize] > 0.0 { g } else { 0.0 }).collect()
}

#[test]
fn max_pool2d_forward_backward_match_cpu() {
    let gpu = gpu();
    let shapes = [
        shape(1, 1, 7, 9, 2, 2),
        shape(3, 3, 7, 9, 2, 2),
        shape(3, 5, 31, 33, 2, 2),
        // Overlapping windows: an input can be chosen by up to four windows.
        shape(1, 3, 31, 33, 3, 2),
        shape(3, 5, 7, 9, 3, 2),
        // Stride over pool: gaps no window covers get no gradient.
        shape(1, 5, 31, 33, 2, 3),
        shape(3, 1, 7, 9, 2, 3),
        // A window as tall as the input, over long rows.
        shape(1, 3, 5, 601, 5, 1),
        // Over 65535 workgroups of 256 both ways (4099^2 outputs), so the grid wraps into y.
        shape(1, 1, 4100, 4100, 2, 1),
    ];
    for (i, s) in shapes.iter().enumerate() {
        let x = random(i as u64, s.input_dims().iter().product(), -1.0, 1.0);
        assert_gpu_matches_cpu(&gpu, s, &x, 100 + i as u64);
    }
}

/// `n` distinct values a fixed step apart, shuffled: no ties, and a finite-difference step far below
/// the spacing never changes which element wins.
fn distinct_f64(seed: u64, n: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.01 - 1.0).collect();
    v.shuffle(&mut StdRng::seed_from_u64(seed));
    v
}

#[test]
fn max_pool2d_gradient_matches_finite_differences() {
    for s in [shape(2, 3, 7, 9, 2, 2), shape(1, 2, 7, 9, 3, 2), shape(2, 1, 8, 9, 2, 3)] {
        let x = distinct_f64(7, s.input_dims().iter().product());
        let r = random_f64(8, s.output_dims().iter().product(), -1.0, 1.0);
        let (_, argmax) = cpu_pool::forward(&s, &x).unwrap();
        let dx = cpu_pool::backward(&s, &argmax, &r).unwrap();
        check_gradient(
            &format!("max_pool2d dx {s:?}"),
            &x,
            &dx,
            |x| weighted_sum(&cpu_pool::forward(&s, x).unwrap().0, &r),
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn max_pool2d_equal_window_chooses_its_top_left_element() {
    let gpu = gpu();
    for s in [shape(1, 2, 7, 9, 2, 2), shape(3, 1, 7, 9, 3, 2)] {
        let x = vec![0.5; s.input_dims().iter().product()];
        let dy = random(3, s.output_dims().iter().product(), 1.0, 2.0);
        let got = run_gpu(&gpu, &s, &x, &dy);
        let (in_h, in_w, out_h, out_w) = (s.in_h, s.in_w, s.out_h(), s.out_w());
        let mut top_left = Vec::new();
        let mut dx = vec![0.0; x.len()];
        for plane in 0..s.batch * s.channels {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let at = (plane * in_h + oy * s.stride) * in_w + ox * s.stride;
                    top_left.push(at as u32);
                    dx[at] = dy[(plane * out_h + oy) * out_w + ox];
                }
            }
        }
        assert_eq!(got.argmax, top_left, "argmax {s:?}");
        assert_eq!(cpu_pool::forward(&s, &x).unwrap().1, top_left);
        assert_close(&format!("dx {s:?}"), &got.dx, &dx, 0.0, 0.0);
    }
}

#[test]
fn max_pool2d_propagates_the_first_nan_and_handles_infinities() {
    let gpu = gpu();
    let s = shape(1, 1, 4, 6, 2, 2);
    let mut x = random(5, 24, -1.0, 1.0);
    // Window (0, 0): a NaN after the maximum still wins; window (0, 1): the first of two NaNs.
    x[1] = 9.0;
    x[7] = f32::NAN;
    x[3] = f32::NAN;
    x[8] = -f32::NAN;
    // Window (1, 0): all -inf; window (1, 1): +inf after a finite maximum.
    for at in [12, 13, 18, 19] {
        x[at] = f32::NEG_INFINITY;
    }
    x[21] = f32::INFINITY;
    let (y, argmax) = cpu_pool::forward(&s, &x).unwrap();
    let chosen = [argmax[0], argmax[1], argmax[3], argmax[4]];
    assert_eq!(chosen, [7, 3, 12, 21], "cpu argmax");
    assert!(y[0].is_nan() && y[1].is_nan() && y[3] == f32::NEG_INFINITY);
    let dy = random(6, 6, -1.0, 1.0);
    let got = run_gpu(&gpu, &s, &x, &dy);
    assert_eq!(got.argmax, argmax, "gpu argmax");
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got.y), bits(&y), "gpu y");
    let dx = cpu_pool::backward(&s, &argmax, &dy).unwrap();
    assert_close("gpu dx", &got.dx, &dx, 0.0, 0.0);
}

#[test]
fn max_pool2d_is_deterministic() {
    let gpu = gpu();
    let s = shape(3, 5, 31, 33, 3, 2);
    let x = random(11, s.input_dims().iter().product(), -1.0, 1.0);
    let dy = random(12, s.output_dims().iter().product(), -1.0, 1.0);
    let (a, b) = (run_gpu(&gpu, &s, &x, &dy), run_gpu(&gpu, &s, &x, &dy));
    assert_bits_equal("forward", &a.y, &b.y);
    assert_eq!(a.argmax, b.argmax, "argmax");
    assert_bits_equal("backward", &a.dx, &b.dx);
}

#[test]
fn max_pool2d_rejects_bad_shapes() {
    let gpu = gpu();
    let t = |dims: &[usize]| zeros(&gpu, "t", dims);
    // A window larger than the input.
    let big = shape(1, 1, 3, 5, 4, 1);
    let x = t(&big.input_dims());
    let out = t(&[1, 1, 1, 1]);
    assert!(max_pool2d::forward(&gpu, &big, &x, &out, &out).is_err());
    assert!(max_pool2d::backward(&gpu, &big, &out, &out, &out, &x, false).is_err());
    assert!(cpu_pool::forward(&big, &[0.0f32; 15]).is_err());
    // A zero stride.
    assert!(cpu_pool::forward(&shape(1, 1, 4, 4, 2, 0), &[0.0f32; 16]).is_err());
    // Tensors that do not match the shape.
    let s = shape(1, 2, 6, 6, 2, 2);
    let (x, y, dx): (GpuTensor, GpuTensor, GpuTensor) = (t(&s.input_dims()), t(&s.output_dims()), t(&s.input_dims()));
    let wrong = t(&[1, 2, 3, 4]);
    assert!(max_pool2d::forward(&gpu, &s, &wrong, &y, &y).is_err());
    assert!(max_pool2d::forward(&gpu, &s, &x, &y, &wrong).is_err());
    assert!(max_pool2d::backward(&gpu, &s, &y, &y, &wrong, &dx, false).is_err());
    assert!(max_pool2d::backward(&gpu, &s, &y, &y, &y, &wrong, true).is_err());
    assert!(max_pool2d::backward(&gpu, &s, &y, &wrong, &y, &dx, true).is_err());
    assert!(cpu_pool::forward(&s, &[0.0f32; 5]).is_err());
    assert!(cpu_pool::backward(&s, &[0; 18], &[0.0f32; 17]).is_err());
    // An argmax pointing outside the input.
    assert!(cpu_pool::backward(&s, &[1000; 18], &[0.0f32; 18]).is_err());
}

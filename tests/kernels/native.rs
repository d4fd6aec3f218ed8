//! The native CPU backend's ops against the CPU reference on ragged shapes (the GPU tests' ones,
//! plus shapes spanning several im2col tiles and several backward task groups), and their bits
//! with one thread against two.

use crate::common::*;
use wgcnn::native::conv2d::OutputGradient;
use wgcnn::native::{batch_norm, conv_pool, conv2d, dense, elementwise, max_pool2d};
use wgcnn::reference;
use wgcnn::shape::{
    AdamConfig, BatchNormConfig, BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Padding, Pool2dShape,
};

/// The GEMM sums in another order than the reference's loops (blocked, with fused multiply-adds):
/// a few ulps of the largest terms; inputs in [-1, 1].
const ATOL: f32 = 1e-5;
const RTOL: f32 = 1e-4;
/// Weight gradients sum over batch x pixels (up to 5 x 15876 terms here).
const GRAD_ATOL: f32 = 2e-4;

/// `f` on a pool of `threads` threads.
fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool").install(f)
}

fn conv_shapes() -> Vec<Conv2dShape> {
    let mut shapes = crate::conv2d::ragged_shapes();
    // Output pixels over one im2col tile (256K values / 27 taps = 9709 pixels), and 5 images: two
    // backward task groups, the second short.
    let big = |batch, in_channels, size, padding| Conv2dShape {
        batch,
        in_channels,
        in_h: size,
        in_w: size,
        out_channels: 7,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding,
    };
    shapes.push(big(5, 3, 128, Padding::Valid));
    // A 5x5 `same` kernel (two padding columns) on a 10484-wide image: 25 taps make tiles of
    // 10485 pixels, so the first tile ends one pixel into output row 1, whose taps of kernel row 1
    // read input row 0: a run of padding only at the very start of the input.
    shapes.push(Conv2dShape { in_h: 3, in_w: 10484, kernel_h: 5, kernel_w: 5, ..big(1, 1, 4, Padding::Same) });
    // Fewer output pixels than the smallest tile (2x2).
    shapes.push(Conv2dShape { in_h: 4, in_w: 4, ..big(2, 2, 4, Padding::Valid) });
    shapes.push(big(2, 1, 130, Padding::Same));
    shapes
}

#[test]
fn conv2d_matches_the_reference() {
    for (i, s) in conv_shapes().into_iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = random(seed, s.input_dims().iter().product(), -1.0, 1.0);
        let w = random(seed + 1, s.weight_dims().iter().product(), -1.0, 1.0);
        let b = random(seed + 2, s.out_channels, -1.0, 1.0);
        let dy = random(seed + 3, s.output_dims().iter().product(), -1.0, 1.0);
        for relu in [false, true] {
            let mut y = vec![f32::NAN; dy.len()];
            conv2d::forward(&s, &x, &w, &b, relu, &mut y);
            let want = reference::conv2d::forward(&s, &x, &w, &b, relu);
            assert_close(&format!("conv2d forward {s:?} relu {relu}"), &y, &want, ATOL, RTOL);
        }
        let (want_dx, _, _) = reference::conv2d::backward(&s, &x, &w, &dy);
        // The weight gradient sums batch x pixels terms: held to the reference in f64, as the
        // reference's own f32 running sum drifts further than the GEMM's blocked one.
        let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
        let (_, want_dw, want_db) = reference::conv2d::backward(&s, &wide(&x), &wide(&w), &wide(&dy));
        let (want_dw, want_db) = (narrow(want_dw), narrow(want_db));
        // Buffers start as NaN: every element must be written.
        let (mut dx, mut dw, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
        conv2d::backward(&s, &x, &w, OutputGradient::Given(&dy), Some(&mut dx), Some((&mut dw, &mut db)))
            .expect("a given gradient");
        assert_close(&format!("conv2d dx {s:?}"), &dx, &want_dx, ATOL, RTOL);
        assert_close(&format!("conv2d dw {s:?}"), &dw, &want_dw, GRAD_ATOL, RTOL);
        assert_close(&format!("conv2d db {s:?}"), &db, &want_db, GRAD_ATOL, RTOL);
        // Each part on its own gives the same bits as both together.
        let mut dx_only = vec![f32::NAN; x.len()];
        conv2d::backward(&s, &x, &w, OutputGradient::Given(&dy), Some(&mut dx_only), None).expect("a given gradient");
        assert_bits_equal("conv2d dx alone", &dx_only, &dx);
        let (mut dw_only, mut db_only) = (vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
        conv2d::backward(&s, &x, &w, OutputGradient::Given(&dy), None, Some((&mut dw_only, &mut db_only)))
            .expect("a given gradient");
        assert_bits_equal("conv2d dw alone", &dw_only, &dw);
    }
}

#[test]
fn dense_matches_the_reference() {
    for (i, &(batch, inputs, outputs)) in
        [(1, 1, 1), (3, 7, 5), (9, 300, 17), (33, 600, 3), (17, 5, 260)].iter().enumerate()
    {
        let s = DenseShape { batch, inputs, outputs };
        let seed = 200 + 10 * i as u64;
        let x = random(seed, batch * inputs, -1.0, 1.0);
        let w = random(seed + 1, inputs * outputs, -1.0, 1.0);
        let b = random(seed + 2, outputs, -1.0, 1.0);
        let dy = random(seed + 3, batch * outputs, -1.0, 1.0);
        for relu in [false, true] {
            let mut y = vec![f32::NAN; batch * outputs];
            dense::forward(&s, &x, &w, &b, relu, &mut y);
            assert_close("dense forward", &y, &reference::dense::forward(&s, &x, &w, &b, relu), ATOL, RTOL);
        }
        let mut dx = vec![f32::NAN; x.len()];
        dense::backward_input(&s, &dy, &w, &mut dx);
        assert_close("dense dx", &dx, &reference::dense::backward_input(&s, &dy, &w), ATOL, RTOL);
        let (mut dw, mut db) = (vec![f32::NAN; w.len()], vec![f32::NAN; outputs]);
        dense::backward_params(&s, &x, &dy, &mut dw, &mut db);
        assert_close("dense dw", &dw, &reference::dense::backward_weight(&s, &x, &dy), ATOL, RTOL);
        assert_close("dense db", &db, &reference::dense::backward_bias(&s, &dy), ATOL, RTOL);
    }
}

#[test]
fn max_pool2d_matches_the_reference_bit_for_bit() {
    let shapes = [(1, 1, 4, 4, 2, 2), (2, 3, 7, 9, 2, 2), (3, 2, 9, 8, 3, 2), (1, 4, 10, 11, 3, 3), (2, 2, 6, 6, 2, 1)];
    for (i, &(batch, channels, in_h, in_w, pool, stride)) in shapes.iter().enumerate() {
        let s = Pool2dShape { batch, channels, in_h, in_w, pool, stride };
        let mut x = random(300 + i as u64, batch * channels * in_h * in_w, -1.0, 1.0);
        // Ties (a window of equal values chooses its first) and a NaN (propagates).
        x[..4].fill(0.5);
        x[5] = f32::NAN;
        let (want_y, want_argmax) = reference::max_pool2d::forward(&s, &x).unwrap();
        let (mut y, mut argmax) = (vec![0.0; want_y.len()], vec![u32::MAX; want_y.len()]);
        max_pool2d::forward(&s, &x, &mut y, &mut argmax);
        assert_bits_equal(&format!("max_pool2d y {s:?}"), &y, &want_y);
        assert_eq!(argmax, want_argmax, "max_pool2d argmax {s:?}");
        let dy = random(310 + i as u64, y.len(), -1.0, 1.0);
        let mut dx = vec![f32::NAN; x.len()];
        max_pool2d::backward(&s, &argmax, None, &dy, &mut dx).unwrap();
        assert_bits_equal("max_pool2d dx", &dx, &reference::max_pool2d::backward(&s, &argmax, &dy).unwrap());
        max_pool2d::backward(&s, &argmax, Some(&y), &dy, &mut dx).unwrap();
        let want = reference::max_pool2d::backward_relu(&s, &argmax, &y, &dy).unwrap();
        assert_bits_equal("max_pool2d dx after relu", &dx, &want);
        // An argmax outside its plane is refused, not written.
        argmax[0] = u32::MAX;
        assert!(max_pool2d::backward(&s, &argmax, None, &dy, &mut dx).is_err());
    }
}

/// A 3x3 convolution of stride 1.
fn conv3x3(
    batch: usize,
    in_channels: usize,
    in_h: usize,
    in_w: usize,
    out_channels: usize,
    padding: Padding,
) -> Conv2dShape {
    Conv2dShape { batch, in_channels, in_h, in_w, out_channels, kernel_h: 3, kernel_w: 3, stride: 1, padding }
}

/// The fused convolution, ReLU and max-pool give what the two ops give one after the other, bit
/// for bit (values and argmax), with one thread and two: even and odd convolution outputs (an odd
/// one leaves a row and a column no 2x2 window covers), a 3x3 window of stride 2, a `same` kernel,
/// and an output that spans several im2col tiles.
#[test]
fn conv_relu_pool_fused_gives_the_bits_of_conv_then_pool_forward_and_backward() {
    let cases = [
        (conv3x3(2, 3, 10, 10, 4, Padding::Valid), 2, 2),
        (conv3x3(3, 2, 11, 9, 5, Padding::Valid), 2, 2),
        (conv3x3(2, 4, 9, 8, 3, Padding::Same), 3, 2),
        (conv3x3(5, 3, 130, 128, 6, Padding::Valid), 2, 2),
    ];
    for (i, (c, pool, stride)) in cases.into_iter().enumerate() {
        let p =
            Pool2dShape { batch: c.batch, channels: c.out_channels, in_h: c.out_h(), in_w: c.out_w(), pool, stride };
        let seed = 700 + 10 * i as u64;
        let x = random(seed, c.input_dims().iter().product(), -1.0, 1.0);
        let w = random(seed + 1, c.weight_dims().iter().product(), -1.0, 1.0);
        let b = random(seed + 2, c.out_channels, -1.0, 1.0);
        let mut conv_y = vec![0.0; c.output_dims().iter().product()];
        conv2d::forward(&c, &x, &w, &b, true, &mut conv_y);
        let pooled = p.output_dims().iter().product();
        let (mut want_y, mut want_argmax) = (vec![0.0; pooled], vec![0; pooled]);
        max_pool2d::forward(&p, &conv_y, &mut want_y, &mut want_argmax);
        for threads in [1, 2] {
            let (y, argmax) = with_threads(threads, || {
                let (mut y, mut argmax) = (vec![f32::NAN; pooled], vec![u32::MAX; pooled]);
                conv_pool::forward(&c, &p, &x, &w, &b, &mut y, &mut argmax);
                (y, argmax)
            });
            assert_bits_equal(&format!("fused y {c:?} {threads} threads"), &y, &want_y);
            assert_eq!(argmax, want_argmax, "fused argmax {c:?} {threads} threads");
        }
        // Backward: the pool's (with the ReLU's mask) spread image by image inside the convolution's.
        let dy = random(seed + 3, pooled, -1.0, 1.0);
        let mut conv_dy = vec![0.0; conv_y.len()];
        max_pool2d::backward(&p, &want_argmax, Some(&want_y), &dy, &mut conv_dy).unwrap();
        let pool_dy = OutputGradient::Pooled { pool: &p, argmax: &want_argmax, y: &want_y, dy: &dy };
        for algorithm in [conv2d::ConvAlgorithm::Im2col, conv2d::ConvAlgorithm::Winograd] {
            let run = |dy: OutputGradient| {
                let (mut dx, mut dw, mut db) =
                    (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
                conv2d::backward_with(algorithm, &c, &x, &w, dy, Some(&mut dx), Some((&mut dw, &mut db))).unwrap();
                [dx, dw, db]
            };
            let want = run(OutputGradient::Given(&conv_dy));
            for threads in [1, 2] {
                let got = with_threads(threads, || run(pool_dy));
                for (what, (got, want)) in ["dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
                    assert_bits_equal(&format!("fused {what} {algorithm:?} {c:?} {threads} threads"), got, want);
                }
            }
        }
        // An argmax outside its window is an error, not a panic or a wrong gradient.
        let mut bad_argmax = want_argmax.clone();
        bad_argmax[pooled - 1] = u32::MAX;
        let bad = OutputGradient::Pooled { pool: &p, argmax: &bad_argmax, y: &want_y, dy: &dy };
        let mut dx = vec![0.0; x.len()];
        let err = conv2d::backward(&c, &x, &w, bad, Some(&mut dx), None).unwrap_err();
        assert!(err.to_string().contains("argmax"), "{err}");
    }
}

#[test]
fn elementwise_ops_match_the_reference_bit_for_bit() {
    let n = 40_000; // several chunks of 16K, the last short
    let x = random(400, n, -1.0, 1.0);
    let dy = random(401, n, -1.0, 1.0);
    let mut out = vec![f32::NAN; n];
    elementwise::relu(&x, &mut out);
    assert_bits_equal("relu", &out, &reference::activation::relu(&x));
    elementwise::relu_backward(&x, &dy, &mut out);
    assert_bits_equal("relu backward", &out, &reference::activation::relu_backward(&x, &dy));
    let config = DropoutConfig { rate: 0.3, seed: 77, step: 5 };
    elementwise::dropout(&config, &x, &mut out).unwrap();
    assert_bits_equal("dropout", &out, &reference::dropout::forward(&config, &x).unwrap());
    let cfg = AdamConfig { lr: 1e-2, weight_decay: 1e-3, ..AdamConfig::default() };
    let (mut p, mut m, mut v) = (x.clone(), random(402, n, -0.1, 0.1), random(403, n, 0.0, 0.1));
    let (mut p2, mut m2, mut v2) = (p.clone(), m.clone(), v.clone());
    elementwise::adam(&cfg, 3, &mut p, &dy, &mut m, &mut v).unwrap();
    reference::adam::step(&cfg, 3, &mut p2, &dy, &mut m2, &mut v2).unwrap();
    assert_bits_equal("adam param", &p, &p2);
    assert_bits_equal("adam m", &m, &m2);
    assert_bits_equal("adam v", &v, &v2);
    assert!(elementwise::adam(&cfg, 3, &mut p, &dy[1..], &mut m, &mut v).is_err());
}

#[test]
fn batch_norm_matches_the_reference() {
    let config = BatchNormConfig::default();
    for (i, &(batch, channels, spatial)) in [(1, 1, 1), (3, 5, 31 * 33), (4, 3, 1), (2, 7, 9)].iter().enumerate() {
        let s = BatchNormShape { batch, channels, spatial };
        let seed = 500 + 10 * i as u64;
        let x = random(seed, s.len(), -1.0, 2.0);
        let dy = random(seed + 1, s.len(), -1.0, 1.0);
        let gamma = random(seed + 2, channels, 0.5, 1.5);
        let beta = random(seed + 3, channels, -0.5, 0.5);
        let (mut mean, mut var) = (random(seed + 4, channels, -0.1, 0.1), random(seed + 5, channels, 0.5, 1.5));
        let (mut mean2, mut var2) = (mean.clone(), var.clone());
        let mut y = vec![f32::NAN; s.len()];
        let stats = batch_norm::forward_train(&s, &config, &x, &gamma, &beta, &mut mean, &mut var, &mut y).unwrap();
        let (want_y, want_stats) =
            reference::batch_norm::forward_train(&s, &config, &x, &gamma, &beta, &mut mean2, &mut var2).unwrap();
        assert_close("batch norm y", &y, &want_y, ATOL, RTOL);
        assert_close("batch norm running mean", &mean, &mean2, ATOL, RTOL);
        assert_close("batch norm running var", &var, &var2, ATOL, RTOL);
        let (mut dx, mut dgamma, mut dbeta) =
            (vec![f32::NAN; s.len()], vec![f32::NAN; channels], vec![f32::NAN; channels]);
        batch_norm::backward(&s, &x, &gamma, &stats, &dy, &mut dx, &mut dgamma, &mut dbeta).unwrap();
        let want = reference::batch_norm::backward(&s, &x, &gamma, &want_stats, &dy).unwrap();
        assert_close("batch norm dx", &dx, &want.dx, 1e-4, 1e-3);
        assert_close("batch norm dgamma", &dgamma, &want.dgamma, GRAD_ATOL, RTOL);
        assert_close("batch norm dbeta", &dbeta, &want.dbeta, GRAD_ATOL, RTOL);
        batch_norm::forward_inference(&s, &config, &x, &gamma, &beta, &mean, &var, &mut y).unwrap();
        let want = reference::batch_norm::forward_inference(&s, &config, &x, &gamma, &beta, &mean, &var).unwrap();
        assert_close("batch norm inference", &y, &want, ATOL, RTOL);
        batch_norm::backward_inference(&s, &config, &gamma, &var, &dy, &mut dx).unwrap();
        let want = reference::batch_norm::backward_inference(&s, &config, &gamma, &var, &dy).unwrap();
        assert_close("batch norm inference dx", &dx, &want, ATOL, RTOL);
    }
}

#[test]
fn conv2d_and_dense_give_the_same_bits_on_one_thread_and_two() {
    let s = conv_shapes().pop().expect("shapes");
    let x = random(600, s.input_dims().iter().product(), -1.0, 1.0);
    let w = random(601, s.weight_dims().iter().product(), -1.0, 1.0);
    let b = random(602, s.out_channels, -1.0, 1.0);
    let dy = random(603, s.output_dims().iter().product(), -1.0, 1.0);
    let run = |threads| {
        with_threads(threads, || {
            let mut y = vec![0.0; dy.len()];
            conv2d::forward(&s, &x, &w, &b, true, &mut y);
            let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
            conv2d::backward(&s, &x, &w, OutputGradient::Given(&dy), Some(&mut dx), Some((&mut dw, &mut db)))
                .expect("a given gradient");
            let d = DenseShape { batch: 33, inputs: 600, outputs: 17 };
            let mut dense_dw = vec![0.0; 600 * 17];
            let mut dense_db = vec![0.0; 17];
            dense::backward_params(&d, &x[..33 * 600], &dy[..33 * 17], &mut dense_dw, &mut dense_db);
            [y, dx, dw, db, dense_dw]
        })
    };
    let (one, two) = (run(1), run(2));
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        assert_bits_equal(&format!("output {i}"), a, b);
    }
}

/// 3x3 stride-1 shapes for Winograd F(2x2, 3x3): odd and even outputs, `same` and `valid`, inputs
/// of 1x1, 2x2 and 3x3 (one tile, mostly padding), several tile blocks (a block holds 128K / (16 x
/// (in + out)) tiles), and batches of 5 and 6: two backward task groups of 4, the last short.
fn winograd_shapes() -> Vec<Conv2dShape> {
    vec![
        conv3x3(1, 1, 1, 1, 1, Padding::Same),
        conv3x3(2, 2, 2, 2, 3, Padding::Same),
        conv3x3(3, 3, 3, 3, 2, Padding::Valid),
        conv3x3(1, 2, 3, 3, 2, Padding::Same),
        conv3x3(3, 5, 7, 9, 4, Padding::Same),
        conv3x3(2, 4, 8, 10, 3, Padding::Valid),
        conv3x3(2, 3, 11, 6, 5, Padding::Valid),
        // 24 x 23 = 552 tiles in blocks of 341; 5 images.
        conv3x3(5, 16, 50, 47, 8, Padding::Valid),
        // 20 x 21 = 420 tiles in blocks of 409 (the last of 11); 6 images.
        conv3x3(6, 8, 40, 41, 12, Padding::Same),
        // Model A's conv4 at batch 2: 64 -> 32 channels, 28x28 out.
        conv3x3(2, 64, 30, 30, 32, Padding::Valid),
    ]
}

/// Winograd's transforms add up to 16 window values (and halves of kernel values) around the
/// products, which could cost accuracy against direct convolution. Measured against an f64
/// reference over `winograd_shapes()` (inputs, weights and `dy` in [-1, 1], at most 576 terms an
/// output), the worst absolute errors were, Winograd: forward 1.24e-5, input gradient 5.7e-6,
/// weight gradient 3.1e-5; im2col at the same shapes: 1.53e-5, 3.8e-6, 4.6e-5: the same order.
/// The bounds below hold both, about 4x and 6x the worst measured.
const WINOGRAD_ATOL: f32 = 5e-5;
const WINOGRAD_RTOL: f32 = 1e-4;
const WINOGRAD_GRAD_ATOL: f32 = GRAD_ATOL;

/// The largest `|got - want|`.
fn worst_error(got: &[f32], want: &[f32]) -> f32 {
    got.iter().zip(want).map(|(&g, &w)| (g - w).abs()).fold(0.0, f32::max)
}

#[test]
fn winograd_conv2d_matches_the_reference_and_gives_the_same_bits_on_one_thread_and_two() {
    use conv2d::ConvAlgorithm::{Im2col, Winograd};
    let wide = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    let mut worst = [[0.0f32; 3]; 2];
    for (i, s) in winograd_shapes().into_iter().enumerate() {
        assert!(conv2d::ConvAlgorithm::winograd_fits(&s));
        let seed = 800 + 10 * i as u64;
        let x = random(seed, s.input_dims().iter().product(), -1.0, 1.0);
        let w = random(seed + 1, s.weight_dims().iter().product(), -1.0, 1.0);
        let b = random(seed + 2, s.out_channels, -1.0, 1.0);
        let dy = random(seed + 3, s.output_dims().iter().product(), -1.0, 1.0);
        let (x64, w64, dy64) = (wide(&x), wide(&w), wide(&dy));
        let (want_dx, want_dw, want_db) = reference::conv2d::backward(&s, &x64, &w64, &dy64);
        let (want_dx, want_dw, want_db) = (narrow(want_dx), narrow(want_dw), narrow(want_db));
        for (a, algorithm) in [Im2col, Winograd].into_iter().enumerate() {
            let runs: Vec<[Vec<f32>; 5]> = [1, 2]
                .into_iter()
                .map(|threads| {
                    with_threads(threads, || {
                        // Buffers start as NaN: every element must be written.
                        let mut y = vec![f32::NAN; dy.len()];
                        let mut y_relu = vec![f32::NAN; dy.len()];
                        conv2d::forward_with(algorithm, &s, &x, &w, &b, false, &mut y);
                        conv2d::forward_with(algorithm, &s, &x, &w, &b, true, &mut y_relu);
                        let (mut dx, mut dw, mut db) =
                            (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
                        conv2d::backward_with(
                            algorithm,
                            &s,
                            &x,
                            &w,
                            OutputGradient::Given(&dy),
                            Some(&mut dx),
                            Some((&mut dw, &mut db)),
                        )
                        .expect("a given gradient");
                        [y, y_relu, dx, dw, db]
                    })
                })
                .collect();
            for (one, two) in runs[0].iter().zip(&runs[1]) {
                assert_bits_equal(&format!("{algorithm:?} {s:?}: 1 thread vs 2"), one, two);
            }
            let [y, y_relu, dx, dw, db] = &runs[0];
            let want_y = narrow(reference::conv2d::forward(&s, &x64, &w64, &wide(&b), false));
            let want_relu: Vec<f32> = want_y.iter().map(|&v| v.max(0.0)).collect();
            let what = |part: &str| format!("{algorithm:?} {part} {s:?}");
            assert_close(&what("forward"), y, &want_y, WINOGRAD_ATOL, WINOGRAD_RTOL);
            assert_close(&what("forward relu"), y_relu, &want_relu, WINOGRAD_ATOL, WINOGRAD_RTOL);
            assert_close(&what("dx"), dx, &want_dx, WINOGRAD_ATOL, WINOGRAD_RTOL);
            assert_close(&what("dw"), dw, &want_dw, WINOGRAD_GRAD_ATOL, WINOGRAD_RTOL);
            assert_close(&what("db"), db, &want_db, GRAD_ATOL, RTOL);
            worst[a][0] = worst[a][0].max(worst_error(y, &want_y));
            worst[a][1] = worst[a][1].max(worst_error(dx, &want_dx));
            worst[a][2] = worst[a][2].max(worst_error(dw, &want_dw));
            // Each backward part alone gives the same bits as both together.
            let mut dx_only = vec![f32::NAN; x.len()];
            conv2d::backward_with(algorithm, &s, &x, &w, OutputGradient::Given(&dy), Some(&mut dx_only), None)
                .expect("a given gradient");
            assert_bits_equal(&what("dx alone"), &dx_only, dx);
            let (mut dw_only, mut db_only) = (vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
            conv2d::backward_with(
                algorithm,
                &s,
                &x,
                &w,
                OutputGradient::Given(&dy),
                None,
                Some((&mut dw_only, &mut db_only)),
            )
            .expect("a given gradient");
            assert_bits_equal(&what("dw alone"), &dw_only, dw);
            assert_bits_equal(&what("db alone"), &db_only, db);
        }
    }
    eprintln!("worst |error| vs f64 (forward, dx, dw): im2col {:?}, winograd {:?}", worst[0], worst[1]);
}

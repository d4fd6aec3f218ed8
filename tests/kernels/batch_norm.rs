//! Batch normalisation: GPU against the CPU reference (training forward, inference forward,
//! backward), gradients against finite differences, determinism and the degenerate cases.

use crate::common::*;
use wgcnn::gpu::GpuTensor;
use wgcnn::gpu::ops::batch_norm as gpu_bn;
use wgcnn::reference::batch_norm::{self as cpu_bn, SavedStats};
use wgcnn::shape::{BatchNormConfig, BatchNormShape};

/// Batch 1 and 3; channels 1, 3, 5; spatial 7x9, 31x33 and 1 (after a dense layer; with batch 1
/// each channel then holds a single value and its variance is 0).
fn shapes() -> Vec<BatchNormShape> {
    let mut out = Vec::new();
    for batch in [1, 3] {
        for channels in [1, 3, 5] {
            for spatial in [7 * 9, 31 * 33, 1] {
                out.push(BatchNormShape { batch, channels, spatial });
            }
        }
    }
    out
}

/// Host data of one layer: input, weights, running statistics and an output gradient.
struct Case {
    shape: BatchNormShape,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dy: Vec<f32>,
}

impl Case {
    fn random(shape: BatchNormShape, seed: u64) -> Self {
        let (len, c) = (shape.len(), shape.channels);
        Self {
            shape,
            // Off-centre, so that the mean matters.
            x: random(seed, len, -1.0, 3.0),
            gamma: random(seed + 1, c, 0.5, 1.5),
            beta: random(seed + 2, c, -0.5, 0.5),
            running_mean: random(seed + 3, c, -0.5, 0.5),
            running_var: random(seed + 4, c, 0.5, 2.0),
            dy: random(seed + 5, len, -1.0, 1.0),
        }
    }

    /// This case with `other`'s weights and running statistics.
    fn with_weights_of(self, other: &Case) -> Self {
        Self {
            gamma: other.gamma.clone(),
            beta: other.beta.clone(),
            running_mean: other.running_mean.clone(),
            running_var: other.running_var.clone(),
            ..self
        }
    }
}

/// The case's tensors on the GPU, and empty outputs.
struct Tensors {
    x: GpuTensor,
    gamma: GpuTensor,
    beta: GpuTensor,
    running_mean: GpuTensor,
    running_var: GpuTensor,
    y: GpuTensor,
    dy: GpuTensor,
    dx: GpuTensor,
    dgamma: GpuTensor,
    dbeta: GpuTensor,
    /// [1] u32: the real rows, the whole batch unless a test says otherwise.
    rows: GpuTensor,
}

impl Tensors {
    fn upload(case: &Case) -> Self {
        let gpu = gpu();
        let s = case.shape;
        let full = [s.batch, s.channels, s.spatial];
        let per_channel = [s.channels];
        Self {
            x: upload(&gpu, "x", &full, &case.x),
            gamma: upload(&gpu, "gamma", &per_channel, &case.gamma),
            beta: upload(&gpu, "beta", &per_channel, &case.beta),
            running_mean: upload(&gpu, "running_mean", &per_channel, &case.running_mean),
            running_var: upload(&gpu, "running_var", &per_channel, &case.running_var),
            y: zeros(&gpu, "y", &full),
            dy: upload(&gpu, "dy", &full, &case.dy),
            dx: zeros(&gpu, "dx", &full),
            dgamma: zeros(&gpu, "dgamma", &per_channel),
            dbeta: zeros(&gpu, "dbeta", &per_channel),
            rows: GpuTensor::from_slice(&gpu, "rows", &[1], &[s.batch as u32]).unwrap(),
        }
    }

    fn weights(&self) -> gpu_bn::Weights<'_> {
        gpu_bn::Weights {
            gamma: &self.gamma,
            beta: &self.beta,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
        }
    }

    fn grads(&self) -> gpu_bn::Grads<'_> {
        gpu_bn::Grads { dx: &self.dx, dgamma: &self.dgamma, dbeta: &self.dbeta }
    }
}

/// What one training step (forward then backward) leaves on the GPU, downloaded.
#[derive(Debug)]
struct TrainStep {
    y: Vec<f32>,
    saved: SavedStats<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dx: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

impl TrainStep {
    /// Every output, in a fixed order, for bit comparisons.
    fn all_values(&self) -> Vec<f32> {
        [
            &self.y,
            &self.saved.mean,
            &self.saved.inv_std,
            &self.running_mean,
            &self.running_var,
            &self.dx,
            &self.dgamma,
            &self.dbeta,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect()
    }
}

/// The training forward and backward of `case` on the GPU, recorded into one submit, with the
/// first `rows` of its batch real and the rest padding.
fn gpu_train_step(case: &Case, config: &BatchNormConfig, rows: usize) -> TrainStep {
    let gpu = gpu();
    let t = Tensors::upload(case);
    t.rows.write(&gpu, &[rows as u32]).unwrap();
    let forward =
        gpu_bn::forward_train(&gpu, &case.shape, config, &t.x, &t.weights(), &t.rows, &t.y).expect("forward_train");
    let backward =
        gpu_bn::backward(&gpu, &case.shape, &t.x, &t.gamma, &forward.saved, &t.dy, &t.grads()).expect("backward");
    let all: Vec<_> = forward.dispatches.iter().chain(&backward).collect();
    gpu.run(&all).unwrap();
    TrainStep {
        y: download(&gpu, &t.y),
        saved: SavedStats {
            mean: download(&gpu, &forward.saved.mean),
            inv_std: download(&gpu, &forward.saved.inv_std),
        },
        running_mean: download(&gpu, &t.running_mean),
        running_var: download(&gpu, &t.running_var),
        dx: download(&gpu, &t.dx),
        dgamma: download(&gpu, &t.dgamma),
        dbeta: download(&gpu, &t.dbeta),
    }
}

/// The same step on the CPU reference, in f32.
fn cpu_train_step(case: &Case, config: &BatchNormConfig) -> TrainStep {
    let mut running_mean = case.running_mean.clone();
    let mut running_var = case.running_var.clone();
    let (y, saved) = cpu_bn::forward_train(
        &case.shape,
        config,
        &case.x,
        &case.gamma,
        &case.beta,
        &mut running_mean,
        &mut running_var,
    )
    .unwrap();
    let grads = cpu_bn::backward(&case.shape, &case.x, &case.gamma, &saved, &case.dy).unwrap();
    TrainStep { y, saved, running_mean, running_var, dx: grads.dx, dgamma: grads.dgamma, dbeta: grads.dbeta }
}

// Tolerances. The GPU sums each channel's M = batch * spatial values (up to 3069 here) as 256
// strided partial sums and a tree, the CPU one by one, both in f32: the two roundings differ by
// about sqrt(M) * 2^-24 times the size of the partial sums.
// - Values computed from a channel mean or variance (the saved and running statistics, y, dx) are
//   O(1): atol 2e-5, rtol 1e-4 (measured worst 3.3e-6, y at M = 3069).
// - dgamma and dbeta are themselves sums of M terms, up to ~50 here, and may cancel, so their error
//   follows the terms' magnitudes rather than the result: atol 5e-4, rtol 1e-4 (measured worst
//   1.2e-4, dgamma = 47 at M = 3069).
// - Inference is element-wise with the same running statistics on both sides: atol/rtol 1e-5.
const REDUCED: (f32, f32) = (2e-5, 1e-4);
const SUMMED: (f32, f32) = (5e-4, 1e-4);
const ELEMENTWISE: (f32, f32) = (1e-5, 1e-5);

#[track_caller]
fn close(what: &str, shape: &BatchNormShape, got: &[f32], want: &[f32], (atol, rtol): (f32, f32)) {
    assert_close(&format!("{what} {shape:?}"), got, want, atol, rtol);
}

#[test]
fn training_forward_and_backward_match_cpu() {
    let config = BatchNormConfig::default();
    for (i, shape) in shapes().into_iter().enumerate() {
        let case = Case::random(shape, 100 + 10 * i as u64);
        let got = gpu_train_step(&case, &config, shape.batch);
        let want = cpu_train_step(&case, &config);
        close("y", &shape, &got.y, &want.y, REDUCED);
        close("saved mean", &shape, &got.saved.mean, &want.saved.mean, REDUCED);
        let (got_inv, want_inv) = (&got.saved.inv_std, &want.saved.inv_std);
        close("saved inv_std", &shape, got_inv, want_inv, REDUCED);
        let (got_rm, want_rm) = (&got.running_mean, &want.running_mean);
        close("running mean", &shape, got_rm, want_rm, REDUCED);
        let (got_rv, want_rv) = (&got.running_var, &want.running_var);
        close("running var", &shape, got_rv, want_rv, REDUCED);
        close("dx", &shape, &got.dx, &want.dx, REDUCED);
        close("dgamma", &shape, &got.dgamma, &want.dgamma, SUMMED);
        close("dbeta", &shape, &got.dbeta, &want.dbeta, SUMMED);
    }
}

/// A short last batch: with the first `rows` of the batch real, the GPU computes what the
/// reference computes on a batch of those rows alone, and the padding rows' y and dx are 0 (so
/// they add nothing upstream).
#[test]
fn a_short_batch_is_normalised_over_its_real_rows_alone() {
    let config = BatchNormConfig::default();
    for (i, spatial) in [7 * 9, 31 * 33, 1].into_iter().enumerate() {
        let shape = BatchNormShape { batch: 5, channels: 3, spatial };
        let case = Case::random(shape, 900 + 10 * i as u64);
        for rows in [1, 3, 4] {
            let got = gpu_train_step(&case, &config, rows);
            let real = rows * shape.channels * spatial;
            let short = BatchNormShape { batch: rows, ..shape };
            let want = cpu_train_step(
                &Case {
                    shape: short,
                    x: case.x[..real].to_vec(),
                    dy: case.dy[..real].to_vec(),
                    ..Case::random(short, 0)
                }
                .with_weights_of(&case),
                &config,
            );
            let what = format!("{rows} of 5 rows");
            close(&format!("{what}: y"), &short, &got.y[..real], &want.y, REDUCED);
            close(&format!("{what}: saved mean"), &short, &got.saved.mean, &want.saved.mean, REDUCED);
            close(&format!("{what}: saved inv_std"), &short, &got.saved.inv_std, &want.saved.inv_std, REDUCED);
            close(&format!("{what}: running var"), &short, &got.running_var, &want.running_var, REDUCED);
            close(&format!("{what}: dx"), &short, &got.dx[..real], &want.dx, REDUCED);
            close(&format!("{what}: dgamma"), &short, &got.dgamma, &want.dgamma, SUMMED);
            close(&format!("{what}: dbeta"), &short, &got.dbeta, &want.dbeta, SUMMED);
            assert!(got.y[real..].iter().chain(&got.dx[real..]).all(|&v| v == 0.0), "{what}: padding rows are 0");
        }
    }
}

#[test]
fn inference_forward_matches_cpu() {
    let gpu = gpu();
    let config = BatchNormConfig::default();
    for (i, shape) in shapes().into_iter().enumerate() {
        let case = Case::random(shape, 500 + 10 * i as u64);
        let t = Tensors::upload(&case);
        let dispatch = gpu_bn::forward_inference(&gpu, &shape, &config, &t.x, &t.weights(), &t.y).unwrap();
        gpu.run(&[&dispatch]).unwrap();
        let want = cpu_bn::forward_inference(
            &shape,
            &config,
            &case.x,
            &case.gamma,
            &case.beta,
            &case.running_mean,
            &case.running_var,
        )
        .unwrap();
        close("inference y", &shape, &download(&gpu, &t.y), &want, ELEMENTWISE);
        // Inference leaves the running statistics alone.
        assert_bits_equal("running mean", &download(&gpu, &t.running_mean), &case.running_mean);
        assert_bits_equal("running var", &download(&gpu, &t.running_var), &case.running_var);
    }
}

#[test]
fn inference_backward_matches_cpu() {
    let gpu = gpu();
    let config = BatchNormConfig::default();
    for (i, shape) in shapes().into_iter().enumerate() {
        let case = Case::random(shape, 700 + 10 * i as u64);
        let t = Tensors::upload(&case);
        let dispatch =
            gpu_bn::backward_inference(&gpu, &shape, &config, &t.gamma, &t.running_var, &t.dy, &t.dx).unwrap();
        gpu.run(&[&dispatch]).unwrap();
        let want = cpu_bn::backward_inference(&shape, &config, &case.gamma, &case.running_var, &case.dy).unwrap();
        close("inference dx", &shape, &download(&gpu, &t.dx), &want, ELEMENTWISE);
    }
}

#[test]
fn inference_gradient_matches_finite_differences() {
    let config = BatchNormConfig::default();
    for (i, shape) in
        [BatchNormShape { batch: 3, channels: 2, spatial: 5 }, BatchNormShape { batch: 2, channels: 3, spatial: 1 }]
            .iter()
            .enumerate()
    {
        let [x, gamma, beta, r] = f64_case(shape, 60 + 10 * i as u64);
        let mean = random_f64(70 + i as u64, shape.channels, -0.5, 0.5);
        let var = random_f64(80 + i as u64, shape.channels, 0.5, 2.0);
        let dx = cpu_bn::backward_inference(shape, &config, &gamma, &var, &r).unwrap();
        let loss = |x: &[f64]| {
            weighted_sum(&cpu_bn::forward_inference(shape, &config, x, &gamma, &beta, &mean, &var).unwrap(), &r)
        };
        check_gradient(&format!("inference dx {shape:?}"), &x, &dx, loss, 1e-6, 1e-6);
    }
}

/// A small f64 case for the gradient checks: off-centre inputs, gamma away from 1.
fn f64_case(shape: &BatchNormShape, seed: u64) -> [Vec<f64>; 4] {
    let (len, c) = (shape.len(), shape.channels);
    [
        random_f64(seed, len, -1.0, 3.0),
        random_f64(seed + 1, c, 0.5, 1.5),
        random_f64(seed + 2, c, -0.5, 0.5),
        random_f64(seed + 3, len, -1.0, 1.0),
    ]
}

/// `sum(y * r)` of the training forward in f64; the running statistics are thrown away.
fn training_loss(shape: &BatchNormShape, x: &[f64], gamma: &[f64], beta: &[f64], r: &[f64]) -> f64 {
    let mut running_mean = vec![0.0; shape.channels];
    let mut running_var = vec![1.0; shape.channels];
    let (y, _) =
        cpu_bn::forward_train(shape, &BatchNormConfig::default(), x, gamma, beta, &mut running_mean, &mut running_var)
            .unwrap();
    weighted_sum(&y, r)
}

#[test]
fn training_gradients_match_finite_differences() {
    // A conv-like shape and a dense one (spatial 1), both with several values per channel.
    let shapes =
        [BatchNormShape { batch: 3, channels: 2, spatial: 5 }, BatchNormShape { batch: 4, channels: 3, spatial: 1 }];
    for (i, shape) in shapes.iter().enumerate() {
        let [x, gamma, beta, r] = f64_case(shape, 40 + 10 * i as u64);
        let mut running_mean = vec![0.0; shape.channels];
        let mut running_var = vec![1.0; shape.channels];
        let (_, saved) = cpu_bn::forward_train(
            shape,
            &BatchNormConfig::default(),
            &x,
            &gamma,
            &beta,
            &mut running_mean,
            &mut running_var,
        )
        .unwrap();
        let grads = cpu_bn::backward(shape, &x, &gamma, &saved, &r).unwrap();
        let (eps, tol) = (1e-6, 1e-6);
        check_gradient(
            &format!("dx {shape:?}"),
            &x,
            &grads.dx,
            |x| training_loss(shape, x, &gamma, &beta, &r),
            eps,
            tol,
        );
        check_gradient(
            &format!("dgamma {shape:?}"),
            &gamma,
            &grads.dgamma,
            |gamma| training_loss(shape, &x, gamma, &beta, &r),
            eps,
            tol,
        );
        check_gradient(
            &format!("dbeta {shape:?}"),
            &beta,
            &grads.dbeta,
            |beta| training_loss(shape, &x, &gamma, beta, &r),
            eps,
            tol,
        );
    }
}

#[test]
fn training_step_is_deterministic() {
    let shape = BatchNormShape { batch: 3, channels: 5, spatial: 31 * 33 };
    let case = Case::random(shape, 7);
    let config = BatchNormConfig::default();
    let first = gpu_train_step(&case, &config, case.shape.batch);
    let second = gpu_train_step(&case, &config, case.shape.batch);
    assert_bits_equal("training step", &first.all_values(), &second.all_values());
}

#[track_caller]
fn assert_finite(what: &str, values: &[f32]) {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        panic!("{what}: [{i}] is {}", values[i]);
    }
}

/// The `batch * spatial` values of channel `c` of `v`.
fn channel(shape: &BatchNormShape, v: &[f32], c: usize) -> Vec<f32> {
    (0..shape.batch)
        .flat_map(|n| {
            let start = (n * shape.channels + c) * shape.spatial;
            v[start..start + shape.spatial].to_vec()
        })
        .collect()
}

#[test]
fn constant_channels_stay_finite() {
    let config = BatchNormConfig::default();
    let shape = BatchNormShape { batch: 3, channels: 3, spatial: 7 * 9 };
    let mut case = Case::random(shape, 11);
    // Channel 1: a constant that f32 sums represent exactly, so the variance is exactly 0.
    // Channel 2: one that they do not, so the mean misses it by a few ulps of the running sum.
    for (c, value) in [(1, -2.5f32), (2, 123.4)] {
        for n in 0..shape.batch {
            let start = (n * shape.channels + c) * shape.spatial;
            case.x[start..start + shape.spatial].fill(value);
        }
    }
    let got = gpu_train_step(&case, &config, case.shape.batch);
    assert_finite("training step", &got.all_values());
    let count = shape.batch * shape.spatial;
    let inv_sqrt_eps = 1.0 / config.epsilon.sqrt();
    // Exact constant: y is beta and inv_std is 1 / sqrt(epsilon).
    assert_bits_equal("exact constant y", &channel(&shape, &got.y, 1), &vec![case.beta[1]; count]);
    let (inv_std_1, inv_std_2) = (got.saved.inv_std[1], got.saved.inv_std[2]);
    close("exact constant inv_std", &shape, &[inv_std_1], &[inv_sqrt_eps], REDUCED);
    // Inexact constant: the mean of 189 copies of 123.4 may miss by up to ~189 * 2^-24 * 123.4
    // = 1.4e-3, which inv_std (at most 1 / sqrt(epsilon) = 31.6) and gamma (< 1.5) magnify to
    // about 0.07 at worst: y stays within that of beta, and inv_std at most 1 / sqrt(epsilon).
    let beta_2 = vec![case.beta[2]; count];
    assert_close("inexact constant y", &channel(&shape, &got.y, 2), &beta_2, 0.07, 0.0);
    assert!(inv_std_2 > 0.0 && inv_std_2 <= inv_sqrt_eps * (1.0 + 1e-6));
    // The random channel is unaffected by its neighbours.
    let want = cpu_train_step(&case, &config);
    let (got_0, want_0) = (channel(&shape, &got.y, 0), channel(&shape, &want.y, 0));
    close("random channel y", &shape, &got_0, &want_0, REDUCED);
}

#[test]
fn single_value_channels_stay_finite() {
    // Batch 1 after a dense layer: one value per channel, variance 0, xhat 0, so y = beta and
    // dx = 0 exactly.
    let config = BatchNormConfig::default();
    let shape = BatchNormShape { batch: 1, channels: 5, spatial: 1 };
    let case = Case::random(shape, 12);
    let got = gpu_train_step(&case, &config, case.shape.batch);
    assert_finite("training step", &got.all_values());
    assert_bits_equal("y", &got.y, &case.beta);
    assert_bits_equal("dx", &got.dx, &[0.0; 5]);
    assert_bits_equal("dbeta", &got.dbeta, &case.dy);
}

#[test]
fn bad_shapes_are_errors() {
    let gpu = gpu();
    let shape = BatchNormShape { batch: 2, channels: 3, spatial: 4 };
    let config = BatchNormConfig::default();
    let t = Tensors::upload(&Case::random(shape, 13));
    let wrong_x = zeros(&gpu, "x", &[2, 3, 5]);
    let wrong_channels = zeros(&gpu, "gamma", &[4]);

    assert!(gpu_bn::forward_train(&gpu, &shape, &config, &wrong_x, &t.weights(), &t.rows, &t.y).is_err());
    let bad_gamma = gpu_bn::Weights { gamma: &wrong_channels, ..t.weights() };
    assert!(gpu_bn::forward_train(&gpu, &shape, &config, &t.x, &bad_gamma, &t.rows, &t.y).is_err());
    let bad_running_var = gpu_bn::Weights { running_var: &wrong_channels, ..t.weights() };
    assert!(gpu_bn::forward_inference(&gpu, &shape, &config, &t.x, &bad_running_var, &t.y).is_err());
    assert!(gpu_bn::forward_inference(&gpu, &shape, &config, &t.x, &t.weights(), &wrong_x).is_err());
    let empty = BatchNormShape { batch: 0, ..shape };
    assert!(gpu_bn::forward_inference(&gpu, &empty, &config, &t.x, &t.weights(), &t.y).is_err());
    let no_epsilon = BatchNormConfig { epsilon: 0.0, ..config };
    assert!(gpu_bn::forward_train(&gpu, &shape, &no_epsilon, &t.x, &t.weights(), &t.rows, &t.y).is_err());

    let forward = gpu_bn::forward_train(&gpu, &shape, &config, &t.x, &t.weights(), &t.rows, &t.y).unwrap();
    assert!(gpu_bn::forward_train(&gpu, &shape, &config, &t.x, &t.weights(), &t.dgamma, &t.y).is_err(), "rows is [1]");
    let backward = |dy: &GpuTensor, grads: &gpu_bn::Grads| {
        gpu_bn::backward(&gpu, &shape, &t.x, &t.gamma, &forward.saved, dy, grads)
    };
    assert!(backward(&wrong_x, &t.grads()).is_err());
    let bad_dgamma = gpu_bn::Grads { dgamma: &wrong_channels, ..t.grads() };
    assert!(backward(&t.dy, &bad_dgamma).is_err());
    assert!(backward(&t.dy, &t.grads()).is_ok());
    let inference_backward = |gamma: &GpuTensor, dy: &GpuTensor| {
        gpu_bn::backward_inference(&gpu, &shape, &config, gamma, &t.running_var, dy, &t.dx)
    };
    assert!(inference_backward(&wrong_channels, &t.dy).is_err());
    assert!(inference_backward(&t.gamma, &wrong_x).is_err());
    assert!(inference_backward(&t.gamma, &t.dy).is_ok());

    // The CPU reference refuses the same mistakes.
    let x = vec![0f32; shape.len() + 1];
    let per_channel = vec![0f32; shape.channels];
    let (mut running_mean, mut running_var) = (per_channel.clone(), per_channel.clone());
    let cpu_train =
        cpu_bn::forward_train(&shape, &config, &x, &per_channel, &per_channel, &mut running_mean, &mut running_var);
    assert!(cpu_train.is_err());
    assert!(cpu_bn::backward_inference(&shape, &config, &per_channel, &per_channel, &x).is_err());
}

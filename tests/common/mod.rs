//! Shared by the integration tests: the GPU under test, deterministic random data, and the
//! element-wise comparison that prints the first mismatches.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rand::{Rng, SeedableRng, rngs::StdRng};
use wgcnn::gpu::{DeviceChoice, Gpu, GpuTensor, KernelChoice, KernelVariant};

/// The adapter the tests run on: `WGCNN_DEVICE` if set, else the best one found. A machine with no
/// adapter fails the tests (CI must not pass without exercising the kernels).
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let choice = DeviceChoice::resolve(None).expect("WGCNN_DEVICE");
        let gpu = Gpu::new(&choice).unwrap_or_else(|e| panic!("the GPU tests need an adapter: {e}"));
        eprintln!("testing on {}", gpu.describe());
        gpu
    })
    .clone()
}

/// The adapter under test once per kernel variant, software then tiled: both run on any adapter,
/// so the tiled kernels meant for GPUs are held to the reference on lavapipe too.
pub fn gpus() -> Vec<Arc<Gpu>> {
    static GPUS: OnceLock<Vec<Arc<Gpu>>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let choice = DeviceChoice::resolve(None).expect("WGCNN_DEVICE");
        [KernelVariant::Software, KernelVariant::Tiled]
            .map(|variant| {
                Gpu::with_kernels(&choice, KernelChoice::Forced(variant))
                    .unwrap_or_else(|e| panic!("the GPU tests need an adapter: {e}"))
            })
            .to_vec()
    })
    .clone()
}

/// `n` uniform values in [lo, hi) from `seed`.
pub fn random(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

pub fn upload(gpu: &Gpu, what: &str, shape: &[usize], data: &[f32]) -> GpuTensor {
    GpuTensor::from_slice(gpu, what, shape, data).unwrap()
}

pub fn zeros(gpu: &Gpu, what: &str, shape: &[usize]) -> GpuTensor {
    GpuTensor::zeros(gpu, what, shape).unwrap()
}

pub fn download(gpu: &Gpu, t: &GpuTensor) -> Vec<f32> {
    t.read(gpu).unwrap()
}

/// Asserts `|got - want| <= atol + rtol * |want|` element by element; on failure prints the first
/// mismatches with their indices and the largest error.
// `!(err <= bound)` rather than `err > bound`: a NaN must fail the comparison too.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs expected {}", got.len(), want.len());
    let mut bad = Vec::new();
    let mut worst = (0usize, 0f32);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        if !(err <= atol + rtol * w.abs()) {
            bad.push(i);
        }
        if err > worst.1 || err.is_nan() {
            worst = (i, err);
        }
    }
    if !bad.is_empty() {
        let lines: Vec<String> =
            bad.iter().take(8).map(|&i| format!("  [{i}] got {} want {}", got[i], want[i])).collect();
        panic!(
            "{what}: {} of {} elements differ beyond atol {atol} + rtol {rtol}; worst at [{}] err {}\n{}",
            bad.len(),
            got.len(),
            worst.0,
            worst.1,
            lines.join("\n")
        );
    }
}

/// Asserts two runs gave the same bits.
#[track_caller]
pub fn assert_bits_equal(what: &str, a: &[f32], b: &[f32]) {
    let first = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits());
    assert!(a.len() == b.len() && first.is_none(), "{what}: runs differ at {first:?}");
}

/// `n` uniform f64 values in [lo, hi) from `seed`.
pub fn random_f64(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Checks `analytic` (the gradient of scalar `f` at `x` that a backward pass produced) against
/// central finite differences in f64: `(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)` for every i,
/// within `|num - analytic| <= tol * max(1, |num|)`. Prints the first mismatches on failure.
/// Pick `x` away from kinks (ReLU at 0, max-pool ties), where the derivative is not defined.
#[allow(clippy::neg_cmp_op_on_partial_ord)] // a NaN must fail, as in assert_close
#[track_caller]
pub fn check_gradient(what: &str, x: &[f64], analytic: &[f64], f: impl Fn(&[f64]) -> f64, eps: f64, tol: f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let mut probe = x.to_vec();
    let mut bad = Vec::new();
    for i in 0..x.len() {
        probe[i] = x[i] + eps;
        let up = f(&probe);
        probe[i] = x[i] - eps;
        let down = f(&probe);
        probe[i] = x[i];
        let numeric = (up - down) / (2.0 * eps);
        if !((numeric - analytic[i]).abs() <= tol * numeric.abs().max(1.0)) {
            bad.push(format!("  [{i}] numeric {numeric:.9} analytic {:.9}", analytic[i]));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} partial derivatives differ beyond tol {tol}\n{}",
        bad.len(),
        x.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// `sum(y * r)`: a scalar whose gradient w.r.t. `y` is `r`, to drive backward passes in gradient checks.
pub fn weighted_sum(y: &[f64], r: &[f64]) -> f64 {
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}
pub mod bomb;
pub mod process;

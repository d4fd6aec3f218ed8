//! Dropout: the GPU mask and values against the CPU reference (bit for bit), the mask's statistics,
//! keys, the gradient against finite differences, and bad rates.

use crate::common::*;
use wgcnn::gpu::Gpu;
use wgcnn::gpu::ops::dropout;
use wgcnn::reference::dropout as cpu_dropout;
use wgcnn::shape::DropoutConfig;

fn config(rate: f32, seed: u64, step: u32) -> DropoutConfig {
    DropoutConfig { rate, seed, step }
}

/// The GPU's forward on `x` and backward on `dy`, in one submit.
fn run_gpu(gpu: &Gpu, c: &DropoutConfig, x: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let (x, y) = (upload(gpu, "x", &[n], x), zeros(gpu, "y", &[n]));
    let (dy, dx) = (upload(gpu, "dy", &[n], dy), zeros(gpu, "dx", &[n]));
    let fwd = dropout::forward(gpu, c, &x, &y).unwrap();
    let bwd = dropout::backward(gpu, c, &dy, &dx).unwrap();
    gpu.run(&[&fwd, &bwd]).unwrap();
    (download(gpu, &y), download(gpu, &dx))
}

/// The GPU's keep mask of `len` elements: dropout of ones is `scale` where kept and 0 where not.
fn gpu_mask(gpu: &Gpu, c: &DropoutConfig, len: usize) -> Vec<bool> {
    let (y, _) = run_gpu(gpu, c, &vec![1.0; len], &vec![0.0; len]);
    y.iter().map(|&v| v != 0.0).collect()
}

/// The fraction of elements two masks agree on.
fn agreement(a: &[bool], b: &[bool]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn dropout_matches_cpu_bit_for_bit() {
    let gpu = gpu();
    // Ragged lengths: below one workgroup, not a multiple of it, and over one grid row.
    for (i, &len) in [1usize, 7, 3 * 5 * 7 * 9, 256 * 65535 + 3].iter().enumerate() {
        let c = config(0.3, 0x1234_5678_9abc_def0 + i as u64, i as u32);
        let x = random(len as u64, len, -2.0, 2.0);
        let dy = random(len as u64 + 1, len, -2.0, 2.0);
        let (y, dx) = run_gpu(&gpu, &c, &x, &dy);
        // Exact: the same integer mask, and one f32 multiply by the same f32 scale.
        assert_close("dropout forward", &y, &cpu_dropout::forward(&c, &x).unwrap(), 0.0, 0.0);
        assert_close("dropout backward", &dx, &cpu_dropout::backward(&c, &dy).unwrap(), 0.0, 0.0);
        assert_eq!(gpu_mask(&gpu, &c, len), cpu_dropout::mask(&c, len).unwrap(), "mask of {len}");
    }
}

#[test]
fn dropout_mask_depends_on_seed_and_step_only() {
    let gpu = gpu();
    let len = 100_000;
    let c = config(0.5, 42, 7);
    let mask = gpu_mask(&gpu, &c, len);
    assert_eq!(mask, gpu_mask(&gpu, &c, len), "same key, same mask");
    // A prefix of a longer tensor has the same mask: the element's index is its only position.
    assert_eq!(mask[..1000], gpu_mask(&gpu, &c, 1000)[..]);
    // Independent masks at rate 0.5 agree on half the elements.
    for other in [config(0.5, 43, 7), config(0.5, 42 + (1 << 32), 7), config(0.5, 42, 8)] {
        let a = agreement(&mask, &gpu_mask(&gpu, &other, len));
        assert!((a - 0.5).abs() < 0.01, "{other:?} agrees with {c:?} on {a}");
    }
    // Neighbouring elements are independent too.
    let a = agreement(&mask[1..], &mask[..len - 1]);
    assert!((a - 0.5).abs() < 0.01, "neighbours agree on {a}");
}

#[test]
fn dropout_keeps_one_minus_rate_of_the_elements() {
    let gpu = gpu();
    let len = 1_000_000;
    for rate in [0.5f32, 0.2] {
        let kept = gpu_mask(&gpu, &config(rate, 2024, 0), len).iter().filter(|&&k| k).count() as f64 / len as f64;
        let want = 1.0 - rate as f64;
        // Within 0.5% of 1 - rate: 5 (rate 0.5) and 10 (rate 0.2) standard deviations.
        assert!((kept - want).abs() <= 0.005 * want, "rate {rate}: kept {kept}");
    }
}

#[test]
fn dropout_at_rate_zero_is_the_identity() {
    let gpu = gpu();
    let x = random(1, 1000, -3.0, 3.0);
    let dy = random(2, 1000, -3.0, 3.0);
    let c = config(0.0, 9, 9);
    let (y, dx) = run_gpu(&gpu, &c, &x, &dy);
    assert_bits_equal("gpu forward", &y, &x);
    assert_bits_equal("gpu backward", &dx, &dy);
    assert_bits_equal("cpu forward", &cpu_dropout::forward(&c, &x).unwrap(), &x);
}

#[test]
fn dropout_gradient_matches_finite_differences() {
    let c = config(0.4, 77, 3);
    let x = random_f64(3, 200, -1.0, 1.0);
    let r = random_f64(4, 200, -1.0, 1.0);
    let dx = cpu_dropout::backward(&c, &r).unwrap();
    check_gradient("dropout dx", &x, &dx, |x| weighted_sum(&cpu_dropout::forward(&c, x).unwrap(), &r), 1e-6, 1e-6);
}

#[test]
fn dropout_is_deterministic() {
    let gpu = gpu();
    let x = random(5, 5000, -1.0, 1.0);
    let c = config(0.25, 5, 5);
    assert_bits_equal("forward", &run_gpu(&gpu, &c, &x, &x).0, &run_gpu(&gpu, &c, &x, &x).0);
}

#[test]
fn dropout_rejects_bad_rates_and_lengths() {
    let gpu = gpu();
    let x = zeros(&gpu, "x", &[10]);
    for rate in [1.0, 1.5, -0.1, f32::NAN] {
        let c = config(rate, 0, 0);
        assert!(dropout::forward(&gpu, &c, &x, &x).is_err(), "rate {rate}");
        assert!(cpu_dropout::forward(&c, &[0.0f32; 3]).is_err(), "rate {rate}");
    }
    let short = zeros(&gpu, "y", &[9]);
    let c = config(0.5, 0, 0);
    assert!(dropout::forward(&gpu, &c, &x, &short).is_err());
    assert!(dropout::backward(&gpu, &c, &x, &short).is_err());
}

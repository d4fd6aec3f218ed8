//! Adam: GPU against the CPU reference over several steps, convergence on a quadratic, the size of
//! the first step, determinism and bad arguments.

use crate::common::*;
use wgcnn::gpu::GpuTensor;
use wgcnn::gpu::ops::adam::{self, AdamParams};
use wgcnn::reference::adam as cpu_adam;
use wgcnn::shape::AdamConfig;

/// Runs `steps` Adam steps on the GPU from `param0` with gradients `grads[step]`, rewriting the
/// step's parameters into one dispatch; returns (param, m, v) after each step.
fn gpu_adam(cfg: &AdamConfig, param0: &[f32], grads: &[Vec<f32>]) -> Vec<[Vec<f32>; 3]> {
    let gpu = gpu();
    let len = param0.len();
    let param = upload(&gpu, "param", &[len], param0);
    let grad = zeros(&gpu, "grad", &[len]);
    let (m, v) = (zeros(&gpu, "m", &[len]), zeros(&gpu, "v", &[len]));
    let dispatch = adam::step(&gpu, cfg, 1, &param, &grad, &m, &v).unwrap();
    let mut states = Vec::new();
    for (i, g) in grads.iter().enumerate() {
        let step = i as u64 + 1;
        dispatch.update_params(&gpu.queue, &AdamParams::new(cfg, step, len).unwrap());
        grad.write(&gpu, g).unwrap();
        gpu.run(&[&dispatch]).unwrap();
        states.push([download(&gpu, &param), download(&gpu, &m), download(&gpu, &v)]);
    }
    states
}

fn random_grads(seed: u64, steps: usize, len: usize) -> Vec<Vec<f32>> {
    (0..steps).map(|s| random(seed + s as u64, len, -2.0, 2.0)).collect()
}

#[test]
fn adam_matches_cpu_over_ten_steps() {
    // The kernel does the reference's f32 operations in the same order (bit-identical on
    // lavapipe), but a GPU may fuse a multiply-add, and Vulkan's sqrt and division are a few ulp,
    // not correctly rounded. m and v: rtol 1e-5 plus atol 1e-7 for moments near 0. Parameters
    // (about 1, moved ~lr per step): atol 1e-6.
    let decays = [0.0, 0.05];
    for &len in &[1usize, 1000, 256 * 3 + 1] {
        for &weight_decay in &decays {
            let cfg = AdamConfig { lr: 0.01, weight_decay, ..AdamConfig::default() };
            let param0 = random(len as u64, len, -1.0, 1.0);
            let grads = random_grads(len as u64 + 7, 10, len);
            let gpu_states = gpu_adam(&cfg, &param0, &grads);
            let (mut param, mut m, mut v) = (param0.clone(), vec![0.0; len], vec![0.0; len]);
            for (i, (g, [gpu_p, gpu_m, gpu_v])) in grads.iter().zip(&gpu_states).enumerate() {
                let step = i as u64 + 1;
                cpu_adam::step(&cfg, step, &mut param, g, &mut m, &mut v).unwrap();
                let what = format!("len {len}, decay {weight_decay}, step {step}");
                assert_close(&format!("{what} m"), gpu_m, &m, 1e-7, 1e-5);
                assert_close(&format!("{what} v"), gpu_v, &v, 1e-7, 1e-5);
                assert_close(&format!("{what} param"), gpu_p, &param, 1e-6, 1e-6);
            }
        }
    }
}

#[test]
fn adam_minimises_a_quadratic() {
    // f(p) = sum_i c_i (p_i - target_i)^2 with curvatures over three orders of magnitude: Adam's
    // per-coordinate scaling reaches every minimum at the same pace.
    let cfg = AdamConfig { lr: 0.01, ..AdamConfig::default() };
    let target = random_f64(1, 8, -2.0, 2.0);
    let curvature = [0.01, 0.1, 1.0, 10.0, 0.05, 0.5, 5.0, 2.0];
    let mut p = vec![0.0f64; 8];
    let (mut m, mut v) = (vec![0.0; 8], vec![0.0; 8]);
    for step in 1..=3000 {
        let grad: Vec<f64> = (0..8).map(|i| 2.0 * curvature[i] * (p[i] - target[i])).collect();
        cpu_adam::step(&cfg, step, &mut p, &grad, &mut m, &mut v).unwrap();
    }
    for i in 0..8 {
        assert!((p[i] - target[i]).abs() < 1e-3, "coordinate {i}: reached {} for minimum {}", p[i], target[i]);
    }
}

#[test]
fn first_step_moves_each_parameter_by_about_lr() {
    // At step 1, m = (1 - b1) g and v = (1 - b2) g^2, and the bias correction cancels both
    // factors: the update is lr * g / (|g| + epsilon / sqrt(1 - b2)) = lr * sign(g), for
    // any gradient scale well above epsilon.
    let cfg = AdamConfig::default();
    let len = 600;
    let grads: Vec<f32> =
        random(5, len, -1.0, 1.0).iter().enumerate().map(|(i, &g)| g.signum() * 10f32.powi(i as i32 % 5 - 1)).collect();
    let param0 = random(6, len, -1.0, 1.0);
    let [gpu_param, _, _] = gpu_adam(&cfg, &param0, std::slice::from_ref(&grads)).remove(0);
    let mut cpu_param = param0.clone();
    let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
    cpu_adam::step(&cfg, 1, &mut cpu_param, &grads, &mut m, &mut v).unwrap();
    let want: Vec<f32> = param0.iter().zip(&grads).map(|(p, g)| p - cfg.lr * g.signum()).collect();
    // The smallest gradient, 0.1, leaves epsilon / sqrt(1 - b2) / 0.1 = 3e-5 of lr; f32 rounding
    // of p ~ 1 is 6e-8: atol 1e-7.
    assert_close("GPU step 1", &gpu_param, &want, 1e-7, 0.0);
    assert_close("CPU step 1", &cpu_param, &want, 1e-7, 0.0);
}

#[test]
fn weight_decay_shrinks_parameters_before_the_update() {
    // With a zero gradient the moments stay zero and only the decay acts: p (1 - wd lr).
    let cfg = AdamConfig { lr: 0.1, weight_decay: 0.5, ..AdamConfig::default() };
    let param0 = random(3, 10, -1.0, 1.0);
    let [gpu_param, _, _] = gpu_adam(&cfg, &param0, &[vec![0.0; 10]]).remove(0);
    let want: Vec<f32> = param0.iter().map(|p| p - p * 0.5 * 0.1).collect();
    assert_close("decay only", &gpu_param, &want, 0.0, 0.0);
}

#[test]
fn adam_is_deterministic() {
    let cfg = AdamConfig { weight_decay: 0.01, ..AdamConfig::default() };
    let param0 = random(11, 5000, -1.0, 1.0);
    let grads = random_grads(12, 3, 5000);
    let a = gpu_adam(&cfg, &param0, &grads);
    let b = gpu_adam(&cfg, &param0, &grads);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        for (name, i) in [("param", 0), ("m", 1), ("v", 2)] {
            assert_bits_equal(&format!("step {} {name}", step + 1), &x[i], &y[i]);
        }
    }
}

#[test]
fn bad_arguments_are_errors() {
    let gpu = gpu();
    let cfg = AdamConfig::default();
    let t = |n: usize| zeros(&gpu, "t", &[n]);
    let (p, g, m, v) = (t(10), t(10), t(10), t(10));
    assert!(adam::step(&gpu, &cfg, 1, &p, &g, &m, &v).is_ok());
    assert!(adam::step(&gpu, &cfg, 1, &p, &t(9), &m, &v).is_err());
    assert!(adam::step(&gpu, &cfg, 1, &p, &g, &t(11), &v).is_err());
    assert!(adam::step(&gpu, &cfg, 1, &p, &g, &m, &t(1)).is_err());
    assert!(adam::step(&gpu, &cfg, 0, &p, &g, &m, &v).is_err());
    // Aliasing: the moments over the parameters, or the gradient in a written buffer.
    assert!(adam::step(&gpu, &cfg, 1, &p, &g, &p, &v).is_err());
    assert!(adam::step(&gpu, &cfg, 1, &p, &g, &m, &g).is_err());
    assert!(AdamParams::new(&cfg, 0, 10).is_err());

    let mut param = vec![0.0f32; 10];
    let (mut m, mut v) = (vec![0.0f32; 10], vec![0.0f32; 10]);
    assert!(cpu_adam::step(&cfg, 1, &mut param, &[0.0; 9], &mut m, &mut v).is_err());
    assert!(cpu_adam::step(&cfg, 1, &mut param, &[0.0; 10], &mut m[..9], &mut v).is_err());
    assert!(cpu_adam::step(&cfg, 0, &mut param, &[0.0; 10], &mut m, &mut v).is_err());
}

#[test]
fn views_of_one_arena_are_updated_in_place() {
    // param, m and v side by side in one buffer (a parameter arena), grad in its own.
    let gpu = gpu();
    let cfg = AdamConfig::default();
    let len = 64; // 256 bytes: every view starts at a multiple of the storage offset alignment
    let arena = zeros(&gpu, "arena", &[3 * len]);
    let view = |byte_offset: u64| GpuTensor::view(arena.buffer(), byte_offset, &[len]);
    let (p, m, v) = (view(0), view(256), view(512));
    let param0 = random(1, len, -1.0, 1.0);
    let grad_host = random(2, len, -1.0, 1.0);
    p.write(&gpu, &param0).unwrap();
    let g = upload(&gpu, "grad", &[len], &grad_host);
    gpu.run(&[&adam::step(&gpu, &cfg, 1, &p, &g, &m, &v).unwrap()]).unwrap();
    let (mut param, mut m_cpu, mut v_cpu) = (param0, vec![0.0; len], vec![0.0; len]);
    cpu_adam::step(&cfg, 1, &mut param, &grad_host, &mut m_cpu, &mut v_cpu).unwrap();
    let want = [param, m_cpu, v_cpu].concat();
    // Tolerances of adam_matches_cpu_over_ten_steps.
    assert_close("arena", &download(&gpu, &arena), &want, 1e-6, 1e-5);

    let overlapping = view(4);
    assert!(adam::step(&gpu, &cfg, 1, &p, &g, &overlapping, &v).is_err());
}

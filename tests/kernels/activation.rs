//! ReLU: GPU against the CPU reference, and the gradient against finite differences.

use crate::common::*;
use wgcnn::{gpu::ops::activation, reference};

#[test]
fn relu_forward_backward_match_cpu() {
    let gpu = gpu();
    // Ragged sizes: below one workgroup, not a multiple of it, and over one grid row.
    for &len in &[1usize, 7, 3 * 5 * 7 * 9, 256 * 65535 + 3] {
        let x_host = random(len as u64, len, -1.0, 1.0);
        let dy_host = random(len as u64 + 1, len, -1.0, 1.0);
        let x = upload(&gpu, "x", &[len], &x_host);
        let y = zeros(&gpu, "y", &[len]);
        let dy = upload(&gpu, "dy", &[len], &dy_host);
        let dx = zeros(&gpu, "dx", &[len]);
        let fwd = activation::relu(&gpu, &x, &y).unwrap();
        let bwd = activation::relu_backward(&gpu, &y, &dy, &dx).unwrap();
        gpu.run(&[&fwd, &bwd]).unwrap();
        let y_cpu = reference::activation::relu(&x_host);
        // Exact: max and select do no arithmetic.
        assert_close("relu forward", &download(&gpu, &y), &y_cpu, 0.0, 0.0);
        assert_close(
            "relu backward",
            &download(&gpu, &dx),
            &reference::activation::relu_backward(&y_cpu, &dy_host),
            0.0,
            0.0,
        );
    }
}

#[test]
fn relu_gradient_matches_finite_differences() {
    // Keep inputs away from the kink at 0, where the derivative is undefined.
    let x: Vec<f64> =
        random_f64(3, 40, 0.05, 1.0).iter().enumerate().map(|(i, v)| if i % 2 == 0 { *v } else { -*v }).collect();
    let r = random_f64(4, 40, -1.0, 1.0);
    let y = reference::activation::relu(&x);
    let dx = reference::activation::relu_backward(&y, &r);
    check_gradient("relu dx", &x, &dx, |x| weighted_sum(&reference::activation::relu(x), &r), 1e-6, 1e-6);
}

#[test]
fn relu_is_deterministic() {
    let gpu = gpu();
    let host = random(9, 1000, -1.0, 1.0);
    let x = upload(&gpu, "x", &[1000], &host);
    let run = || {
        let y = zeros(&gpu, "y", &[1000]);
        gpu.run(&[&activation::relu(&gpu, &x, &y).unwrap()]).unwrap();
        download(&gpu, &y)
    };
    assert_bits_equal("relu forward", &run(), &run());
}

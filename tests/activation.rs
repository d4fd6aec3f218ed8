//! ReLU: GPU against the CPU reference, and the gradient against finite differences.

mod common;
use common::*;
use wgcnn::{cpu, gpu::ops::activation};

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
        let fwd = activation::relu_forward(&gpu, &x, &y).unwrap();
        let bwd = activation::relu_backward(&gpu, &y, &dy, &dx).unwrap();
        gpu.run(&[&fwd, &bwd]).unwrap();
        let y_cpu = cpu::activation::relu_forward(&x_host);
        // Exact: max and select do no arithmetic.
        assert_close("relu forward", &download(&gpu, &y), &y_cpu, 0.0, 0.0);
        assert_close(
            "relu backward",
            &download(&gpu, &dx),
            &cpu::activation::relu_backward(&y_cpu, &dy_host),
            0.0,
            0.0,
        );
    }
}

//! Dense layers: every pass on the GPU (both matmul variants, whatever the adapter) against the CPU
//! reference, gradients against finite differences, determinism, and bad shapes.

use crate::common::*;
use wgcnn::gpu::ops::dense::{self, Matmul, MatmulVariant, Operand};
use wgcnn::gpu::{Gpu, KernelVariant};
use wgcnn::reference;
use wgcnn::shape::DenseShape;

/// Both kernel variants run on any adapter, so the tiled one is tested on lavapipe too.
fn variants() -> [MatmulVariant; 2] {
    [MatmulVariant::for_kernels(KernelVariant::Software), MatmulVariant::for_kernels(KernelVariant::Tiled)]
}

fn dense_shape(batch: usize, inputs: usize, outputs: usize) -> DenseShape {
    DenseShape { batch, inputs, outputs }
}

/// Tolerance of a GPU sum of `k` products of values in [-1, 1] against the CPU's.
/// Both add in the same (ascending) order, and on lavapipe they agree bit for bit. A GPU compiler
/// may fuse multiply-adds (one rounding fewer per step), so allow for each side's own rounding
/// error: a random walk of k roundings of partial sums that grow like sqrt(k) / 3, about
/// k * eps / 8 in spread; measured against f64 at k = 6272, 3.1e-4 worst over 16k outputs.
/// k * eps (7.5e-4 there) covers both sides' errors; the floor covers tiny sums.
fn reduction_atol(k: usize) -> f32 {
    1e-6 + f32::EPSILON * k as f32
}
const RTOL: f32 = 1e-5;

/// Host data of one dense layer and its output gradient.
struct Layer {
    shape: DenseShape,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
}

impl Layer {
    fn random(shape: DenseShape, seed: u64) -> Self {
        Self {
            shape,
            x: random(seed, shape.batch * shape.inputs, -1.0, 1.0),
            w: random(seed + 1, shape.inputs * shape.outputs, -1.0, 1.0),
            b: random(seed + 2, shape.outputs, -1.0, 1.0),
            dy: random(seed + 3, shape.batch * shape.outputs, -1.0, 1.0),
        }
    }
}

/// Runs the forward pass (with and without ReLU) and the three backward passes of `layer` with
/// `variant` and checks each against the CPU.
fn check_layer(gpu: &Gpu, layer: &Layer, variant: MatmulVariant) {
    let s = layer.shape;
    let what = |pass: &str| format!("{pass} {s:?} {variant:?}");
    let x = upload(gpu, "x", &[s.batch, s.inputs], &layer.x);
    let w = upload(gpu, "w", &[s.inputs, s.outputs], &layer.w);
    let b = upload(gpu, "b", &[s.outputs], &layer.b);
    let dy = upload(gpu, "dy", &[s.batch, s.outputs], &layer.dy);
    let y = zeros(gpu, "y", &[s.batch, s.outputs]);
    let y_relu = zeros(gpu, "y_relu", &[s.batch, s.outputs]);
    let dx = zeros(gpu, "dx", &[s.batch, s.inputs]);
    let dw = zeros(gpu, "dw", &[s.inputs, s.outputs]);
    let db = zeros(gpu, "db", &[s.outputs]);
    let passes = [
        Matmul::forward(&s, &x, &w, &b, &y, false),
        Matmul::forward(&s, &x, &w, &b, &y_relu, true),
        Matmul::backward_input(&s, &dy, &w, &dx),
        Matmul::backward_weight(&s, &x, &dy, &dw),
    ]
    .map(|p| dense::matmul_with(gpu, &p.unwrap(), variant).unwrap());
    let bias = dense::backward_bias(gpu, &s, &dy, &db).unwrap();
    let mut all: Vec<_> = passes.iter().collect();
    all.push(&bias);
    gpu.run(&all).unwrap();

    let forward_atol = reduction_atol(s.inputs);
    assert_close(
        &what("forward"),
        &download(gpu, &y),
        &reference::dense::forward(&s, &layer.x, &layer.w, &layer.b, false),
        forward_atol,
        RTOL,
    );
    assert_close(
        &what("forward relu"),
        &download(gpu, &y_relu),
        &reference::dense::forward(&s, &layer.x, &layer.w, &layer.b, true),
        forward_atol,
        RTOL,
    );
    assert_close(
        &what("dx"),
        &download(gpu, &dx),
        &reference::dense::backward_input(&s, &layer.dy, &layer.w),
        reduction_atol(s.outputs),
        RTOL,
    );
    assert_close(
        &what("dw"),
        &download(gpu, &dw),
        &reference::dense::backward_weight(&s, &layer.x, &layer.dy),
        reduction_atol(s.batch),
        RTOL,
    );
    // Plain additions in the same order on both sides: exact.
    assert_close(&what("db"), &download(gpu, &db), &reference::dense::backward_bias(&s, &layer.dy), 0.0, 0.0);
}

#[test]
fn dense_passes_match_cpu_on_ragged_shapes() {
    let gpu = gpu();
    // A subset of batch {1, 3, 32, 64} x inputs {1, 5, 6272, 31*33} x outputs {1, 3, 128, 256,
    // 257}: every size appears, with the ones that are not multiples of 8 rows, 64 columns or a
    // 16-deep tile paired with both small and large partners.
    let shapes = [
        (1, 1, 1),
        (3, 5, 3),
        (1, 6272, 128),
        (3, 31 * 33, 257),
        (32, 5, 256),
        (32, 6272, 257),
        (64, 1, 128),
        (64, 31 * 33, 3),
        (3, 6272, 1),
        (64, 6272, 256),
    ];
    for (seed, &(batch, inputs, outputs)) in shapes.iter().enumerate() {
        let layer = Layer::random(dense_shape(batch, inputs, outputs), 100 * seed as u64);
        for variant in variants() {
            check_layer(&gpu, &layer, variant);
        }
    }
}

#[test]
fn dense_entry_points_use_the_adapter_variant() {
    // The public functions are `matmul` on the Matmul descriptions: check one ragged shape
    // through them, as a model calls them.
    let gpu = gpu();
    let s = dense_shape(3, 31 * 33, 257);
    let layer = Layer::random(s, 7);
    let x = upload(&gpu, "x", &[3, 31 * 33], &layer.x);
    let w = upload(&gpu, "w", &[31 * 33, 257], &layer.w);
    let b = upload(&gpu, "b", &[257], &layer.b);
    let dy = upload(&gpu, "dy", &[3, 257], &layer.dy);
    let y = zeros(&gpu, "y", &[3, 257]);
    let dx = zeros(&gpu, "dx", &[3, 31 * 33]);
    let dw = zeros(&gpu, "dw", &[31 * 33, 257]);
    let db = zeros(&gpu, "db", &[257]);
    let dispatches = [
        dense::forward(&gpu, &s, &x, &w, &b, &y, true).unwrap(),
        dense::backward_input(&gpu, &s, &dy, &w, &dx).unwrap(),
        dense::backward_weight(&gpu, &s, &x, &dy, &dw).unwrap(),
        dense::backward_bias(&gpu, &s, &dy, &db).unwrap(),
    ];
    gpu.run(&dispatches.iter().collect::<Vec<_>>()).unwrap();
    let tol = reduction_atol(31 * 33);
    let y_cpu = reference::dense::forward(&s, &layer.x, &layer.w, &layer.b, true);
    assert_close("forward", &download(&gpu, &y), &y_cpu, tol, RTOL);
    let dx_cpu = reference::dense::backward_input(&s, &layer.dy, &layer.w);
    assert_close("dx", &download(&gpu, &dx), &dx_cpu, tol, RTOL);
    let dw_cpu = reference::dense::backward_weight(&s, &layer.x, &layer.dy);
    assert_close("dw", &download(&gpu, &dw), &dw_cpu, tol, RTOL);
    let db_cpu = reference::dense::backward_bias(&s, &layer.dy);
    assert_close("db", &download(&gpu, &db), &db_cpu, 0.0, 0.0);
}

#[test]
fn dense_gradients_match_finite_differences() {
    for (relu, s, seed) in [(false, dense_shape(3, 5, 4), 10), (true, dense_shape(2, 7, 3), 20)] {
        let x = random_f64(seed, s.batch * s.inputs, -1.0, 1.0);
        let w = random_f64(seed + 1, s.inputs * s.outputs, -1.0, 1.0);
        let b = random_f64(seed + 2, s.outputs, -1.0, 1.0);
        let r = random_f64(seed + 3, s.batch * s.outputs, -1.0, 1.0);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| weighted_sum(&reference::dense::forward(&s, x, w, b, relu), &r);
        // d loss / d y = r; through the fused ReLU it is r where the output is positive.
        let y = reference::dense::forward(&s, &x, &w, &b, relu);
        let dy = if relu { reference::activation::relu_backward(&y, &r) } else { r.clone() };
        // Keep clear of the ReLU kink, where the derivative is undefined; have both sides of it.
        let pre = reference::dense::forward(&s, &x, &w, &b, false);
        assert!(pre.iter().all(|v| v.abs() > 1e-3), "pick another seed");
        if relu {
            assert!(pre.iter().any(|&v| v < 0.0) && pre.iter().any(|&v| v > 0.0));
        }
        let what = |p: &str| format!("{p} relu={relu}");
        check_gradient(
            &what("dx"),
            &x,
            &reference::dense::backward_input(&s, &dy, &w),
            |x| loss(x, &w, &b),
            1e-6,
            1e-6,
        );
        check_gradient(
            &what("dw"),
            &w,
            &reference::dense::backward_weight(&s, &x, &dy),
            |w| loss(&x, w, &b),
            1e-6,
            1e-6,
        );
        check_gradient(&what("db"), &b, &reference::dense::backward_bias(&s, &dy), |b| loss(&x, &w, b), 1e-6, 1e-6);
    }
}

#[test]
fn dense_passes_are_deterministic() {
    let gpu = gpu();
    let s = dense_shape(32, 31 * 33, 257);
    let layer = Layer::random(s, 21);
    let x = upload(&gpu, "x", &[32, 31 * 33], &layer.x);
    let w = upload(&gpu, "w", &[31 * 33, 257], &layer.w);
    let b = upload(&gpu, "b", &[257], &layer.b);
    let dy = upload(&gpu, "dy", &[32, 257], &layer.dy);
    for variant in variants() {
        let run = || {
            let y = zeros(&gpu, "y", &[32, 257]);
            let dx = zeros(&gpu, "dx", &[32, 31 * 33]);
            let dw = zeros(&gpu, "dw", &[31 * 33, 257]);
            let db = zeros(&gpu, "db", &[257]);
            let dispatches = [
                Matmul::forward(&s, &x, &w, &b, &y, true),
                Matmul::backward_input(&s, &dy, &w, &dx),
                Matmul::backward_weight(&s, &x, &dy, &dw),
            ]
            .map(|p| dense::matmul_with(&gpu, &p.unwrap(), variant).unwrap());
            let bias = dense::backward_bias(&gpu, &s, &dy, &db).unwrap();
            let mut all: Vec<_> = dispatches.iter().collect();
            all.push(&bias);
            gpu.run(&all).unwrap();
            [&y, &dx, &dw, &db].map(|t| download(&gpu, t))
        };
        let (first, second) = (run(), run());
        for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(first.iter().zip(&second)) {
            assert_bits_equal(&format!("{name} {variant:?}"), a, b);
        }
    }
}

#[test]
fn mismatched_shapes_are_errors() {
    let gpu = gpu();
    let s = dense_shape(3, 5, 4);
    let x = zeros(&gpu, "x", &[3, 5]);
    let w = zeros(&gpu, "w", &[5, 4]);
    let b = zeros(&gpu, "b", &[4]);
    let y = zeros(&gpu, "y", &[3, 4]);
    let dx = zeros(&gpu, "dx", &[3, 5]);
    let w_transposed = zeros(&gpu, "w", &[4, 5]);
    let b_long = zeros(&gpu, "b", &[5]);
    let y_short = zeros(&gpu, "y", &[2, 4]);
    let x_batch_swapped = zeros(&gpu, "x", &[5, 3]);

    assert!(dense::forward(&gpu, &s, &x, &w, &b, &y, false).is_ok());
    assert!(dense::forward(&gpu, &s, &x, &w_transposed, &b, &y, false).is_err());
    assert!(dense::forward(&gpu, &s, &x, &w, &b_long, &y, false).is_err());
    assert!(dense::forward(&gpu, &s, &x, &w, &b, &y_short, false).is_err());
    assert!(dense::forward(&gpu, &s, &x_batch_swapped, &w, &b, &y, false).is_err());
    assert!(dense::backward_input(&gpu, &s, &y, &w, &y).is_err());
    assert!(dense::backward_input(&gpu, &s, &y, &w_transposed, &dx).is_err());
    assert!(dense::backward_weight(&gpu, &s, &x, &y, &w_transposed).is_err());
    assert!(dense::backward_weight(&gpu, &s, &x, &y_short, &w).is_err());
    assert!(dense::backward_bias(&gpu, &s, &y, &b_long).is_err());
    assert!(dense::backward_bias(&gpu, &s, &y_short, &b).is_err());
    let empty = dense_shape(0, 5, 4);
    assert!(dense::forward(&gpu, &empty, &x, &w, &b, &y, false).is_err());

    // The general builder checks that strided operands stay inside their tensors, and the
    // variant's tuning.
    let product = |a_row_stride| Matmul {
        m: 3,
        n: 4,
        k: 5,
        a: Operand { tensor: &x, row_stride: a_row_stride, col_stride: 1 },
        b: Operand::row_major(&w, 4),
        bias: None,
        relu: false,
        c: &y,
    };
    let broadcast = MatmulVariant::Broadcast { wg: 64, rows: 8 };
    assert!(dense::matmul_with(&gpu, &product(5), broadcast).is_ok());
    assert!(dense::matmul_with(&gpu, &product(6), broadcast).is_err());
    let too_many_rows = MatmulVariant::Broadcast { wg: 64, rows: 9 };
    assert!(dense::matmul_with(&gpu, &product(5), too_many_rows).is_err());
    let too_big_tile = MatmulVariant::Tiled { tile: 1024 };
    assert!(dense::matmul_with(&gpu, &product(5), too_big_tile).is_err());
}

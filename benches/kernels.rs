//! Kernel timings at the layer shapes of the two reference models (and fer48's convolutions), on the adapter the tests use
//! (`WGCNN_DEVICE` chooses). Each benchmark times the dispatch(es) of one pass, submitted and
//! waited for inside the timed region; pipelines and bind groups are built before timing.
//! The native CPU backend's conv, pool and dense passes (`native_*`) are timed beside them at the
//! same shapes, into buffers allocated before timing.
//! Besides criterion's own report, each prints one line: GFLOP/s (or GB/s) and the backend.
//!
//! The convolutions and the dense layers' products are timed in both kernel variants (named
//! `<pass>/<layer>/software` and `.../tiled`), unless `WGCNN_KERNELS` forces one.
//! `cargo bench --bench kernels -- conv2d_forward/B` runs a subset (criterion's filter).

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use wgcnn::gpu::ops::{activation, adam, batch_norm, conv2d, dense, dropout, loss, max_pool2d};
use wgcnn::gpu::{DeviceChoice, Dispatch, Gpu, GpuTensor, KernelChoice, KernelVariant};
use wgcnn::shape::DropoutConfig;
use wgcnn::shape::{AdamConfig, BatchNormConfig, BatchNormShape, Conv2dShape, DenseShape, Padding, Pool2dShape};

/// What one timed pass does: its dispatches, and its work for the throughput line.
struct Pass {
    name: String,
    dispatches: Vec<Dispatch>,
    work: Work,
}

/// A native pass: a closure over its own buffers.
struct NativePass {
    name: String,
    run: Box<dyn FnMut()>,
    work: Work,
}

enum Work {
    Flops(f64),
    Bytes(f64),
}

fn time_pass(c: &mut Criterion, gpu: &Gpu, pass: &Pass) {
    if !c_filter_matches(&pass.name) {
        return;
    }
    let refs: Vec<&Dispatch> = pass.dispatches.iter().collect();
    gpu.run(&refs).expect("warm-up run"); // first run compiles lazily on some drivers
    let backend = format!("{}, {} kernels", gpu.describe(), gpu.kernels);
    time(c, &pass.name, &pass.work, &backend, &mut || gpu.run(&refs).expect("kernel run"));
}

fn time_native_pass(c: &mut Criterion, pass: &mut NativePass) {
    if !c_filter_matches(&pass.name) {
        return;
    }
    (pass.run)(); // warm-up: the threads' scratch buffers grow once
    let backend = format!("the native CPU backend ({} threads)", rayon::current_num_threads());
    time(c, &pass.name, &pass.work, &backend, &mut pass.run);
}

/// Times `run` under criterion and prints the one-line summary.
fn time(c: &mut Criterion, name: &str, work: &Work, backend: &str, run: &mut dyn FnMut()) {
    let mut total = (Duration::ZERO, 0u64);
    let mut group = c.benchmark_group(name.split('/').next().unwrap_or("kernel"));
    // Passes take 0.05-2 s on lavapipe: one run per sample, not criterion's growing counts.
    group.sampling_mode(SamplingMode::Flat);
    // The id is the rest of the name, so variants of one layer (`A.conv2/winograd`) stay apart.
    group.bench_function(name.split_once('/').map_or(name, |(_, id)| id), |bencher| {
        bencher.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                run();
            }
            let elapsed = start.elapsed();
            total.0 += elapsed;
            total.1 += iters;
            elapsed
        })
    });
    group.finish();
    let seconds = total.0.as_secs_f64() / total.1.max(1) as f64;
    let rate = match work {
        Work::Flops(f) => format!("{:.2} GFLOP/s", f / seconds / 1e9),
        Work::Bytes(b) => format!("{:.2} GB/s", b / seconds / 1e9),
    };
    println!("{name:<44} {:>10.3} ms  {rate:>14}  on {backend}", seconds * 1e3);
}

/// Criterion applies its filter itself; checking it here too skips building the inputs of
/// benchmarks that will not run.
fn c_filter_matches(name: &str) -> bool {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

fn tensor(gpu: &Gpu, what: &str, shape: &[usize]) -> GpuTensor {
    GpuTensor::from_slice(gpu, what, shape, &values(shape.iter().product())).expect("tensor fits the adapter")
}

/// `n` values in [-1, 1).
fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

/// The native backend's conv, pool and dense passes at the same layer shapes.
fn native_passes() -> Vec<NativePass> {
    use wgcnn::native;
    let mut passes = Vec::new();
    let mut pass = |name: String, work: Work, run: Box<dyn FnMut()>| {
        if c_filter_matches(&name) {
            passes.push(NativePass { name, run, work });
        }
    };
    // Each convolution by im2col and, where it fits (3x3, stride 1), by Winograd F(2x2, 3x3),
    // alternating: `<pass>/<layer>/im2col` and `.../winograd`, both counted in direct-convolution FLOPs.
    use native::conv2d::{ConvAlgorithm, OutputGradient};
    for (layer, s) in conv_layers() {
        let size = |dims: [usize; 4]| dims.iter().product::<usize>();
        let (x, w, b) = (values(size(s.input_dims())), values(size(s.weight_dims())), values(s.out_channels));
        let dy = values(size(s.output_dims()));
        let flops = s.forward_flops();
        let algorithms = [ConvAlgorithm::Im2col, ConvAlgorithm::Winograd];
        let algorithms = algorithms.into_iter().filter(|&a| a.for_shape(&s) == a);
        for algorithm in algorithms {
            let name = format!("{algorithm:?}").to_lowercase();
            let (x, w, b, dy) = (x.clone(), w.clone(), b.clone(), dy.clone());
            let (x2, w2, dy2) = (x.clone(), w.clone(), dy.clone());
            let mut y = vec![0.0; dy.len()];
            pass(
                format!("native_conv2d_forward/{layer}/{name}"),
                Work::Flops(flops),
                Box::new(move || native::conv2d::forward_with(algorithm, &s, &x, &w, &b, true, &mut y)),
            );
            if s.in_channels > 3 {
                let (x, w, dy) = (x2.clone(), w2.clone(), dy2.clone());
                let mut dx = vec![0.0; x2.len()];
                pass(
                    format!("native_conv2d_backward_input/{layer}/{name}"),
                    Work::Flops(flops),
                    Box::new(move || {
                        native::conv2d::backward_with(
                            algorithm,
                            &s,
                            &x,
                            &w,
                            OutputGradient::Given(&dy),
                            Some(&mut dx),
                            None,
                        )
                        .expect("a given gradient")
                    }),
                );
            }
            let (mut dw, mut db) = (vec![0.0; w2.len()], vec![0.0; s.out_channels]);
            let direct = algorithm == ConvAlgorithm::Im2col && native::conv2d::weight_gradient_is_direct(&s);
            let name = if direct { "direct".into() } else { name };
            pass(
                format!("native_conv2d_backward_weight/{layer}/{name}"),
                Work::Flops(flops),
                Box::new(move || {
                    native::conv2d::backward_with(
                        algorithm,
                        &s,
                        &x2,
                        &w2,
                        OutputGradient::Given(&dy2),
                        None,
                        Some((&mut dw, &mut db)),
                    )
                    .expect("a given gradient")
                }),
            );
        }
    }
    for (layer, s) in pool_layers() {
        let (input, output) = (s.input_dims().iter().product::<usize>(), s.output_dims().iter().product::<usize>());
        let x = values(input);
        let (mut y, mut argmax) = (vec![0.0; output], vec![0u32; output]);
        native::max_pool2d::forward(&s, &x, &mut y, &mut argmax);
        let (dy, saved) = (values(output), argmax.clone());
        pass(
            format!("native_max_pool2d_forward/{layer}"),
            bytes(input + 2 * output),
            Box::new(move || native::max_pool2d::forward(&s, &x, &mut y, &mut argmax)),
        );
        let mut dx = vec![0.0; input];
        pass(
            format!("native_max_pool2d_backward/{layer}"),
            bytes(input + 2 * output),
            Box::new(move || native::max_pool2d::backward(&s, &saved, None, &dy, &mut dx).expect("own argmax")),
        );
    }
    for (layer, s) in dense_layers() {
        let (x, w, b, dy) =
            (values(s.batch * s.inputs), values(s.inputs * s.outputs), values(s.outputs), values(s.batch * s.outputs));
        let flops = s.forward_flops();
        let (x2, w2, dy2) = (x.clone(), w.clone(), dy.clone());
        let mut y = vec![0.0; s.batch * s.outputs];
        pass(
            format!("native_dense_forward/{layer}"),
            Work::Flops(flops),
            Box::new(move || native::dense::forward(&s, &x, &w, &b, true, &mut y)),
        );
        let (dy3, mut dx) = (dy.clone(), vec![0.0; s.batch * s.inputs]);
        pass(
            format!("native_dense_backward_input/{layer}"),
            Work::Flops(flops),
            Box::new(move || native::dense::backward_input(&s, &dy3, &w2, &mut dx)),
        );
        let (mut dw, mut db) = (vec![0.0; s.inputs * s.outputs], vec![0.0; s.outputs]);
        pass(
            format!("native_dense_backward_weight/{layer}"),
            Work::Flops(flops),
            Box::new(move || native::dense::backward_params(&s, &x2, &dy2, &mut dw, &mut db)),
        );
    }
    passes
}

/// One conv layer of a reference model: (name, input [batch, c, h, w], out channels).
fn conv_layers() -> Vec<(String, Conv2dShape)> {
    let with_padding = |padding| {
        move |batch, c, hw, out| Conv2dShape {
            batch,
            in_channels: c,
            in_h: hw,
            in_w: hw,
            out_channels: out,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            padding,
        }
    };
    let (conv, same) = (with_padding(Padding::Valid), with_padding(Padding::Same));
    vec![
        // Model A: 3x256x256, batch 32; conv (valid) then 2x2 pool each time.
        ("A.conv1".into(), conv(32, 3, 256, 16)),
        ("A.conv2".into(), conv(32, 16, 127, 32)),
        ("A.conv3".into(), conv(32, 32, 62, 64)),
        ("A.conv4".into(), conv(32, 64, 30, 32)),
        // Model B: 3x128x128, batch 64.
        ("B.conv1".into(), conv(64, 3, 128, 32)),
        ("B.conv2".into(), conv(64, 32, 63, 64)),
        ("B.conv3".into(), conv(64, 64, 30, 128)),
        // fer48: 1x48x48, batch 64; `same` convolutions, a 2x2 pool after the 1st, 3rd, 5th and 6th.
        ("F.conv1".into(), same(64, 1, 48, 32)),
        ("F.conv2".into(), same(64, 32, 24, 64)),
        ("F.conv3".into(), same(64, 64, 24, 64)),
        ("F.conv4".into(), same(64, 64, 12, 128)),
        ("F.conv5".into(), same(64, 128, 12, 128)),
        ("F.conv6".into(), same(64, 128, 6, 256)),
    ]
}

fn conv_passes(gpu: &Gpu) -> Vec<Pass> {
    let mut passes = Vec::new();
    for (layer, s) in conv_layers() {
        let kernels = gpu.kernels;
        let wanted = |pass: &str| c_filter_matches(&format!("conv2d_{pass}/{layer}/{kernels}"));
        if !["forward", "backward_input", "backward_weight"].iter().any(|p| wanted(p)) {
            continue;
        }
        let x = tensor(gpu, "x", &s.input_dims());
        let w = tensor(gpu, "w", &s.weight_dims());
        let b = tensor(gpu, "b", &[s.out_channels]);
        let y = tensor(gpu, "y", &s.output_dims());
        let flops = s.forward_flops();
        passes.push(Pass {
            name: format!("conv2d_forward/{layer}/{}", gpu.kernels),
            dispatches: conv2d::forward(gpu, &s, &x, &w, &b, &y, true).unwrap(),
            work: Work::Flops(flops),
        });
        // The first layer's input gradient is never needed in training.
        if s.in_channels > 3 {
            let dx = tensor(gpu, "dx", &s.input_dims());
            passes.push(Pass {
                name: format!("conv2d_backward_input/{layer}/{}", gpu.kernels),
                dispatches: conv2d::backward_input(gpu, &s, &y, &w, &dx).unwrap(),
                work: Work::Flops(flops),
            });
        }
        let dw = tensor(gpu, "dw", &s.weight_dims());
        let db = tensor(gpu, "db", &[s.out_channels]);
        passes.push(Pass {
            name: format!("conv2d_backward_weight/{layer}/{}", gpu.kernels),
            dispatches: conv2d::backward_weight(gpu, &s, &x, &y, &dw, &db).unwrap(),
            work: Work::Flops(flops),
        });
    }
    passes
}

/// Bytes of f32 (or u32) elements.
fn bytes(elements: usize) -> Work {
    Work::Bytes(4.0 * elements as f64)
}

/// The pools after each convolution of both models (fer48's follow batch norm and are left out):
/// (name, shape).
fn pool_layers() -> Vec<(String, Pool2dShape)> {
    conv_layers()
        .into_iter()
        .filter(|(layer, _)| !layer.starts_with("F."))
        .map(|(layer, c)| {
            let name = layer.replace("conv", "pool");
            (
                name,
                Pool2dShape {
                    batch: c.batch,
                    channels: c.out_channels,
                    in_h: c.out_h(),
                    in_w: c.out_w(),
                    pool: 2,
                    stride: 2,
                },
            )
        })
        .collect()
}

fn pool_passes(gpu: &Gpu) -> Vec<Pass> {
    let mut passes = Vec::new();
    for (layer, s) in pool_layers() {
        if !c_filter_matches(&format!("max_pool2d_forward/{layer}"))
            && !c_filter_matches(&format!("max_pool2d_backward/{layer}"))
        {
            continue;
        }
        let (input, output) = (s.input_dims().iter().product::<usize>(), s.output_dims().iter().product::<usize>());
        let x = tensor(gpu, "x", &s.input_dims());
        let y = tensor(gpu, "y", &s.output_dims());
        let argmax = GpuTensor::zeros(gpu, "argmax", &s.output_dims()).unwrap();
        let forward = max_pool2d::forward(gpu, &s, &x, &y, &argmax).unwrap();
        gpu.run(&[&forward]).unwrap(); // valid indices for the backward pass
        passes.push(Pass {
            name: format!("max_pool2d_forward/{layer}"),
            dispatches: vec![forward],
            work: bytes(input + 2 * output),
        });
        let dx = tensor(gpu, "dx", &s.input_dims());
        passes.push(Pass {
            name: format!("max_pool2d_backward/{layer}"),
            // As in training, fused with the backward pass of the ReLU before the pool.
            dispatches: vec![max_pool2d::backward(gpu, &s, &argmax, &y, &y, &dx, true).unwrap()],
            work: bytes(input + 3 * output),
        });
    }
    passes
}

/// Dense layers of both models: Model A flattens 32x14x14, Model B 128x14x14.
fn dense_layers() -> Vec<(String, DenseShape)> {
    let d = |batch, inputs, outputs| DenseShape { batch, inputs, outputs };
    vec![
        ("A.dense1".into(), d(32, 32 * 14 * 14, 256)),
        ("A.dense2".into(), d(32, 256, 1)),
        ("B.dense1".into(), d(64, 128 * 14 * 14, 128)),
        ("B.dense2".into(), d(64, 128, 3)),
    ]
}

fn dense_passes(gpu: &Gpu) -> Vec<Pass> {
    let mut passes = Vec::new();
    for (layer, s) in dense_layers() {
        if !["forward", "backward_input", "backward_weight", "backward_bias"]
            .iter()
            .any(|p| c_filter_matches(&format!("dense_{p}/{layer}/{}", gpu.kernels)))
        {
            continue;
        }
        let x = tensor(gpu, "x", &[s.batch, s.inputs]);
        let w = tensor(gpu, "w", &[s.inputs, s.outputs]);
        let b = tensor(gpu, "b", &[s.outputs]);
        let y = tensor(gpu, "y", &[s.batch, s.outputs]);
        let flops = Work::Flops(s.forward_flops());
        passes.push(Pass {
            name: format!("dense_forward/{layer}/{}", gpu.kernels),
            dispatches: vec![dense::forward(gpu, &s, &x, &w, &b, &y, true).unwrap()],
            work: flops,
        });
        passes.push(Pass {
            name: format!("dense_backward_input/{layer}/{}", gpu.kernels),
            dispatches: vec![dense::backward_input(gpu, &s, &y, &w, &x).unwrap()],
            work: Work::Flops(s.forward_flops()),
        });
        let dw = tensor(gpu, "dw", &[s.inputs, s.outputs]);
        passes.push(Pass {
            name: format!("dense_backward_weight/{layer}/{}", gpu.kernels),
            dispatches: vec![dense::backward_weight(gpu, &s, &x, &y, &dw).unwrap()],
            work: Work::Flops(s.forward_flops()),
        });
        passes.push(Pass {
            name: format!("dense_backward_bias/{layer}/{}", gpu.kernels),
            dispatches: vec![dense::backward_bias(gpu, &s, &y, &b).unwrap()],
            work: bytes(s.batch * s.outputs + s.outputs),
        });
    }
    passes
}

/// Element-wise and reduction kernels at the sizes they meet in the two models.
fn other_passes(gpu: &Gpu) -> Vec<Pass> {
    let mut passes = Vec::new();
    // ReLU on Model A's largest activation (the first convolution's output), when not fused.
    let a1: Vec<usize> = conv_layers()[0].1.output_dims().to_vec();
    let len: usize = a1.iter().product();
    if c_filter_matches("relu") {
        let x = tensor(gpu, "x", &a1);
        let y = tensor(gpu, "y", &a1);
        let dx = tensor(gpu, "dx", &a1);
        passes.push(Pass {
            name: "relu_forward/A.conv1".into(),
            dispatches: vec![activation::relu(gpu, &x, &y).unwrap()],
            work: bytes(2 * len),
        });
        passes.push(Pass {
            name: "relu_backward/A.conv1".into(),
            dispatches: vec![activation::relu_backward(gpu, &y, &x, &dx).unwrap()],
            work: bytes(3 * len),
        });
    }
    // Dropout 0.5 after Model B's first dense layer.
    if c_filter_matches("dropout") {
        let shape = [64, 128];
        let config = DropoutConfig { rate: 0.5, seed: 7, step: 1 };
        let (x, y) = (tensor(gpu, "x", &shape), tensor(gpu, "y", &shape));
        passes.push(Pass {
            name: "dropout_forward/B.dropout".into(),
            dispatches: vec![dropout::forward(gpu, &config, &x, &y).unwrap()],
            work: bytes(2 * 64 * 128),
        });
        passes.push(Pass {
            name: "dropout_backward/B.dropout".into(),
            dispatches: vec![dropout::backward(gpu, &config, &y, &x).unwrap()],
            work: bytes(2 * 64 * 128),
        });
    }
    // The two output heads: loss, gradient and statistics in one pass.
    for (name, batch, classes) in [("A.sigmoid_bce", 32usize, 1usize), ("B.softmax_cce", 64, 3)] {
        if !c_filter_matches(&format!("cross_entropy/{name}")) {
            continue;
        }
        let logits = tensor(gpu, "logits", &[batch, classes]);
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes.max(2) as u32).collect();
        let labels = GpuTensor::from_slice(gpu, "labels", &[batch], &labels).unwrap();
        let weights =
            GpuTensor::from_slice(gpu, "class weights", &[classes.max(2)], &vec![1f32; classes.max(2)]).unwrap();
        let dlogits = tensor(gpu, "dlogits", &[batch, classes]);
        let stats = tensor(gpu, "stats", &[loss::STATS_LEN]);
        passes.push(Pass {
            name: format!("cross_entropy/{name}"),
            dispatches: vec![loss::cross_entropy(gpu, &logits, &labels, &weights, &dlogits, &stats).unwrap()],
            work: bytes(3 * batch * classes),
        });
    }
    // Batch normalisation after Model B's first convolution (as one source project placed it).
    if c_filter_matches("batch_norm") {
        let c = conv_layers()[4].1;
        let shape = BatchNormShape { batch: c.batch, channels: c.out_channels, spatial: c.out_h() * c.out_w() };
        let dims = c.output_dims();
        let (x, y, dx) = (tensor(gpu, "x", &dims), tensor(gpu, "y", &dims), tensor(gpu, "dx", &dims));
        let per_channel = |what| tensor(gpu, what, &[shape.channels]);
        let (gamma, beta, mean, var) =
            (per_channel("gamma"), per_channel("beta"), per_channel("mean"), per_channel("var"));
        let (dgamma, dbeta) = (per_channel("dgamma"), per_channel("dbeta"));
        let weights = batch_norm::Weights { gamma: &gamma, beta: &beta, running_mean: &mean, running_var: &var };
        let rows = wgcnn::gpu::GpuTensor::from_slice(gpu, "rows", &[1], &[shape.batch as u32]).unwrap();
        let forward =
            batch_norm::forward_train(gpu, &shape, &BatchNormConfig::default(), &x, &weights, &rows, &y).unwrap();
        let grads = batch_norm::Grads { dx: &dx, dgamma: &dgamma, dbeta: &dbeta };
        let backward = batch_norm::backward(gpu, &shape, &x, &gamma, &forward.saved, &y, &grads).unwrap();
        // Statistics (x read twice) then normalisation (x read, y written).
        passes.push(Pass {
            name: "batch_norm_forward/B.conv1".into(),
            dispatches: forward.dispatches,
            work: bytes(4 * shape.len()),
        });
        // Parameter gradients (x, dy read) then input gradient (x, dy read, dx written).
        passes.push(Pass {
            name: "batch_norm_backward/B.conv1".into(),
            dispatches: backward,
            work: bytes(5 * shape.len()),
        });
    }
    // One Adam step over every parameter of each model (Model A: 1,648,193; Model B: 3,305,027).
    for (name, params) in [("A.all_parameters", 1_648_193usize), ("B.all_parameters", 3_305_027)] {
        if !c_filter_matches(&format!("adam/{name}")) {
            continue;
        }
        let t = |what| tensor(gpu, what, &[params]);
        let (p, g, m, v) = (t("param"), t("grad"), t("m"), t("v"));
        passes.push(Pass {
            name: format!("adam/{name}"),
            dispatches: vec![adam::step(gpu, &AdamConfig::default(), 1, &p, &g, &m, &v).unwrap()],
            // param, grad, m, v read; param, m, v written.
            work: bytes(7 * params),
        });
    }
    passes
}

fn kernels(c: &mut Criterion) {
    let choice = DeviceChoice::resolve(None).expect("WGCNN_DEVICE");
    // The convolutions and matrix products in each kernel variant (only the one WGCNN_KERNELS
    // forces, if it does); the other kernels have one variant.
    let variants = match KernelChoice::from_env().expect("WGCNN_KERNELS") {
        KernelChoice::Forced(variant) => vec![variant],
        KernelChoice::Auto => vec![KernelVariant::Software, KernelVariant::Tiled],
    };
    let open = |kernels| {
        Gpu::with_kernels(&choice, kernels).unwrap_or_else(|e| panic!("the kernel benchmarks need an adapter: {e}"))
    };
    for variant in variants {
        let gpu = open(KernelChoice::Forced(variant));
        println!("adapter: {}, {} kernels", gpu.describe(), gpu.kernels);
        for family in [conv_passes, dense_passes] {
            for pass in family(&gpu) {
                time_pass(c, &gpu, &pass);
            }
        }
    }
    let gpu = open(KernelChoice::Auto);
    for family in [pool_passes, other_passes] {
        for pass in family(&gpu) {
            time_pass(c, &gpu, &pass);
        }
    }
    for mut pass in native_passes() {
        time_native_pass(c, &mut pass);
    }
}

criterion_group! {
    name = benches;
    // Lavapipe passes take 0.1-2 s: few samples, short warm-up.
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = kernels
}
criterion_main!(benches);

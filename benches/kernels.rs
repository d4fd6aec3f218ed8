//! Kernel timings at the layer shapes of the two reference models, on the adapter the tests use
//! (`WGCNN_DEVICE` chooses). Each benchmark times the dispatch(es) of one pass, submitted and
//! waited for inside the timed region; pipelines and bind groups are built before timing.
//! Besides criterion's own report, each prints one line: GFLOP/s (or GB/s) and the adapter.
//!
//! `cargo bench --bench kernels -- conv2d_forward/B` runs a subset (criterion's filter).

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use wgcnn::gpu::ops::conv2d;
use wgcnn::gpu::{DeviceChoice, Dispatch, Gpu, GpuTensor};
use wgcnn::shape::{Conv2dShape, Padding};

/// What one timed pass does: its dispatches, and its work for the throughput line.
struct Pass {
    name: String,
    dispatches: Vec<Dispatch>,
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
    let mut total = (Duration::ZERO, 0u64);
    let mut group = c.benchmark_group(pass.name.split('/').next().unwrap_or("kernel"));
    // Passes take 0.05-2 s on lavapipe: one run per sample, not criterion's growing counts.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(pass.name.split('/').nth(1).unwrap_or(&pass.name), |bencher| {
        bencher.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                gpu.run(&refs).expect("kernel run");
            }
            let elapsed = start.elapsed();
            total.0 += elapsed;
            total.1 += iters;
            elapsed
        })
    });
    group.finish();
    let seconds = total.0.as_secs_f64() / total.1.max(1) as f64;
    let rate = match pass.work {
        Work::Flops(f) => format!("{:.2} GFLOP/s", f / seconds / 1e9),
        Work::Bytes(b) => format!("{:.2} GB/s", b / seconds / 1e9),
    };
    println!("{:<44} {:>10.3} ms  {:>14}  on {}", pass.name, seconds * 1e3, rate, gpu.describe());
}

/// Criterion applies its filter itself; checking it here too skips building the inputs of
/// benchmarks that will not run.
fn c_filter_matches(name: &str) -> bool {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

fn tensor(gpu: &Gpu, what: &str, shape: &[usize]) -> GpuTensor {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    GpuTensor::from_slice(gpu, what, shape, &data).expect("tensor fits the adapter")
}

/// One conv layer of a reference model: (name, input [batch, c, h, w], out channels).
fn conv_layers() -> Vec<(String, Conv2dShape)> {
    let conv = |batch, c, hw, out| Conv2dShape {
        batch,
        in_channels: c,
        in_h: hw,
        in_w: hw,
        out_channels: out,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: Padding::Valid,
    };
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
    ]
}

fn conv_passes(gpu: &Gpu) -> Vec<Pass> {
    let mut passes = Vec::new();
    for (layer, s) in conv_layers() {
        let wanted = |pass: &str| c_filter_matches(&format!("conv2d_{pass}/{layer}"));
        if !["forward", "backward_input", "backward_weight"].iter().any(|p| wanted(p)) {
            continue;
        }
        let x = tensor(gpu, "x", &s.input_dims());
        let w = tensor(gpu, "w", &s.weight_dims());
        let b = tensor(gpu, "b", &[s.out_channels]);
        let y = tensor(gpu, "y", &s.output_dims());
        let flops = s.forward_flops();
        passes.push(Pass {
            name: format!("conv2d_forward/{layer}"),
            dispatches: conv2d::conv2d_forward(gpu, &s, &x, &w, &b, &y, true).unwrap(),
            work: Work::Flops(flops),
        });
        // The first layer's input gradient is never needed in training.
        if s.in_channels > 3 {
            let dx = tensor(gpu, "dx", &s.input_dims());
            passes.push(Pass {
                name: format!("conv2d_backward_input/{layer}"),
                dispatches: conv2d::conv2d_backward_input(gpu, &s, &y, &w, &dx).unwrap(),
                work: Work::Flops(flops),
            });
        }
        let dw = tensor(gpu, "dw", &s.weight_dims());
        let db = tensor(gpu, "db", &[s.out_channels]);
        passes.push(Pass {
            name: format!("conv2d_backward_weight/{layer}"),
            dispatches: conv2d::conv2d_backward_weight(gpu, &s, &x, &y, &dw, &db).unwrap(),
            work: Work::Flops(flops),
        });
    }
    passes
}

fn kernels(c: &mut Criterion) {
    let choice = DeviceChoice::resolve(None).expect("WGCNN_DEVICE");
    let gpu = Gpu::new(&choice).unwrap_or_else(|e| panic!("the kernel benchmarks need an adapter: {e}"));
    println!("adapter: {}", gpu.describe());
    for pass in conv_passes(&gpu) {
        time_pass(c, &gpu, &pass);
    }
}

criterion_group! {
    name = benches;
    // Lavapipe passes take 0.1-2 s: few samples, short warm-up.
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = kernels
}
criterion_main!(benches);

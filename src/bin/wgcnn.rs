//! The `wgcnn` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wgcnn::gpu::context::{DEVICE_ENV, describe_adapter, list_adapters};
use wgcnn::gpu::{DeviceChoice, Gpu};
use wgcnn::model::TrainOptions;
use wgcnn::model::backend::Backend;
use wgcnn::model::spec::Architecture;
use wgcnn::train::throughput::measure_training;

#[derive(Parser)]
#[command(
    name = "wgcnn",
    version,
    about = "Convolutional networks on hand-written WGSL kernels: train, evaluate, predict"
)]
struct Cli {
    /// Where to run: gpu, software (lavapipe), cpu, auto, or part of an adapter's name.
    #[arg(long, global = true, env = DEVICE_ENV, default_value = "auto", value_parser = |s: &str| s.parse::<DeviceChoice>())]
    device: DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters found, the one --device chooses, and its limits.
    Info,
    /// Measure training speed: images/s of whole training steps (forward, loss, backward, Adam)
    /// on random data, the median over the timed steps after a warm-up.
    BenchTrain {
        /// happy-sad (Model A, 3x256x256) or emotions3 (Model B, 3x128x128).
        #[arg(long, default_value = "emotions3")]
        preset: String,
        /// Images per step (default: 32 for happy-sad, 64 for emotions3).
        #[arg(long)]
        batch_size: Option<usize>,
        /// Timed steps.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Untimed steps first (pipeline warm-up).
        #[arg(long, default_value_t = 2)]
        warmup: usize,
    },
}

fn bench_train(
    choice: &DeviceChoice,
    preset: &str,
    batch: Option<usize>,
    steps: usize,
    warmup: usize,
) -> anyhow::Result<()> {
    let arch = Architecture::preset(preset)?;
    let batch = batch.unwrap_or(if preset == "happy-sad" { 32 } else { 64 });
    let weights = arch.initial_weights(1)?;
    let backend = Backend::new(choice)?;
    let mut model = backend.model(&arch, batch, &weights, &TrainOptions::default())?;
    let adapter = backend.describe();
    println!("adapter: {adapter}");
    println!("model: {preset} ({arch}) at {}, batch {batch}", arch.input);
    let sample_len = arch.input.elements();
    let t = measure_training(model.as_mut(), sample_len, arch.classes(), warmup, steps, 7)?;
    let seconds: Vec<String> = t.step_seconds.iter().map(|s| format!("{s:.3}")).collect();
    println!("step seconds: {}", seconds.join(" "));
    println!("median step: {:.3} s, {:.2} images/s (training)", t.median_step(), t.images_per_second());
    Ok(())
}

fn info(choice: &DeviceChoice) -> anyhow::Result<()> {
    let adapters = list_adapters();
    println!("adapters found: {}", adapters.len());
    for a in &adapters {
        let i = a.get_info();
        println!("  {}  driver: {} {}", describe_adapter(&i), i.driver, i.driver_info);
    }
    if *choice == DeviceChoice::Cpu {
        println!("chosen: the CPU reference backend");
        return Ok(());
    }
    let gpu = Gpu::new(choice)?;
    let l = &gpu.limits;
    println!("chosen: {}  (kernel variants: {:?})", gpu.describe(), gpu.profile);
    println!("  max storage binding: {} MiB", l.max_storage_buffer_binding_size / (1 << 20));
    println!("  max buffer:          {} MiB", l.max_buffer_size / (1 << 20));
    println!("  max workgroup:       {} invocations", l.max_compute_invocations_per_workgroup);
    println!("  max workgroups/dim:  {}", l.max_compute_workgroups_per_dimension);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(&cli.device),
        Command::BenchTrain { preset, batch_size, steps, warmup } => {
            bench_train(&cli.device, &preset, batch_size, steps, warmup)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgcnn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `wgcnn` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wgcnn::data::synth::{Emotion, write_dataset};
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
    /// Draw synthetic cartoon faces (the mouth's curve carries the emotion) and write them as
    /// PNGs, one folder per class, a dataset the loader reads like any other.
    Synth {
        /// Folder to write: OUT/<class>/<class>_<i>.png. A class folder that exists must be empty.
        #[arg(long)]
        out: PathBuf,
        /// Images per class.
        #[arg(long, default_value_t = 100)]
        per_class: usize,
        /// Comma-separated classes among happy, sad and angry.
        #[arg(long, default_value = "happy,sad")]
        classes: String,
        /// Width and height in pixels (16 or more).
        #[arg(long, default_value_t = 128)]
        size: u32,
        /// The same seed draws the same faces.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn synth(out: &std::path::Path, per_class: usize, classes: &str, size: u32, seed: u64) -> anyhow::Result<()> {
    let emotions = Emotion::parse_list(classes)?;
    let written = write_dataset(out, &emotions, per_class, size, seed)?;
    for emotion in &emotions {
        println!("{}: {per_class} images in {}", emotion.name(), out.join(emotion.name()).display());
    }
    println!("wrote {} PNGs of {size}x{size} (seed {seed}) under {}", written.len(), out.display());
    Ok(())
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
        Command::Synth { out, per_class, classes, size, seed } => synth(&out, per_class, &classes, size, seed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgcnn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

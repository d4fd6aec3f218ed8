//! The `wgcnn` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wgcnn::gpu::context::{DEVICE_ENV, describe_adapter, list_adapters};
use wgcnn::gpu::{DeviceChoice, Gpu};

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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgcnn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

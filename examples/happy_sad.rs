//! The first source project end to end: a folder of happy/ and sad/ photos, resized to 256x256,
//! split 70/20/10, Model A (c16-p-c32-p-c64-p-c32-p-f-d256-d1, sigmoid), trained with Adam for at
//! most 20 epochs with early stopping and LR reduction on plateau; plots, the classification
//! report and confusion matrix on the test split, save, reload, and predict again.
//!
//! `cargo run --release --example happy_sad [-- --data DIR]`. With no `--data` it draws synthetic
//! happy and sad faces first (the project's embedded default), so it runs on a fresh machine:
//! 300 pairs at 64x64 (Model A's layers on a 64x64 input; see `common::example_dataset`).
//! Everything lands in `--out` (default `runs/happy_sad`).

mod common;

use std::path::PathBuf;

use clap::Parser;
use wgcnn::data::augment::Augment;
use wgcnn::data::synth::Emotion;
use wgcnn::gpu::DeviceChoice;
use wgcnn::model::backend::Backend;
use wgcnn::model::spec::InputShape;
use wgcnn::workflow::preset::Preset;
use wgcnn::workflow::train::TrainSettings;

#[derive(Parser)]
struct Args {
    /// A folder with happy/ and sad/ subfolders (default: synthetic faces, drawn into OUT/synthetic).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value = "runs/happy_sad")]
    out: PathBuf,
    /// Input size (square): default 256 (the source project's) for `--data`, 64 for the
    /// synthetic faces.
    #[arg(long)]
    size: Option<usize>,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Training-split augmentation (off, moderate, or a list; see `wgcnn train --help`).
    #[arg(long, default_value = "off")]
    augment: Augment,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// auto (a hardware GPU, else cpu), gpu, software, cpu, reference, or part of an adapter's name.
    #[arg(long, env = "WGCNN_DEVICE", default_value = "auto")]
    device: DeviceChoice,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let faces = [Emotion::Happy, Emotion::Sad];
    let (data, size) = common::example_dataset(args.data, args.size, 256, &faces, &args.out, args.seed)?;
    let backend = Backend::new(&args.device)?;
    let preset = Preset::named("happy-sad")?;
    let settings = TrainSettings {
        architecture: preset.architecture.clone().with_input(InputShape::new(3, size, size)),
        epochs: args.epochs,
        seed: args.seed,
        patience: Some(4),
        lr_patience: Some(2),
        augment: args.augment,
        // An example reruns into its own folder: each run replaces the last.
        overwrite: true,
        ..preset.settings(data, &args.out)
    };
    let run = common::train(&backend, &settings)?;
    common::finish_example(&run, &backend, &args.out)?;
    Ok(())
}

//! The second source project end to end: happy/, sad/ and angry/ faces, split 80/10/10, Model B
//! (c32-p-c64-p-c128-p-f-d128-drop0.5-d3, softmax), trained with Adam, early stopping and LR
//! reduction on plateau; plots, the classification report and confusion matrix on the test split
//! and, with `--test-data`, on a separate test folder; save, reload, and predict again.
//!
//! `cargo run --release --example happy_sad_angry [-- --data DIR --test-data DIR]`. FER-2013's
//! 48x48 grayscale faces: `--data ../shared/data/emotions3 --test-data ../shared/data/emotions3_test
//! --size 48 --grayscale --augment flip,shift=0.1,zoom=0.1 --epochs 60` (69% on the test folder;
//! `--arch` tries another model and `--split 0.9,0.1,0` leaves no face idle, see the README).
//! `--preset fer48` trains the model and settings chosen on FER-2013's validation faces instead
//! (its input, 1x48x48, its batch, epochs, split, augmentation and class weights): with
//! `--data ../shared/data/emotions3_full --test-data ../shared/data/emotions3_test` it is the
//! README's FER result.
//! With no `--data` it draws synthetic faces first (the embedded default): 300 triples at 64x64
//! (Model B's layers on a 64x64 input), few enough to train in minutes on two CPU cores and
//! enough to be learnt, not memorised.

mod common;

use std::path::PathBuf;

use clap::Parser;
use wgcnn::data::augment::Augment;
use wgcnn::data::split::SplitRatios;
use wgcnn::data::synth::Emotion;
use wgcnn::gpu::DeviceChoice;
use wgcnn::model::backend::Backend;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::workflow::preset::Preset;
use wgcnn::workflow::train::TrainSettings;

#[derive(Parser)]
struct Args {
    /// A folder with happy/, sad/ and angry/ subfolders (default: synthetic faces in OUT/synthetic).
    #[arg(long)]
    data: Option<PathBuf>,
    /// A separate test folder of the same classes, evaluated after training.
    #[arg(long)]
    test_data: Option<PathBuf>,
    #[arg(long, default_value = "runs/happy_sad_angry")]
    out: PathBuf,
    /// An architecture spec instead of Model B, e.g. the deeper one with batch norm that the README
    /// measures on FER-2013.
    #[arg(long, conflicts_with = "preset")]
    arch: Option<String>,
    /// A preset's model and training settings instead of Model B and the flags below: fer48.
    #[arg(long)]
    preset: Option<String>,
    /// Train, validation and test shares (with `--test-data`, 0.9,0.1,0 leaves no faces idle).
    #[arg(long, default_value = "0.8,0.1,0.1")]
    split: SplitRatios,
    /// Input size (square): default 128 (Model B's) for `--data`, 64 for the synthetic faces.
    #[arg(long)]
    size: Option<usize>,
    /// One grayscale channel (FER-2013's faces are grayscale).
    #[arg(long)]
    grayscale: bool,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Early stopping: epochs without a lower validation loss before stopping (best weights kept).
    #[arg(long, default_value_t = 8)]
    patience: usize,
    /// The learning rate halves after this many epochs without a lower validation loss.
    #[arg(long, default_value_t = 3)]
    lr_patience: usize,
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
    let chosen = args.preset.as_deref().map(Preset::named).transpose()?;
    let default_size = chosen.as_ref().map_or(128, |p| p.architecture.input.height);
    let (data, size) =
        common::example_dataset(args.data, args.size, default_size, &Emotion::ALL, &args.out, args.seed)?;
    let backend = Backend::new(&args.device)?;
    let settings = match chosen {
        // The preset's model and training settings, at the size asked.
        Some(preset) => {
            let input = InputShape { height: size, width: size, ..preset.architecture.input };
            TrainSettings {
                architecture: preset.architecture.clone().with_input(input),
                test_dir: args.test_data,
                seed: args.seed,
                overwrite: true,
                ..preset.settings(data, &args.out)
            }
        }
        // Model B with the flags' settings.
        None => {
            let model_b = Preset::named("emotions3")?;
            let architecture = match &args.arch {
                Some(spec) => Architecture::parse(spec, model_b.architecture.input)?,
                None => model_b.architecture.clone(),
            };
            let channels = if args.grayscale { 1 } else { 3 };
            TrainSettings {
                test_dir: args.test_data,
                architecture: architecture.with_input(InputShape::new(channels, size, size)),
                split: args.split,
                epochs: args.epochs,
                batch_size: args.batch_size,
                lr: args.lr,
                seed: args.seed,
                patience: Some(args.patience),
                lr_patience: Some(args.lr_patience),
                augment: args.augment,
                // An example reruns into its own folder: each run replaces the last.
                overwrite: true,
                ..model_b.settings(data, &args.out)
            }
        }
    };
    let run = common::train(&backend, &settings)?;
    common::finish_example(&run, &backend, &args.out)?;
    Ok(())
}

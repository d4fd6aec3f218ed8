//! The command line's clap types: the global flags (--device, the image limits) and the
//! commands; the larger commands' arguments and the shared --tta are in the modules below.

mod serve;
mod train;
mod tta;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::gpu::device::DEVICE_ENV;
use wgcnn::model::explain::ExplainMethod;

pub use serve::ServeArgs;
pub use train::TrainArgs;
pub use tta::TtaArg;

#[derive(Parser)]
#[command(
    name = "wgcnn",
    version,
    about = "Convolutional networks on hand-written WGSL kernels: train, evaluate, predict"
)]
pub struct Cli {
    /// Where to run: auto (a hardware GPU, else cpu), gpu, software (the WGSL kernels on lavapipe),
    /// cpu (native, every core), reference (the tests' plain loops), or part of an adapter's name.
    #[arg(long, global = true, env = DEVICE_ENV, default_value = "auto", value_parser = |s: &str| s.parse::<DeviceChoice>())]
    pub device: DeviceChoice,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Bounds on what reading one image may cost: an image over them is skipped and reported.
#[derive(clap::Args)]
pub struct LimitArgs {
    /// The most pixels (width x height) an image may declare, checked from its header (Pillow's
    /// limit by default).
    #[arg(long, global = true, value_name = "PIXELS", default_value_t = DecodeLimits::default().max_pixels,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_image_pixels: u64,
    /// The widest and tallest image decoded, in pixels, checked from its header [default: none but
    /// each format's own: 65535 for JPEG and GIF, 16383 for WebP].
    #[arg(long, global = true, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..))]
    max_image_side: Option<u32>,
    /// The most memory an image's decoded pixels may take as stored, in MiB, checked from its
    /// header.
    #[arg(long, global = true, value_name = "MIB", default_value_t = DecodeLimits::default().max_pixel_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    max_image_mb: u64,
    /// The largest image file read, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = DecodeLimits::default().max_file_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    max_file_mb: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> anyhow::Result<DecodeLimits> {
        let limits = DecodeLimits {
            max_pixels: self.max_image_pixels,
            max_side: self.max_image_side.unwrap_or(DecodeLimits::default().max_side),
            max_pixel_bytes: self.max_image_mb << 20,
            max_file_bytes: self.max_file_mb << 20,
        };
        limits.validate()?;
        Ok(limits)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// List the adapters found, the one --device chooses, and its limits.
    Info,
    /// Measure training speed: images/s of whole training steps (forward, loss, backward, Adam)
    /// on random data, the median over the timed steps after a warm-up.
    BenchTrain {
        /// happy-sad (Model A, 3x256x256), emotions3 (Model B, 3x128x128) or fer48 (1x48x48).
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
        /// Input size instead of the preset's (square). A tiny size at batch 1 leaves almost only
        /// the fixed cost of a step: its submits, dispatches and readback.
        #[arg(long)]
        size: Option<usize>,
        /// Then time one more step per layer and pass (each part run on its own), as a table.
        #[arg(long)]
        profile: bool,
    },
    /// Train a model on a folder of class subfolders (as Keras's image_dataset_from_directory):
    /// prints the class counts and the model summary, trains with progress bars, and writes into
    /// --out: model.safetensors, history.csv, training.png, classes.png, and the test split's
    /// evaluation (evaluation.txt, evaluation.json, confusion.png).
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on a folder of class subfolders: accuracy, per-class precision,
    /// recall, F1 and support (as scikit-learn's classification_report), and the confusion matrix
    /// as text and as confusion.png.
    Eval {
        /// A model.safetensors written by `wgcnn train`.
        model: PathBuf,
        /// A folder of class subfolders named as the model's classes.
        #[arg(required_unless_present = "split")]
        data: Option<PathBuf>,
        /// Instead of DATA, a part of the split the model's run trained on: train, validation or
        /// test, found again from the checkpoint in the model's run folder (its data folder, split
        /// ratios and seed). Compare settings such as --tta on validation, not on a test set.
        #[arg(long, conflicts_with = "data", value_parser = ["train", "validation", "test"])]
        split: Option<String>,
        #[command(flatten)]
        tta: TtaArg,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the confusion matrix into this folder (created if missing) as
        /// confusion-<data folder's name>.png, titled with the data it shows.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Predict images: each one's label, the confidence of that label (always the probability of
    /// the predicted class), and the probability of every class.
    Predict {
        /// A model.safetensors written by `wgcnn train`.
        model: PathBuf,
        /// Image files (JPEG, PNG, GIF, BMP, WebP...; recognised by content).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the images in a grid with the label and confidence under each (green or red
        /// when the image's folder names its true class).
        #[arg(long)]
        grid: Option<PathBuf>,
        #[command(flatten)]
        tta: TtaArg,
    },
    /// Explain predictions: per image, OUT/<stem>-<method>.png shows the image as the model takes
    /// it and a heat map of where the evidence for the class lies, captioned with the predicted
    /// label, its confidence and the method.
    Explain {
        /// A model.safetensors written by `wgcnn train`.
        model: PathBuf,
        /// Image files (recognised by content).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// gradcam (regions, on the last convolution) or saliency (pixels, the input gradient).
        #[arg(long, default_value = "gradcam", value_parser = |s: &str| s.parse::<ExplainMethod>())]
        method: ExplainMethod,
        /// The class whose evidence to show (default: each image's predicted class).
        #[arg(long)]
        class: Option<String>,
        /// Folder for the PNGs (created if missing).
        #[arg(long)]
        out: PathBuf,
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
        /// Draw image i of every class from one face, so that only the expression differs
        /// between the classes (small sets are then learnt from the mouth, not memorised).
        #[arg(long)]
        paired: bool,
    },
    /// Serve a model as a web app: an upload page at /, POST /predict (JSON), POST /explain (a
    /// heat map PNG), GET /health, /model and /stats. Stops on Ctrl-C or SIGTERM.
    Serve(ServeArgs),
}

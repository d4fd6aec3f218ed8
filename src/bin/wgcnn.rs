//! The `wgcnn` command line.

#[path = "wgcnn/progress.rs"]
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wgcnn::data::augment::Augment;
use wgcnn::data::folder::{ImageFolder, LoadOptions};
use wgcnn::data::image::{DecodeLimits, Fit, decode_rgb};
use wgcnn::data::split::SplitRatios;
use wgcnn::data::synth::{Emotion, FacePairing, write_dataset};
use wgcnn::gpu::device::{DEVICE_ENV, KERNELS_ENV, describe_adapter, list_adapters};
use wgcnn::gpu::{DeviceChoice, KernelChoice};
use wgcnn::model::TrainOptions;
use wgcnn::model::backend::Backend;
use wgcnn::model::explain::ExplainMethod;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::model::test_time::TestTimeAugment;
use wgcnn::native::{CPU_KERNELS_ENV, CpuKernels};
use wgcnn::report::GridItem;
use wgcnn::serve::ServeOptions;
use wgcnn::train::throughput::{measure_inference, measure_training, profile_training};
use wgcnn::workflow;
use wgcnn::workflow::preset::Preset;
use wgcnn::workflow::session::{INFERENCE_BATCH, ModelSession};
use wgcnn::workflow::train::{Checkpoint, RunEvent, TrainSettings, run_split};

#[derive(Parser)]
#[command(
    name = "wgcnn",
    version,
    about = "Convolutional networks on hand-written WGSL kernels: train, evaluate, predict"
)]
struct Cli {
    /// Where to run: auto (a hardware GPU, else cpu), gpu, software (the WGSL kernels on lavapipe),
    /// cpu (native, every core), reference (the tests' plain loops), or part of an adapter's name.
    #[arg(long, global = true, env = DEVICE_ENV, default_value = "auto", value_parser = |s: &str| s.parse::<DeviceChoice>())]
    device: DeviceChoice,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(subcommand)]
    command: Command,
}

/// Bounds on what reading one image may cost: an image over them is skipped and reported.
#[derive(clap::Args)]
struct LimitArgs {
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
    fn limits(&self) -> anyhow::Result<DecodeLimits> {
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
enum Command {
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

#[derive(clap::Args)]
struct ServeArgs {
    /// A model.safetensors written by `wgcnn train`.
    model: PathBuf,
    /// Address to listen on, HOST:PORT (a host name is resolved, e.g. localhost:9000).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = resolve_addr)]
    addr: std::net::SocketAddr,
    /// The largest upload accepted, in MiB.
    #[arg(long, default_value_t = 10.0)]
    max_upload_mb: f64,
    /// The most requests run as one batch (1: no batching).
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// How long a request waits for others to batch with, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    max_wait_ms: f64,
    /// Images decoded at once (default: one per core).
    #[arg(long)]
    decode_threads: Option<usize>,
    /// The most memory the bodies of all uploads may hold together, in MiB: a body costs the bytes
    /// of it that have arrived, and when they would pass this, the upload idle longest is answered
    /// 503 to make room.
    #[arg(long, default_value_t = (ServeOptions::default().upload_budget_bytes >> 20) as f64)]
    upload_budget_mb: f64,
    /// Seconds a request's body may take to arrive (408 after).
    #[arg(long, default_value_t = ServeOptions::default().body_timeout.as_secs_f64())]
    body_timeout_s: f64,
    /// Connections held at once; a new client beyond them closes the connection idle longest.
    #[arg(long, default_value_t = ServeOptions::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection may pass without a byte read or written before it is closed.
    #[arg(long, default_value_t = ServeOptions::default().idle_timeout.as_secs_f64())]
    idle_timeout_s: f64,
    #[command(flatten)]
    tta: TtaArg,
}

/// `--tta` of the commands that predict with a saved model (eval, predict, serve).
#[derive(clap::Args)]
struct TtaArg {
    /// Test-time augmentation: none, or mirror (each image's probabilities averaged with its
    /// left-right mirror's). Default: the model file's.
    #[arg(long = "tta", value_name = "none|mirror", value_parser = |s: &str| s.parse::<TestTimeAugment>())]
    chosen: Option<TestTimeAugment>,
}

impl TtaArg {
    /// Makes `session` predict as asked, if asked.
    fn apply(&self, session: &mut ModelSession) {
        if let Some(test_time) = self.chosen {
            session.set_test_time_augment(test_time);
        }
    }
}

/// `HOST:PORT` as an address: an IP address as it is, a host name resolved (its first address).
fn resolve_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut found = text.to_socket_addrs().map_err(|e| format!("{text:?} is not HOST:PORT that resolves: {e}"))?;
    found.next().ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn serve(choice: &DeviceChoice, args: &ServeArgs, limits: DecodeLimits) -> anyhow::Result<()> {
    use wgcnn::serve::{Server, batcher::BatchOptions};
    anyhow::ensure!(args.max_upload_mb > 0.0, "--max-upload-mb must be more than 0");
    anyhow::ensure!(
        args.upload_budget_mb >= args.max_upload_mb,
        "--upload-budget-mb ({}) must hold at least one upload of --max-upload-mb ({})",
        args.upload_budget_mb,
        args.max_upload_mb
    );
    anyhow::ensure!(args.max_wait_ms >= 0.0, "--max-wait-ms must not be negative");
    anyhow::ensure!(args.body_timeout_s > 0.0, "--body-timeout-s must be more than 0");
    anyhow::ensure!(args.idle_timeout_s > 0.0, "--idle-timeout-s must be more than 0");
    anyhow::ensure!(args.max_connections > 0, "--max-connections must be at least 1");
    let batch = BatchOptions {
        max_batch: args.max_batch,
        max_wait: std::time::Duration::from_secs_f64(args.max_wait_ms / 1e3),
        ..BatchOptions::default()
    };
    let max_upload_bytes = (args.max_upload_mb * (1 << 20) as f64) as usize;
    let defaults = ServeOptions::default();
    let options = ServeOptions {
        addr: args.addr,
        max_upload_bytes,
        batch,
        limits,
        decode_threads: args.decode_threads.unwrap_or(defaults.decode_threads),
        upload_budget_bytes: (args.upload_budget_mb * (1 << 20) as f64) as usize,
        body_timeout: std::time::Duration::from_secs_f64(args.body_timeout_s),
        max_connections: args.max_connections,
        idle_timeout: std::time::Duration::from_secs_f64(args.idle_timeout_s),
        stop_on_signals: true,
        test_time_augment: args.tta.chosen,
    };
    let (backend, why) = chosen_backend(choice)?;
    println!("adapter: {}{}", backend.describe(), because(&why));
    let server = Server::start(&args.model, backend, options)?;
    println!("serving {} on http://{} (Ctrl-C to stop)", args.model.display(), server.addr());
    server.wait()?;
    println!("stopped");
    Ok(())
}

#[derive(clap::Args)]
struct TrainArgs {
    /// A folder of class subfolders (class names from the sorted folder names).
    #[arg(required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Run folder to write (created if missing); it holds a checkpoint after every epoch.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its checkpoint, with the settings it began with
    /// (a setting given again must be the same, except --epochs, which may extend the run).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "overwrite")]
    resume: Option<PathBuf>,
    /// Start from this model's weights (fine-tuning) with a fresh optimizer; the model must have
    /// the run's architecture and input.
    #[arg(long, value_name = "MODEL")]
    init: Option<PathBuf>,
    /// A reference model: happy-sad (Model A, 3x256x256; the default), emotions3 (Model B,
    /// 3x128x128) or fer48 (FER-2013's 1x48x48 faces: a VGG-style model with batch norm and its
    /// training settings, as the README measures them).
    #[arg(long, conflicts_with = "arch")]
    preset: Option<String>,
    /// An architecture spec instead of a preset, e.g. c16-p-c32-p-f-d64-d1 (see the README); its
    /// input is --size (required) and --grayscale.
    #[arg(long)]
    arch: Option<String>,
    /// Input size in pixels (square); default: the preset's (256 or 128); required with --arch.
    #[arg(long)]
    size: Option<usize>,
    /// One grayscale channel instead of RGB.
    #[arg(long)]
    grayscale: bool,
    /// How images of another aspect ratio reach the input: stretch, crop or pad.
    #[arg(long, default_value = "stretch")]
    fit: Fit,
    /// The most epochs (early stopping may end sooner); default: the preset's (20; fer48: 50).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    epochs: Option<usize>,
    /// Images per step (default: the preset's, 32; fer48: 64).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam's starting learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Train, validation and test shares; default: the preset's (0.7,0.2,0.1; fer48: 0.85,0.1,0.05).
    #[arg(long)]
    split: Option<SplitRatios>,
    /// Training-split augmentation: off, moderate, or a list such as flip,rotate=10,shift=0.1,zoom=0.1,brightness=0.1,contrast=0.1;
    /// default: the preset's (off; fer48: flip,rotate=10,shift=0.1,zoom=0.1).
    #[arg(long)]
    augment: Option<Augment>,
    /// Early stopping: epochs without a lower validation loss before stopping (the best epoch's
    /// weights are restored); 0 turns it off. Default: the preset's (5; fer48: 10).
    #[arg(long)]
    patience: Option<usize>,
    /// Learning rate times --lr-factor after this many epochs without a lower validation loss; 0
    /// turns it off. Default: the preset's (3; fer48: 5).
    #[arg(long)]
    lr_patience: Option<usize>,
    #[arg(long, default_value_t = 0.5)]
    lr_factor: f64,
    #[arg(long, default_value_t = 1e-6)]
    min_lr: f64,
    /// Weigh each class's loss by the inverse of its share (for imbalanced data; fer48 does).
    #[arg(long)]
    balance_classes: bool,
    /// Test-time augmentation the model file tells eval, predict and serve to use, and the test
    /// evaluations after training: none, or mirror (each image's probabilities averaged with its
    /// left-right mirror's). Default: the preset's (none; fer48: mirror).
    #[arg(long, value_parser = |s: &str| s.parse::<TestTimeAugment>())]
    tta: Option<TestTimeAugment>,
    /// A second folder of the same classes to evaluate on after training (e.g. an official test set).
    #[arg(long)]
    test_data: Option<PathBuf>,
    /// Seeds the weights, the split, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace the model or checkpoint of a run folder that already holds one.
    #[arg(long)]
    overwrite: bool,
}

/// The exit codes of a command stopped by a signal, as a shell reports one.
const EXIT_SIGINT: u8 = 130;
const EXIT_SIGTERM: u8 = 143;

/// Training stopped by a signal, with a checkpoint: exit with `code`.
#[derive(Debug)]
struct Interrupted {
    code: u8,
    line: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Interrupted {}

/// Ctrl-C and SIGTERM while training: the first sets `stop` (the trainer finishes its step and
/// writes a checkpoint) and records which signal came; the second exits at once.
struct StopSignals {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    exit_code: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StopSignals {
    fn new() -> Self {
        Self { stop: Default::default(), exit_code: Default::default() }
    }

    /// Takes over both signals.
    fn install(&self) -> anyhow::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for (signal, code) in [(SIGINT, EXIT_SIGINT), (SIGTERM, EXIT_SIGTERM)] {
            // In this order: the exit acts only when an earlier signal has already set the flag.
            flag::register_conditional_shutdown(signal, code.into(), self.stop.clone())?;
            flag::register_usize(signal, self.exit_code.clone(), code.into())?;
            flag::register(signal, self.stop.clone())?;
        }
        Ok(())
    }

    fn exit_code(&self) -> u8 {
        match self.exit_code.load(std::sync::atomic::Ordering::Relaxed) {
            0 => EXIT_SIGINT,
            code => code as u8,
        }
    }
}

/// The settings the train flags give, the data and run folders as given (or `fallback`'s, when
/// resuming without them).
fn settings_from_args(
    args: &TrainArgs,
    limits: DecodeLimits,
    fallback: Option<&TrainSettings>,
) -> anyhow::Result<TrainSettings> {
    let preset = typed(Preset::named(args.preset.as_deref().unwrap_or(Preset::DEFAULT)))?;
    // Resuming, what no flag names is the run's own: its architecture, channels and batch size.
    let run_default = fallback.filter(|_| args.preset.is_none());
    let channels = match (args.grayscale, run_default) {
        (true, _) => 1,
        (false, Some(run)) => run.architecture.input.channels,
        (false, None) if args.arch.is_none() => preset.architecture.input.channels,
        (false, None) => 3,
    };
    let architecture = match (&args.arch, args.size) {
        (Some(_), None) => {
            return Err(Usage(
                "--arch needs --size: the input size of an architecture spec is not known \
                              (e.g. --arch c16-p-f-d1 --size 64; add --grayscale for one channel)"
                    .into(),
            )
            .into());
        }
        (Some(spec), Some(size)) => typed(Architecture::parse(spec, InputShape::new(channels, size, size)))?,
        (None, size) => {
            let base = run_default.map_or(&preset.architecture, |run| &run.architecture).clone();
            let size = size.unwrap_or(base.input.height);
            base.with_input(InputShape::new(channels, size, size))
        }
    };
    // An architecture too deep for --size is the user's to change, before any work.
    typed(architecture.layers_info())?;
    let given_or_fallback = |given: &Option<PathBuf>, fallback: Option<&PathBuf>| {
        given.clone().or_else(|| fallback.cloned()).expect("clap requires it unless resuming")
    };
    Ok(TrainSettings {
        data_dir: given_or_fallback(&args.data, fallback.map(|f| &f.data_dir)),
        test_dir: args.test_data.clone(),
        architecture,
        fit: args.fit,
        split: args.split.unwrap_or(preset.training.split),
        epochs: args.epochs.unwrap_or(preset.training.epochs),
        batch_size: args.batch_size.unwrap_or(run_default.map_or(preset.batch_size, |run| run.batch_size)),
        lr: args.lr,
        seed: args.seed,
        patience: Some(args.patience.unwrap_or(preset.training.patience)).filter(|&p| p > 0),
        lr_patience: Some(args.lr_patience.unwrap_or(preset.training.lr_patience)).filter(|&p| p > 0),
        lr_factor: args.lr_factor,
        min_lr: args.min_lr,
        augment: args.augment.unwrap_or(preset.training.augment),
        balance_classes: args.balance_classes || preset.training.balance_classes,
        test_time_augment: args.tta.unwrap_or(preset.training.test_time_augment),
        out_dir: given_or_fallback(&args.out, fallback.map(|f| &f.out_dir)),
        overwrite: args.overwrite,
        limits,
        init: args.init.clone(),
    })
}

/// The settings of the run `args.resume` names: its checkpoint's, with --epochs if given. Any
/// other setting given must be the checkpoint's; `given` says which flags the user typed (by
/// clap id).
fn resumed_settings(
    checkpoint: &Checkpoint,
    args: &TrainArgs,
    limits: DecodeLimits,
    given: &dyn Fn(&str) -> bool,
) -> anyhow::Result<TrainSettings> {
    let stored = checkpoint.settings();
    let typed_now = settings_from_args(args, limits, Some(&stored))?.with_absolute_paths()?;
    // The clap ids behind each setting's flag.
    let ids_of = |flag: &str| -> Vec<String> {
        match flag {
            "DATA" => vec!["data".into()],
            "--arch" => ["preset", "arch", "size", "grayscale"].map(String::from).to_vec(),
            "--batch-size" => ["batch_size", "preset"].map(String::from).to_vec(),
            flag => vec![flag.trim_start_matches("--").replace('-', "_")],
        }
    };
    for (flag, now, then) in typed_now.differences(&stored) {
        if ids_of(flag).iter().any(|id| given(id)) {
            return Err(Usage(format!(
                "{flag} gives {now}, but the run in {} began with {then}: a resumed run keeps its settings \
                 (only --epochs may change); leave {flag} out",
                stored.out_dir.display()
            ))
            .into());
        }
    }
    Ok(TrainSettings { epochs: args.epochs.unwrap_or(stored.epochs), ..stored })
}

fn train(
    choice: &DeviceChoice,
    args: &TrainArgs,
    limits: DecodeLimits,
    given: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let (settings, checkpoint) = match &args.resume {
        None => (settings_from_args(args, limits, None)?, None),
        Some(run_dir) => {
            let checkpoint = Checkpoint::load(run_dir)?;
            (resumed_settings(&checkpoint, args, limits, given)?, Some(checkpoint))
        }
    };
    if let Some(checkpoint) = &checkpoint {
        println!(
            "resuming {} after {} of {} epochs",
            settings.out_dir.display(),
            checkpoint.epochs_done(),
            settings.epochs
        );
    }
    let mut progress = progress::TrainProgress::new();
    let (backend, why) = chosen_backend(choice)?;
    if let Some(why) = why {
        println!("device auto: {} ({why})", backend.describe());
    }
    let signals = StopSignals::new();
    let mut installed = Ok(());
    let run = workflow::train::train_from(&backend, &settings, checkpoint, &signals.stop, &mut |event| {
        // Until training begins, a signal ends the command at once, as for any other command.
        if let RunEvent::Model { .. } = event {
            installed = signals.install();
        }
        progress.show_run(event)
    });
    installed?;
    let run = match run {
        Err(wgcnn::Error::Interrupted { checkpoint, epoch, step }) => {
            let line = format!(
                "training interrupted after step {step} of epoch {epoch}; {} holds that moment. Resume with: wgcnn train --resume {}",
                checkpoint.display(),
                settings.out_dir.display()
            );
            return Err(Interrupted { code: signals.exit_code(), line }.into());
        }
        run => run?,
    };
    println!(
        "
run folder: {}",
        settings.out_dir.display()
    );
    if let Some(test) = &run.test {
        println!("test-split accuracy: {:.4}", test.report.accuracy);
    }
    if let Some(test) = &run.test_dir {
        println!("test-folder accuracy: {:.4}", test.report.accuracy);
    }
    Ok(())
}

/// What `wgcnn eval` scores a model on.
enum EvalData {
    /// Every image of a folder of class subfolders.
    Folder(PathBuf),
    /// A part (train, validation, test) of the split of the run that trained the model.
    RunSplit(String),
}

fn eval(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    data: &EvalData,
    tta: &TtaArg,
    json: bool,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut loaded = ModelSession::open(model, &backend(choice)?, &[INFERENCE_BATCH], limits)?;
    tta.apply(&mut loaded);
    let (dataset, report, indices, name) = match data {
        EvalData::Folder(dir) => {
            // A subset of the model's classes is a normal test set: one class folder is enough.
            let options = LoadOptions { limits, min_classes: 1, ..LoadOptions::default() };
            let (dataset, report) = ImageFolder::load(dir, &loaded.format(), &options)?;
            let all: Vec<usize> = (0..dataset.len()).collect();
            (dataset, report, all, workflow::path_name(dir))
        }
        EvalData::RunSplit(part) => {
            let run_dir = model.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let found = run_split(run_dir, part)?;
            (found.dataset, found.report, found.indices, format!("{part}-split"))
        }
    };
    if !json {
        print!("{report}");
        println!("test-time augmentation: {}", loaded.test_time_augment());
    }
    let evaluation = loaded
        .evaluate(&dataset, &indices)
        .with_context(|| format!("evaluating {} on {name} ({} images)", model.display(), indices.len()))?;
    let written = match out {
        None => None,
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the folder", out.display()))?;
            let png = out.join(format!("confusion-{name}.png"));
            let title = format!("Confusion matrix: {name} ({} images)", indices.len());
            wgcnn::report::plots::confusion_matrix(&evaluation.confusion, &title, &png)?;
            Some(png)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        println!("\n{}", evaluation.text());
        if let Some(png) = written {
            println!("\nwrote {}", png.display());
        }
    }
    Ok(())
}

fn predict(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    images: &[PathBuf],
    tta: &TtaArg,
    json: bool,
    grid: Option<&Path>,
) -> anyhow::Result<()> {
    no_folders(images)?;
    let mut loaded = ModelSession::open(model, &backend(choice)?, &[INFERENCE_BATCH.min(images.len())], limits)?;
    tta.apply(&mut loaded);
    let files = read_files(images, &limits);
    let bytes: Vec<&[u8]> = files.iter().map(|f| f.as_deref().unwrap_or_default()).collect();
    let predictions = loaded.predict_bytes(&bytes)?;
    let mut failures = Vec::new();
    let mut entries = Vec::new();
    let mut grid_items = Vec::new();
    for ((path, prediction), file) in images.iter().zip(predictions).zip(&files) {
        match file.clone().and_then(|file| prediction.map(|p| (p, file)).map_err(|e| e.to_string())) {
            Ok((p, file)) => {
                if !json {
                    let all: Vec<String> = p.probabilities.iter().map(|(c, v)| format!("{c} {v:.4}")).collect();
                    println!("{}: {} ({:.1}%)  [{}]", path.display(), p.label, p.confidence * 100.0, all.join(", "));
                }
                if grid.is_some() {
                    let truth = path.parent().and_then(|d| d.file_name()).and_then(|d| d.to_str());
                    let correct = truth.filter(|t| loaded.class_names().iter().any(|c| c == t)).map(|t| t == p.label);
                    let image = decode_rgb(&file, &limits)?;
                    let caption = format!("{} {:.1}%", p.label, p.confidence * 100.0);
                    grid_items.push(GridItem { image, file: workflow::path_name(path), caption, correct });
                }
                entries.push(serde_json::json!({ "file": path, "prediction": p }));
            }
            Err(e) => {
                entries.push(serde_json::json!({ "file": path, "error": e }));
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    }
    if let Some(grid) = grid.filter(|_| !grid_items.is_empty()) {
        let title = format!("{} predicted by {}", image_count(grid_items.len()), model.display());
        wgcnn::report::plots::prediction_grid(&grid_items, &title, grid)?;
        if !json {
            println!("wrote {}", grid.display());
        }
    }
    bad_images(failures, images.len())
}

/// "1 image", "12 images".
fn image_count(n: usize) -> String {
    if n == 1 { "1 image".into() } else { format!("{n} images") }
}

/// A folder among the images is a usage error that points to `eval`.
fn no_folders(images: &[PathBuf]) -> anyhow::Result<()> {
    match images.iter().find(|path| path.is_dir()) {
        Some(folder) => Err(Usage(format!(
            "{} is a folder: this command takes image files; `wgcnn eval MODEL FOLDER` takes a folder of \
             class subfolders (or give the files, e.g. {}/*.png)",
            folder.display(),
            folder.display()
        ))
        .into()),
        None => Ok(()),
    }
}

/// Each file's bytes within the limits, or why it cannot be read (reported like an image that
/// does not decode).
fn read_files(paths: &[PathBuf], limits: &DecodeLimits) -> Vec<Result<Vec<u8>, String>> {
    paths.iter().map(|p| limits.read_file(p).map_err(|e| e.to_string())).collect()
}

/// The error for images that could not be used: a single image's own message, else one line per
/// image on stderr and a count.
fn bad_images(failures: Vec<String>, total: usize) -> anyhow::Result<()> {
    match failures.as_slice() {
        [] => Ok(()),
        [one] if total == 1 => anyhow::bail!("{one}"),
        _ => {
            failures.iter().for_each(|f| eprintln!("wgcnn: {f}"));
            anyhow::bail!("{} of {total} images could not be read as images", failures.len())
        }
    }
}

fn explain(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    images: &[PathBuf],
    method: ExplainMethod,
    class: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    no_folders(images)?;
    let mut loaded = ModelSession::open(model, &backend(choice)?, &[INFERENCE_BATCH.min(images.len())], limits)?;
    typed(class.map(|name| loaded.class_index(name)).transpose())?;
    let drawn = loaded.method_for(method);
    if let Some(note) = &drawn.note {
        println!("{note}");
    }
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", out.display()))?;
    let files = read_files(images, &limits);
    let bytes: Vec<&[u8]> = files.iter().map(|f| f.as_deref().unwrap_or_default()).collect();
    let explained = loaded.explain_bytes(&bytes, method, class)?;
    let (mut stems, mut failures) = (std::collections::HashMap::new(), Vec::new());
    for ((path, file), result) in images.iter().zip(&files).zip(explained) {
        let e = match file.clone().and_then(|_| result.map_err(|e| e.to_string())) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        // <stem>-<class>-<method>.png, the class explained; two images of the same name (from
        // different folders): the second is <stem>-2-<class>-<method>.png.
        let stem = path.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let seen: &mut usize = stems.entry(stem.clone()).or_default();
        *seen += 1;
        let suffix = if *seen == 1 { String::new() } else { format!("-{seen}") };
        let card = out.join(format!("{stem}{suffix}-{}-{}.png", e.class_name, e.method.name()));
        e.write_card(&card)?;
        println!("{}: {}  -> {}", path.display(), e.caption(), card.display());
    }
    bad_images(failures, images.len())
}

fn synth(
    out: &std::path::Path,
    per_class: usize,
    classes: &str,
    size: u32,
    seed: u64,
    pairing: FacePairing,
) -> anyhow::Result<()> {
    let emotions = Emotion::parse_list(classes)?;
    let written = write_dataset(out, &emotions, per_class, size, seed, pairing)?;
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
    size: Option<usize>,
    profile: bool,
) -> anyhow::Result<()> {
    let defaults = typed(Preset::named(preset))?;
    let mut arch = defaults.architecture;
    if let Some(size) = size {
        let channels = arch.input.channels;
        arch = arch.with_input(InputShape::new(channels, size, size));
    }
    let batch = batch.unwrap_or(defaults.bench_batch_size);
    let weights = arch.initial_weights(1)?;
    let (backend, why) = chosen_backend(choice)?;
    let mut model = backend.model(&arch, batch, &weights, &TrainOptions::default())?;
    println!("adapter: {}{}", backend.describe(), because(&why));
    println!("model: {preset} ({arch}) at {}, batch {batch}", arch.input);
    let sample_len = arch.input.elements();
    let t = measure_training(model.as_mut(), sample_len, arch.classes(), warmup, steps, 7)?;
    let seconds: Vec<String> = t.step_seconds.iter().map(|s| format!("{s:.3}")).collect();
    println!("step seconds: {}", seconds.join(" "));
    println!("median step: {:.3} s, {:.2} images/s (training)", t.median_step(), t.images_per_second());
    if profile {
        let profile = profile_training(model.as_mut(), sample_len, arch.classes(), 7)?;
        let total = profile.total();
        println!("\none step by layer and pass (each part run on its own: {:.3} s in all)", total);
        println!("  {:<22} {:>10} {:>7}", "part", "ms", "share");
        for (label, seconds) in &profile.parts {
            println!("  {label:<22} {:>10.2} {:>6.1}%", seconds * 1e3, 100.0 * seconds / total);
        }
    }
    // After the profile: inference needs fewer buffers, and the CPU backends free the rest.
    let inference = measure_inference(model.as_mut(), sample_len, warmup.min(2), steps, 7)?;
    println!(
        "median batch: {:.3} s, {:.2} images/s (inference)",
        inference.median_step(),
        inference.images_per_second()
    );
    Ok(())
}

fn info(choice: &DeviceChoice) -> anyhow::Result<()> {
    let adapters = list_adapters();
    println!("adapters found: {}", adapters.len());
    for a in &adapters {
        let i = a.get_info();
        println!("  {}  driver: {} {}", describe_adapter(&i), i.driver, i.driver_info);
    }
    println!("CPU backends:");
    println!("  {}  (--device cpu)", Backend::Native.describe());
    println!("  {}  (--device reference)", Backend::Reference.describe());
    println!(
        "  CPU kernels: {} (this CPU runs {} at most; {CPU_KERNELS_ENV}=avx512|avx2|portable|auto)",
        CpuKernels::in_use(),
        CpuKernels::detected()
    );
    let (backend, why) = chosen_backend(choice)?;
    match &backend {
        Backend::Gpu(gpu) => {
            let l = &gpu.limits;
            println!("chosen: {}{}", gpu.describe(), because(&why));
            let (_, chosen_by) = typed(KernelChoice::from_env())?.variant(gpu.profile);
            println!("  kernels:             {} ({chosen_by}; {KERNELS_ENV}=tiled|software|auto)", gpu.kernels);
            println!("  max storage binding: {} MiB", l.max_storage_buffer_binding_size / (1 << 20));
            println!("  max buffer:          {} MiB", l.max_buffer_size / (1 << 20));
            println!("  max workgroup:       {} invocations", l.max_compute_invocations_per_workgroup);
            println!("  max workgroups/dim:  {}", l.max_compute_workgroups_per_dimension);
        }
        cpu => println!("chosen: {}{}", cpu.describe(), because(&why)),
    }
    Ok(())
}

/// ", auto: <why>" when `auto` chose.
fn because(why: &Option<String>) -> String {
    why.as_ref().map(|why| format!("; auto: {why}")).unwrap_or_default()
}

/// A mistake in what the user typed, found after clap's own checks (a preset or an architecture
/// that does not exist, a class the model lacks): exit 2 with clap's kind of message.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `result`'s error as a usage error.
fn typed<T, E: std::fmt::Display>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|e| Usage(e.to_string()).into())
}

/// The wgcnn library's log records (e.g. the server's own errors) on stderr, warnings and worse,
/// each line prefixed as the command's other messages: `wgcnn serve: 500 Internal Server Error ...`.
/// Other crates' records (wgpu's) stay unshown, as they were before there was a logger.
struct StderrLog {
    prefix: &'static str,
}

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn && metadata.target().split("::").next() == Some("wgcnn")
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{}: {}", self.prefix, record.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let prefix = if matches!(cli.command, Command::Serve(_)) { "wgcnn serve" } else { "wgcnn" };
    // Set once, before any thread starts: it cannot fail.
    let _ = log::set_logger(Box::leak(Box::new(StderrLog { prefix })));
    log::set_max_level(log::LevelFilter::Warn);
    if !matches!(cli.command, Command::Serve(_)) {
        // A closed pipe (`wgcnn predict ... | head -1`) ends the command quietly, as in every Unix
        // tool, instead of a panic in println!. The server keeps Rust's default (ignored), as a
        // client that goes away must not end it.
        #[cfg(unix)]
        // SAFETY: restoring the default disposition of one signal, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // Which flags the user typed (not defaults), for `train --resume`.
    let given = |id: &str| {
        let sub = matches.subcommand().map(|(_, sub)| sub);
        [Some(&matches), sub].into_iter().flatten().any(|m| {
            // value_source panics on an id the command does not have.
            m.try_get_raw(id).is_ok_and(|raw| raw.is_some())
                && matches!(
                    m.value_source(id),
                    Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
                )
        })
    };
    let result = cli.limits.limits().and_then(|limits| run(cli.command, &cli.device, limits, &given));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(usage) = e.downcast_ref::<Usage>() {
                eprintln!("error: {usage}\n\nFor more information, try '--help'.");
                ExitCode::from(2)
            } else if let Some(interrupted) = e.downcast_ref::<Interrupted>() {
                eprintln!("wgcnn: {interrupted}");
                ExitCode::from(interrupted.code)
            } else {
                eprintln!("wgcnn: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// The backend `choice` names; no adapter of that name is a usage error, with what to type.
fn backend(choice: &DeviceChoice) -> anyhow::Result<Backend> {
    Ok(chosen_backend(choice)?.0)
}

/// As [`backend`], with why `auto` chose it ([`Backend::choose`]).
fn chosen_backend(choice: &DeviceChoice) -> anyhow::Result<(Backend, Option<String>)> {
    match Backend::choose(choice) {
        Err(e @ wgcnn::Error::AdapterNotFound { .. }) => typed(Err(e)),
        other => Ok(other?),
    }
}

fn run(
    command: Command,
    device: &DeviceChoice,
    limits: DecodeLimits,
    given: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    // An unusable kernel set or convolution algorithm is reported before any work, not quietly replaced.
    CpuKernels::from_env()?;
    wgcnn::native::conv2d::ConvAlgorithm::from_env()?;
    match command {
        Command::Info => info(device),
        Command::BenchTrain { preset, batch_size, steps, warmup, size, profile } => {
            bench_train(device, &preset, batch_size, steps, warmup, size, profile)
        }
        Command::Synth { out, per_class, classes, size, seed, paired } => {
            let pairing = if paired { FacePairing::Paired } else { FacePairing::Independent };
            synth(&out, per_class, &classes, size, seed, pairing)
        }
        Command::Train(args) => train(device, &args, limits, given),
        Command::Eval { model, data, split, tta, json, out } => {
            let data = match (data, split) {
                (Some(dir), _) => EvalData::Folder(dir),
                (None, Some(part)) => EvalData::RunSplit(part),
                (None, None) => return Err(Usage("eval needs DATA or --split".into()).into()),
            };
            eval(device, limits, &model, &data, &tta, json, out.as_deref())
        }
        Command::Predict { model, images, json, grid, tta } => {
            predict(device, limits, &model, &images, &tta, json, grid.as_deref())
        }
        Command::Serve(args) => serve(device, &args, limits),
        Command::Explain { model, images, method, class, out } => {
            explain(device, limits, &model, &images, method, class.as_deref(), &out)
        }
    }
}

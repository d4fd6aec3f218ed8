//! Training a model on a folder of class subfolders into a run folder: a checkpoint after every
//! epoch (`checkpoint.safetensors`, from which `--resume` continues the run exactly) and the
//! metrics CSV as training goes; then the model, the plots and the test evaluation, written into
//! a staging folder and moved in only when training succeeds.

use std::cell::Cell;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::augment::Augment;
use crate::data::folder::{Dataset, ImageFolder, LoadOptions, LoadReport};
use crate::data::image::{DecodeLimits, Fit, InputFormat};
use crate::data::loader::ImageBatches;
use crate::data::split::{SplitRatios, stratified_split};
use crate::model::TrainOptions;
use crate::model::backend::{Backend, Predictor};
use crate::model::file::{ModelFile, ResumeState};
use crate::model::spec::Architecture;
use crate::model::test_time::TestTimeAugment;
use crate::report::plots;
use crate::train::callbacks::{EarlyStopping, Monitor, ReduceLrOnPlateau};
use crate::train::fit::{BatchTiming, FitConfig, FitControl, FitOutcome, Snapshot, StopReason, TrainEvent, fit_from};
use crate::workflow::evaluate::{Evaluation, evaluate};
use crate::workflow::path_name;
use crate::{Error, Result};

/// The checkpoint a run folder holds while its run goes on, and after it.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Everything `wgcnn train` needs. A checkpoint stores them (as JSON, the paths made absolute), so
/// that a resumed run goes on with the settings it started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// A folder of class subfolders.
    pub data_dir: PathBuf,
    /// A second folder of the same classes to evaluate on besides the test split (e.g. an
    /// official test set).
    pub test_dir: Option<PathBuf>,
    /// The model; its input sets the image size and channels, its head is fitted to the classes.
    #[serde(with = "architecture_text")]
    pub architecture: Architecture,
    /// How images of another aspect ratio reach the input size.
    pub fit: Fit,
    pub split: SplitRatios,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Seeds the weights, the split, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Early stopping on the validation loss after this many epochs without improvement,
    /// restoring the best epoch's weights.
    pub patience: Option<usize>,
    /// Learning rate times `lr_factor` after this many epochs without a lower validation loss.
    pub lr_patience: Option<usize>,
    pub lr_factor: f64,
    pub min_lr: f64,
    /// Training split only.
    pub augment: Augment,
    /// Weigh each class's loss by the inverse of its share of the training split.
    pub balance_classes: bool,
    /// What the model file tells `eval`, `predict` and `serve` to predict with, and what the test
    /// evaluations after training use. Checkpoints from before it read as none.
    #[serde(default)]
    pub test_time_augment: TestTimeAugment,
    /// The run folder: checkpoint.safetensors, model.safetensors, history.csv, training.png,
    /// classes.png, and the test evaluation (evaluation.txt, evaluation.json, confusion.png).
    /// Not stored: a run resumes in the folder it is found in.
    #[serde(skip)]
    pub out_dir: PathBuf,
    /// Replace the model or checkpoint of a run folder that holds one (otherwise training refuses
    /// to start). Not stored.
    #[serde(skip)]
    pub overwrite: bool,
    /// What one image file may cost to read and decode; a file over them is skipped and reported.
    pub limits: DecodeLimits,
    /// Start from this model file's weights (fine-tuning) instead of random ones, with a fresh
    /// optimizer; its architecture and input must be the run's.
    pub init: Option<PathBuf>,
}

impl TrainSettings {
    /// The settings that differ from `other`'s, each as (the `wgcnn train` flag that sets it,
    /// this value, the other value). The epochs, the run folder and `overwrite` are not compared.
    pub fn differences(&self, other: &TrainSettings) -> Vec<(&'static str, String, String)> {
        let mut found = Vec::new();
        let mut compare = |flag: &'static str, a: String, b: String| {
            if a != b {
                found.push((flag, a, b));
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map_or("none".into(), |p| p.display().to_string());
        compare("DATA", self.data_dir.display().to_string(), other.data_dir.display().to_string());
        compare("--test-data", path(&self.test_dir), path(&other.test_dir));
        let architecture = |a: &Architecture| format!("{a} at {}", a.input);
        compare("--arch", architecture(&self.architecture), architecture(&other.architecture));
        compare("--fit", format!("{:?}", self.fit), format!("{:?}", other.fit));
        compare("--split", format!("{:?}", self.split), format!("{:?}", other.split));
        compare("--batch-size", self.batch_size.to_string(), other.batch_size.to_string());
        compare("--lr", self.lr.to_string(), other.lr.to_string());
        compare("--seed", self.seed.to_string(), other.seed.to_string());
        compare("--patience", format!("{:?}", self.patience), format!("{:?}", other.patience));
        compare("--lr-patience", format!("{:?}", self.lr_patience), format!("{:?}", other.lr_patience));
        compare("--lr-factor", self.lr_factor.to_string(), other.lr_factor.to_string());
        compare("--min-lr", self.min_lr.to_string(), other.min_lr.to_string());
        compare("--augment", format!("{:?}", self.augment), format!("{:?}", other.augment));
        compare("--balance-classes", self.balance_classes.to_string(), other.balance_classes.to_string());
        compare("--tta", self.test_time_augment.to_string(), other.test_time_augment.to_string());
        compare("--max-image-pixels", self.limits.max_pixels.to_string(), other.limits.max_pixels.to_string());
        compare("--max-image-side", self.limits.max_side.to_string(), other.limits.max_side.to_string());
        compare("--max-image-mb", self.limits.max_pixel_bytes.to_string(), other.limits.max_pixel_bytes.to_string());
        compare("--max-file-mb", self.limits.max_file_bytes.to_string(), other.limits.max_file_bytes.to_string());
        compare("--init", path(&self.init), path(&other.init));
        found
    }

    /// How the run's images reach its model's input.
    pub fn input_format(&self) -> InputFormat {
        let input = self.architecture.input;
        InputFormat { channels: input.channels, size: (input.height as u32, input.width as u32), fit: self.fit }
    }

    /// These settings with every path made absolute, as a checkpoint stores them (a resume may
    /// start in another folder). Errors on a path that does not exist.
    pub fn with_absolute_paths(&self) -> Result<TrainSettings> {
        let absolute = |path: &Path| {
            fs::canonicalize(path)
                .map_err(|e| Error::Invalid(format!("{}: cannot resolve the path: {e}", path.display())))
        };
        Ok(TrainSettings {
            data_dir: absolute(&self.data_dir)?,
            test_dir: self.test_dir.as_deref().map(absolute).transpose()?,
            init: self.init.as_deref().map(absolute).transpose()?,
            ..self.clone()
        })
    }
}

/// An architecture stored as its spec and its input, as the model file stores it.
mod architecture_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::model::spec::Architecture;

    #[derive(Serialize, Deserialize)]
    struct Text {
        spec: String,
        input: String,
    }

    pub fn serialize<S: Serializer>(architecture: &Architecture, serializer: S) -> Result<S::Ok, S::Error> {
        Text { spec: architecture.to_string(), input: architecture.input.to_string() }.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Architecture, D::Error> {
        let text = Text::deserialize(deserializer)?;
        let input = text.input.parse().map_err(serde::de::Error::custom)?;
        Architecture::parse(&text.spec, input).map_err(serde::de::Error::custom)
    }
}

/// What a checkpoint's `run_settings` hold: the settings, and the images per class the data
/// folder gave, which a resumed run must find again.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    settings: TrainSettings,
    classes: Vec<(String, usize)>,
}

/// A run folder's checkpoint, read to resume its run.
pub struct Checkpoint {
    path: PathBuf,
    file: ModelFile,
    record: RunRecord,
}

impl Checkpoint {
    /// Reads `run_dir`'s checkpoint; an error names the file and what is wrong with it.
    pub fn load(run_dir: &Path) -> Result<Checkpoint> {
        let path = run_dir.join(CHECKPOINT_FILE);
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "{}: no {CHECKPOINT_FILE}: nothing to resume (not a run folder, or its run never began training)",
                run_dir.display()
            )));
        }
        let file = ModelFile::load_checkpoint(&path)?;
        let resume = file.resume.as_ref().expect("load_checkpoint checks");
        let record: RunRecord = serde_json::from_str(&resume.run_settings).map_err(|e| {
            Error::Invalid(format!("checkpoint {}: `run_settings` are not a run's: {e}", path.display()))
        })?;
        Ok(Checkpoint { path, file, record })
    }

    /// The settings the run was started with, its run folder where it was found.
    pub fn settings(&self) -> TrainSettings {
        let out_dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        TrainSettings { out_dir, ..self.record.settings.clone() }
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.file.history.epochs.len()
    }

    fn trainer(&self) -> &ResumeState {
        self.file.resume.as_ref().expect("load_checkpoint checks")
    }
}

/// What a training run produced (the load reports came as [`RunEvent::Loaded`]).
pub struct TrainRun {
    /// The trained model, as saved at `model_path`.
    pub model: ModelFile,
    pub model_path: PathBuf,
    /// The epochs' history, why training stopped, the best epoch, the batches' timing.
    pub outcome: FitOutcome,
    /// On the test split (None when the split has no test share).
    pub test: Option<Evaluation>,
    /// On `TrainSettings::test_dir`.
    pub test_dir: Option<Evaluation>,
}

/// What [`train`] tells its observer as it goes, in this order. Each event displays as the text
/// `wgcnn train` prints for it, newlines included (a [`TrainEvent`] as its line, if it has one:
/// a progress bar is the caller's to draw).
#[derive(Clone, Copy, Debug)]
pub enum RunEvent<'a> {
    /// A folder was loaded: the training data, then the test folder if there is one.
    Loaded { report: &'a LoadReport, images: usize, bytes: usize, seconds: f64, test_folder: bool },
    /// Images per class in the train, validation and test splits.
    ClassCounts { class_names: &'a [String], counts: &'a [Vec<usize>; 3] },
    /// The model's layer summary and the adapter it trains on.
    Model { summary: &'a str, adapter: &'a str },
    /// From [`crate::train::fit::fit_with`].
    Fit(&'a TrainEvent<'a>),
    /// Training ended: the time its batches took.
    Batches(&'a BatchTiming),
    /// The trained model evaluated on `images` images: of the test split, or of the test folder.
    Evaluated { test_folder: Option<&'a Path>, images: usize, evaluation: &'a Evaluation },
    /// The run folder is written: the model's path.
    Saved(&'a Path),
}

impl fmt::Display for RunEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RunEvent::Loaded { report, images, bytes, seconds, test_folder } => {
                if test_folder {
                    writeln!(f)?;
                }
                write!(f, "{report}")?;
                writeln!(f, "loaded {images} images in {seconds:.1} s ({} KiB as u8)", bytes / 1024)
            }
            RunEvent::ClassCounts { class_names, counts } => {
                writeln!(f, "\nclass counts per split:")?;
                writeln!(f, "  {:<12} {:>8} {:>10} {:>8}", "class", "train", "validation", "test")?;
                for (c, name) in class_names.iter().enumerate() {
                    writeln!(f, "  {name:<12} {:>8} {:>10} {:>8}", counts[0][c], counts[1][c], counts[2][c])?;
                }
                Ok(())
            }
            RunEvent::Model { summary, adapter } => writeln!(f, "\n{summary}\nadapter: {adapter}"),
            RunEvent::Fit(event) => match event.line() {
                Some(line) => writeln!(f, "{line}"),
                None => Ok(()),
            },
            RunEvent::Batches(timing) => writeln!(f, "batches: {timing}"),
            RunEvent::Evaluated { test_folder, images, evaluation } => {
                let what = test_folder.map_or("test split".into(), |dir| dir.display().to_string());
                writeln!(f, "\n{what} ({images} images):\n{}", evaluation.text())
            }
            RunEvent::Saved(path) => writeln!(f, "saved {}", path.display()),
        }
    }
}

/// Loads `dir` at `format` as `options` say, telling `observe` of the load report.
fn load_folder(
    dir: &Path,
    format: &InputFormat,
    options: &LoadOptions,
    test_folder: bool,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<Dataset> {
    let start = Instant::now();
    let (dataset, report) = ImageFolder::load(dir, format, options)?;
    let seconds = start.elapsed().as_secs_f64();
    let (images, bytes) = (dataset.len(), dataset.images.len());
    observe(&RunEvent::Loaded { report: &report, images, bytes, seconds, test_folder });
    Ok(dataset)
}

/// Trains a model as [`TrainSettings`] says, writing the run folder; tells `observe` of each
/// step as it goes (the library prints nothing: `wgcnn train` prints each [`RunEvent`]).
///
/// Everything is checked before the run folder changes (the data, the test folder's classes, the
/// split, an `--init` model, a model or checkpoint already there): a run that fails there leaves
/// the folder as it was (or absent). Once training begins the folder holds a checkpoint, written
/// before the first step and after every epoch, and the metrics CSV. The model, the plots and the
/// evaluations are written into a staging folder beside it and moved in at the end.
pub fn train(backend: &Backend, settings: &TrainSettings, observe: &mut dyn FnMut(&RunEvent)) -> Result<TrainRun> {
    train_from(backend, settings, None, &AtomicBool::new(false), observe)
}

/// [`train`], resuming `checkpoint` when given (with `settings` from [`Checkpoint::settings`],
/// whose epochs may have grown), and stopping after the step at which `interrupt` is set: the
/// checkpoint then holds that moment, and the error is [`Error::Interrupted`].
pub fn train_from(
    backend: &Backend,
    settings: &TrainSettings,
    checkpoint: Option<Checkpoint>,
    interrupt: &AtomicBool,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<TrainRun> {
    let out = &settings.out_dir;
    let final_model = out.join("model.safetensors");
    let checkpoint_path = out.join(CHECKPOINT_FILE);
    match &checkpoint {
        None => check_fresh_run_folder(settings)?,
        Some(checkpoint) => {
            let (done, epochs) = (checkpoint.epochs_done(), settings.epochs);
            let stopped = checkpoint.trainer().trainer.early_stopping.is_some_and(|es| es.stopped);
            if (done >= epochs || stopped) && final_model.exists() {
                let why = match stopped {
                    true => format!("early stopping ended it after epoch {done}"),
                    false => {
                        format!("it ran {done} of {epochs} epochs; give --epochs more than {done} to train it further")
                    }
                };
                return Err(Error::Invalid(format!("{}: the run is finished: {why}", out.display())));
            }
        }
    }
    // Found missing after training would be too late.
    if let Some(dir) = settings.test_dir.as_ref().filter(|dir| !dir.is_dir()) {
        return Err(Error::Dataset {
            path: dir.clone(),
            reason: "the test folder does not exist or is not a folder".into(),
        });
    }
    let format = settings.input_format();
    let options = LoadOptions { limits: settings.limits, ..LoadOptions::default() };
    let dataset = load_folder(&settings.data_dir, &format, &options, false, observe)?;
    let classes = dataset.class_names.len();
    let architecture = settings.architecture.clone().with_classes(classes)?;
    let class_sizes = class_sizes(&dataset);
    if let Some(checkpoint) = &checkpoint {
        check_same_data(checkpoint, &settings.data_dir, &class_sizes)?;
        if architecture != checkpoint.file.architecture {
            return Err(Error::Invalid(format!(
                "checkpoint {}: it holds architecture {}, its settings give {architecture}",
                checkpoint.path.display(),
                checkpoint.file.architecture
            )));
        }
    }
    let init = match (&checkpoint, &settings.init) {
        (None, Some(path)) => Some(init_model(path, &architecture)?),
        _ => None,
    };
    let test_set = match &settings.test_dir {
        None => None,
        Some(dir) => {
            let options = LoadOptions { limits: settings.limits, min_classes: 1, ..LoadOptions::default() };
            let test_set = load_folder(dir, &format, &options, true, observe)?;
            if let Some(unknown) = test_set.class_names.iter().find(|c| !dataset.class_names.contains(c)) {
                return Err(Error::Dataset {
                    path: dir.clone(),
                    reason: format!(
                        "its class {unknown:?} is not one of the training data's ({})",
                        dataset.class_names.join(", ")
                    ),
                });
            }
            Some((dir, test_set))
        }
    };

    let split = stratified_split(&dataset.labels, settings.split, settings.seed)?;
    if split.train.is_empty() {
        return Err(Error::Invalid("the training split is empty: give it a share in --split, or more data".into()));
    }
    let counts = split.class_counts(&dataset.labels, classes);
    observe(&RunEvent::ClassCounts { class_names: &dataset.class_names, counts: &counts });

    observe(&RunEvent::Model { summary: &architecture.summary()?, adapter: &backend.describe() });
    let options = TrainOptions {
        class_weights: settings.balance_classes.then(|| inverse_frequency(&counts[0])),
        seed: settings.seed,
        ..TrainOptions::default()
    };
    let weights = match (&checkpoint, init) {
        (Some(checkpoint), _) => checkpoint.file.weights.clone(),
        (None, Some(init)) => init.weights,
        (None, None) => architecture.initial_weights(settings.seed)?,
    };
    let mut model = backend.model(&architecture, settings.batch_size, &weights, &options)?;
    let resume = match &checkpoint {
        Some(checkpoint) => {
            model.set_optimizer_state(checkpoint.file.optimizer.as_ref().expect("load_checkpoint checks"))?;
            Some((checkpoint.file.history.clone(), checkpoint.trainer().trainer.clone()))
        }
        None => None,
    };
    let train_source = ImageBatches::new(&dataset, &split.train)?.with_augment(settings.augment, settings.seed)?;
    let validation_source = ImageBatches::new(&dataset, &split.validation)?;
    let config = FitConfig {
        epochs: settings.epochs,
        lr: settings.lr,
        seed: settings.seed,
        shuffle: true,
        early_stopping: settings.patience.map(|patience| EarlyStopping {
            monitor: Monitor::ValLoss,
            patience,
            restore_best_weights: true,
            ..EarlyStopping::default()
        }),
        reduce_lr: settings.lr_patience.map(|patience| ReduceLrOnPlateau {
            monitor: Monitor::ValLoss,
            factor: settings.lr_factor,
            patience,
            min_lr: settings.min_lr,
            ..ReduceLrOnPlateau::default()
        }),
        metrics_csv: Some(out.join("history.csv")),
    };
    // A resumed run's record is its checkpoint's, with the epochs it now runs to.
    let record = match &checkpoint {
        Some(checkpoint) => RunRecord {
            settings: TrainSettings { epochs: settings.epochs, ..checkpoint.record.settings.clone() },
            classes: class_sizes,
        },
        None => RunRecord { settings: settings.with_absolute_paths()?, classes: class_sizes },
    };
    let run_settings =
        serde_json::to_string(&record).map_err(|e| Error::Invalid(format!("storing the run's settings: {e}")))?;
    let normalisation = normalisation(&format);
    let folder = RunFolder::before_training(out);
    let mut write_checkpoint = |snapshot: &Snapshot| {
        fs::create_dir_all(out)
            .map_err(|e| Error::Invalid(format!("{}: cannot create the run folder: {e}", out.display())))?;
        let file = ModelFile {
            architecture: architecture.clone(),
            class_names: dataset.class_names.clone(),
            normalisation: normalisation.clone(),
            test_time_augment: settings.test_time_augment,
            history: snapshot.history.clone(),
            weights: snapshot.model.weights()?,
            optimizer: Some(snapshot.model.optimizer_state()?),
            resume: Some(ResumeState { trainer: snapshot.trainer.clone(), run_settings: run_settings.clone() }),
        };
        file.save(&checkpoint_path)?;
        folder.checkpointed(snapshot.history.epochs.len());
        Ok(())
    };
    let trained = (|| {
        remove_stale_temporary_files(out);
        let validation = (!split.validation.is_empty()).then_some(&validation_source as &dyn crate::train::BatchSource);
        let control = FitControl { resume, checkpoint: &mut write_checkpoint, interrupt };
        let outcome = fit_from(model.as_mut(), &train_source, validation, &config, control, &mut |event| {
            observe(&RunEvent::Fit(event))
        })?;
        observe(&RunEvent::Batches(&outcome.batches));
        if let StopReason::Interrupted { epoch, step } = outcome.stop {
            return Err(Error::Interrupted { checkpoint: checkpoint_path.clone(), epoch, step });
        }

        let staging = Staging::beside(out)?;
        let staged = staging.path();
        let named: Vec<(&str, Vec<usize>)> =
            split.parts().iter().map(|(n, _)| *n).zip(counts.iter().cloned()).collect();
        plots::class_counts(&dataset.class_names, &named, staged.join("classes.png"))?;
        let model_file = ModelFile {
            architecture: architecture.clone(),
            class_names: dataset.class_names.clone(),
            normalisation: normalisation.clone(),
            test_time_augment: settings.test_time_augment,
            history: outcome.history.clone(),
            weights: model.weights()?,
            optimizer: None,
            resume: None,
        };
        model_file.save(staged.join("model.safetensors"))?;
        if !outcome.history.epochs.is_empty() {
            plots::training_curves(&outcome.history, staged.join("training.png"))?;
        }
        if let StopReason::NonFinite { .. } = outcome.stop {
            staging.publish(&settings.out_dir)?;
            folder.published();
            return Err(Error::Invalid(format!(
                "{}; the last good weights are in {}",
                outcome.stop,
                final_model.display()
            )));
        }

        let mut predictor =
            Predictor::from_model(model, &architecture).with_test_time_augment(settings.test_time_augment);
        let test = if split.test.is_empty() {
            None
        } else {
            let evaluation = evaluate(&mut predictor, &dataset, &split.test, &dataset.class_names)?;
            observe(&RunEvent::Evaluated { test_folder: None, images: split.test.len(), evaluation: &evaluation });
            evaluation.write(staged, "evaluation", "test split")?;
            Some(evaluation)
        };
        let test_dir = match &test_set {
            None => None,
            Some((dir, test_set)) => {
                let all: Vec<usize> = (0..test_set.len()).collect();
                let evaluation = evaluate(&mut predictor, test_set, &all, &dataset.class_names)
                    .map_err(|e| Error::Invalid(format!("test folder {}: {e}", dir.display())))?;
                observe(&RunEvent::Evaluated { test_folder: Some(dir), images: all.len(), evaluation: &evaluation });
                evaluation.write(staged, "evaluation-test-folder", &format!("test folder {}", path_name(dir)))?;
                Some(evaluation)
            }
        };
        staging.publish(&settings.out_dir)?;
        observe(&RunEvent::Saved(&final_model));
        Ok(TrainRun { model: model_file, model_path: final_model, outcome, test, test_dir })
    })();
    folder.after_training(trained)
}

/// A fresh run never trains into a folder that holds a model or a checkpoint, unless told to.
fn check_fresh_run_folder(settings: &TrainSettings) -> Result<()> {
    let out = &settings.out_dir;
    if settings.overwrite {
        return Ok(());
    }
    if out.join("model.safetensors").exists() {
        let extend = match out.join(CHECKPOINT_FILE).exists() {
            true => format!(" (with its checkpoint: --resume {} --epochs N trains it further)", out.display()),
            false => String::new(),
        };
        return Err(Error::Invalid(format!(
            "{}: the run folder already holds a model{extend}; pass --overwrite to replace it, or choose another --out",
            out.display()
        )));
    }
    if out.join(CHECKPOINT_FILE).exists() {
        return Err(Error::Invalid(format!(
            "{}: the run folder holds the checkpoint of a run; pass --resume {} to continue it, --overwrite to start again, or choose another --out",
            out.display(),
            out.display()
        )));
    }
    Ok(())
}

/// Images per class of `dataset`, by name, as a checkpoint records them.
fn class_sizes(dataset: &Dataset) -> Vec<(String, usize)> {
    let mut counts = vec![0; dataset.class_names.len()];
    dataset.labels.iter().for_each(|&l| counts[l as usize] += 1);
    dataset.class_names.iter().cloned().zip(counts).collect()
}

/// A resumed run, or a look back at a run's split, must find the data its checkpoint was trained
/// on: the same classes with as many images each.
fn check_same_data(checkpoint: &Checkpoint, data_dir: &Path, class_sizes: &[(String, usize)]) -> Result<()> {
    let describe =
        |sizes: &[(String, usize)]| sizes.iter().map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ");
    if class_sizes != checkpoint.record.classes {
        return Err(Error::Dataset {
            path: data_dir.to_path_buf(),
            reason: format!(
                "it now holds {}, the run of {} began on {}: resume on the same data",
                describe(class_sizes),
                checkpoint.path.display(),
                describe(&checkpoint.record.classes)
            ),
        });
    }
    Ok(())
}

/// One part of the split a run trained on, found again from its checkpoint.
pub struct RunSplit {
    /// The run's data folder, loaded as the run loaded it.
    pub dataset: Dataset,
    pub report: LoadReport,
    /// The images of the part asked for.
    pub indices: Vec<usize>,
}

/// The images of `part` (train, validation or test) of the split the run in `run_dir` trained on:
/// its data folder loaded at the run's input, cut by the run's ratios and seed, so that settings
/// can be compared on the validation images the run kept out. Errors when the folder holds no
/// checkpoint or no longer holds the images per class the run began on.
pub fn run_split(run_dir: &Path, part: &str) -> Result<RunSplit> {
    if !run_dir.join(CHECKPOINT_FILE).exists() {
        return Err(Error::Invalid(format!(
            "{}: no {CHECKPOINT_FILE}: a split is found again from the checkpoint of the run that trained the model",
            run_dir.display()
        )));
    }
    let checkpoint = Checkpoint::load(run_dir)?;
    let settings = checkpoint.settings();
    let options = LoadOptions { limits: settings.limits, ..LoadOptions::default() };
    let (dataset, report) = ImageFolder::load(&settings.data_dir, &settings.input_format(), &options)?;
    check_same_data(&checkpoint, &settings.data_dir, &class_sizes(&dataset))?;
    let split = stratified_split(&dataset.labels, settings.split, settings.seed)?;
    let indices = split
        .parts()
        .into_iter()
        .find(|(name, _)| *name == part)
        .map(|(_, indices)| indices.to_vec())
        .ok_or_else(|| Error::Invalid(format!("unknown split {part:?}: expected train, validation or test")))?;
    Ok(RunSplit { dataset, report, indices })
}

/// The model file `--init` names, which must be of `architecture` (its layers and its input).
fn init_model(path: &Path, architecture: &Architecture) -> Result<ModelFile> {
    let model = ModelFile::load(path)?;
    let theirs = &model.architecture;
    let difference = if theirs.input != architecture.input {
        Some(format!("its input is {}, this run's is {}", theirs.input, architecture.input))
    } else if theirs != architecture {
        Some(format!("its architecture is {theirs}, this run's is {architecture}"))
    } else {
        None
    };
    match difference {
        Some(difference) => Err(Error::Invalid(format!("--init {}: {difference}", path.display()))),
        None => Ok(model),
    }
}

/// Removes what an earlier process killed while writing left: the temporary files of the
/// checkpoint and the metrics CSV (the files themselves are whole, written by rename).
fn remove_stale_temporary_files(out: &Path) {
    let Ok(entries) = fs::read_dir(out) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let temporary = [CHECKPOINT_FILE, "history.csv"].iter().any(|file| name.starts_with(&format!(".{file}.")));
        if temporary && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The folders that creating a path makes: the outermost of it and its parents that did not exist
/// yet, so that a failed run can remove what it made and nothing else.
struct CreatedFolders {
    outermost: Option<PathBuf>,
}

impl CreatedFolders {
    /// Notes, before anything is created, which of `path` and its parents do not exist.
    fn before_creating(path: &Path) -> CreatedFolders {
        let outermost = path.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).last();
        CreatedFolders { outermost: outermost.map(Path::to_path_buf) }
    }

    /// Removes `path` and its parents out to the outermost noted, each only while it is empty (a
    /// folder someone else wrote into stays, and so do its parents).
    fn remove_empty(&self, path: &Path) {
        let Some(outermost) = &self.outermost else { return };
        for dir in path.ancestors() {
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => break,
                _ if dir == outermost => break,
                _ => {}
            }
        }
    }
}

/// The run folder while training writes into it. A run that fails leaves no folder it created
/// behind unless a checkpoint of its own is in it: work saved is kept (and resumes), debris is not.
struct RunFolder<'a> {
    out: &'a Path,
    created: CreatedFolders,
    /// Epochs done at the last checkpoint written, once one is.
    checkpoint_epochs: Cell<Option<usize>>,
    /// Whether the run's outputs are in the folder (a run that diverged publishes its last good
    /// weights, then fails).
    published: Cell<bool>,
}

impl<'a> RunFolder<'a> {
    fn before_training(out: &'a Path) -> RunFolder<'a> {
        RunFolder {
            out,
            created: CreatedFolders::before_creating(out),
            checkpoint_epochs: Cell::new(None),
            published: Cell::new(false),
        }
    }

    fn checkpointed(&self, epochs: usize) {
        self.checkpoint_epochs.set(Some(epochs));
    }

    fn published(&self) {
        self.published.set(true);
    }

    /// `trained`, with the folder cleaned up when it is an error: removed if this run created it
    /// and wrote no checkpoint; otherwise the error says which checkpoint is kept.
    fn after_training<T>(self, trained: Result<T>) -> Result<T> {
        let e = match trained {
            Ok(done) => return Ok(done),
            Err(e @ Error::Interrupted { .. }) => return Err(e),
            Err(e) if self.published.get() => return Err(e),
            Err(e) => e,
        };
        let kept = match self.checkpoint_epochs.get() {
            None => {
                if self.created.outermost.is_some() {
                    let _ = fs::remove_dir_all(self.out);
                    self.created.remove_empty(self.out);
                }
                return Err(e);
            }
            Some(0) => "written before the first step".to_string(),
            Some(epochs) => format!("of epoch {epochs}"),
        };
        Err(Error::Invalid(format!(
            "{e} (the checkpoint {kept} is kept in {}, and resuming the run goes on from it)",
            self.out.display()
        )))
    }
}

/// A run's outputs before they are the run folder's: a hidden folder beside it, removed (with the
/// parent folders it had to create) unless [`Staging::publish`] moved its files in.
struct Staging {
    path: PathBuf,
    created: CreatedFolders,
    published: bool,
}

impl Staging {
    fn beside(out: &Path) -> Result<Staging> {
        let name = out.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let path = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let created = CreatedFolders::before_creating(&path);
        fs::create_dir_all(&path)
            .map_err(|e| Error::Invalid(format!("{}: cannot create the run folder: {e}", out.display())))?;
        Ok(Staging { path, created, published: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Moves every file into `out` (created if missing), replacing files of the same names.
    fn publish(mut self, out: &Path) -> Result<()> {
        let error = |e: std::io::Error| Error::Invalid(format!("{}: cannot write the run folder: {e}", out.display()));
        fs::create_dir_all(out).map_err(error)?;
        for entry in fs::read_dir(&self.path).map_err(error)? {
            let entry = entry.map_err(error)?;
            fs::rename(entry.path(), out.join(entry.file_name())).map_err(error)?;
        }
        self.published = true;
        fs::remove_dir(&self.path).map_err(error)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.path);
            self.created.remove_empty(&self.path);
        }
    }
}

/// Keras-style balanced class weights: n_samples / (n_classes * n_class), 1 for an empty class.
fn inverse_frequency(counts: &[usize]) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    counts.iter().map(|&n| if n == 0 { 1.0 } else { total as f32 / (counts.len() * n) as f32 }).collect()
}

/// The normalisation a model file records for images prepared with `format`.
fn normalisation(format: &InputFormat) -> String {
    let colour = if format.channels == 1 { "gray" } else { "rgb" };
    let fit = match format.fit {
        Fit::Stretch => "stretch",
        Fit::CenterCrop => "crop",
        Fit::Pad => "pad",
    };
    format!("{colour}/255 {fit}")
}

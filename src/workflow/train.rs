//! Training a model on a folder of class subfolders into a run folder: the model, the metrics
//! CSV, the plots and the test evaluation, written into a staging folder and moved in only when
//! training succeeds.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::data::augment::Augment;
use crate::data::folder::{Dataset, ImageFolder, LoadOptions, LoadReport};
use crate::data::image::{DecodeLimits, Fit, InputFormat};
use crate::data::loader::ImageBatches;
use crate::data::split::{SplitRatios, stratified_split};
use crate::model::TrainOptions;
use crate::model::backend::{Backend, Predictor};
use crate::model::file::ModelFile;
use crate::model::spec::Architecture;
use crate::report::plots;
use crate::train::callbacks::{EarlyStopping, Monitor, ReduceLrOnPlateau};
use crate::train::fit::{BatchTiming, FitConfig, FitOutcome, StopReason, TrainEvent, fit_with};
use crate::workflow::evaluate::{Evaluation, evaluate};
use crate::workflow::path_name;
use crate::{Error, Result};

/// Everything `wgcnn train` needs.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// A folder of class subfolders.
    pub data_dir: PathBuf,
    /// A second folder of the same classes to evaluate on besides the test split (e.g. an
    /// official test set).
    pub test_dir: Option<PathBuf>,
    /// The model; its input sets the image size and channels, its head is fitted to the classes.
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
    /// The run folder: model.safetensors, history.csv, training.png, classes.png, and the test
    /// evaluation (evaluation.txt, evaluation.json, confusion.png).
    pub out_dir: PathBuf,
    /// Replace the model of a run folder that holds one (otherwise training refuses to start).
    pub overwrite: bool,
    /// What one image file may cost to read and decode; a file over them is skipped and reported.
    pub limits: DecodeLimits,
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
/// The run folder changes only when training succeeds: everything is checked first (the data,
/// the test folder's classes, the split, a model already there), the
/// outputs are written into a staging folder beside it, and moved in at the end. A failed run
/// leaves the folder as it was (or absent).
pub fn train(backend: &Backend, settings: &TrainSettings, observe: &mut dyn FnMut(&RunEvent)) -> Result<TrainRun> {
    let out = &settings.out_dir;
    let final_model = out.join("model.safetensors");
    if final_model.exists() && !settings.overwrite {
        return Err(Error::Invalid(format!(
            "{}: the run folder already holds a model; pass --overwrite to replace it, or choose another --out",
            out.display()
        )));
    }
    // Found missing after training would be too late.
    if let Some(dir) = settings.test_dir.as_ref().filter(|dir| !dir.is_dir()) {
        return Err(Error::Dataset {
            path: dir.clone(),
            reason: "the test folder does not exist or is not a folder".into(),
        });
    }
    let input = settings.architecture.input;
    let format =
        InputFormat { channels: input.channels, size: (input.height as u32, input.width as u32), fit: settings.fit };
    let options = LoadOptions { limits: settings.limits, ..LoadOptions::default() };
    let dataset = load_folder(&settings.data_dir, &format, &options, false, observe)?;
    let classes = dataset.class_names.len();
    let architecture = settings.architecture.clone().with_classes(classes)?;
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
    let staging = Staging::beside(out)?;
    let out = staging.path();
    let counts = split.class_counts(&dataset.labels, classes);
    observe(&RunEvent::ClassCounts { class_names: &dataset.class_names, counts: &counts });
    let named: Vec<(&str, Vec<usize>)> = split.parts().iter().map(|(n, _)| *n).zip(counts.iter().cloned()).collect();
    plots::class_counts(&dataset.class_names, &named, out.join("classes.png"))?;

    observe(&RunEvent::Model { summary: &architecture.summary()?, adapter: &backend.describe() });
    let options = TrainOptions {
        class_weights: settings.balance_classes.then(|| inverse_frequency(&counts[0])),
        seed: settings.seed,
        ..TrainOptions::default()
    };
    let weights = architecture.initial_weights(settings.seed)?;
    let mut model = backend.model(&architecture, settings.batch_size, &weights, &options)?;
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
    let validation = (!split.validation.is_empty()).then_some(&validation_source as &dyn crate::train::BatchSource);
    let outcome =
        fit_with(model.as_mut(), &train_source, validation, &config, &mut |event| observe(&RunEvent::Fit(event)))?;
    observe(&RunEvent::Batches(&outcome.batches));

    let model_file = ModelFile {
        architecture: architecture.clone(),
        class_names: dataset.class_names.clone(),
        normalisation: normalisation(&format),
        history: outcome.history.clone(),
        weights: model.weights()?,
        optimizer: None,
    };
    model_file.save(out.join("model.safetensors"))?;
    if !outcome.history.epochs.is_empty() {
        plots::training_curves(&outcome.history, out.join("training.png"))?;
    }
    if let StopReason::NonFinite { .. } = outcome.stop {
        staging.publish(&settings.out_dir)?;
        return Err(Error::Invalid(format!(
            "{}; the last good weights are in {}",
            outcome.stop,
            final_model.display()
        )));
    }

    let mut predictor = Predictor::from_model(model, &architecture);
    let test = if split.test.is_empty() {
        None
    } else {
        let evaluation = evaluate(&mut predictor, &dataset, &split.test, &dataset.class_names)?;
        observe(&RunEvent::Evaluated { test_folder: None, images: split.test.len(), evaluation: &evaluation });
        evaluation.write(out, "evaluation", "test split")?;
        Some(evaluation)
    };
    let test_dir = match &test_set {
        None => None,
        Some((dir, test_set)) => {
            let all: Vec<usize> = (0..test_set.len()).collect();
            let evaluation = evaluate(&mut predictor, test_set, &all, &dataset.class_names)
                .map_err(|e| Error::Invalid(format!("test folder {}: {e}", dir.display())))?;
            observe(&RunEvent::Evaluated { test_folder: Some(dir), images: all.len(), evaluation: &evaluation });
            evaluation.write(out, "evaluation-test-folder", &format!("test folder {}", path_name(dir)))?;
            Some(evaluation)
        }
    };
    staging.publish(&settings.out_dir)?;
    observe(&RunEvent::Saved(&final_model));
    Ok(TrainRun { model: model_file, model_path: final_model, outcome, test, test_dir })
}

/// A run's outputs before they are the run folder's: a hidden folder beside it, removed (with a
/// parent folder it had to create) unless [`Staging::publish`] moved its files in.
struct Staging {
    path: PathBuf,
    /// The outermost parent of the run folder that did not exist, created for the staging folder.
    created_parent: Option<PathBuf>,
    published: bool,
}

impl Staging {
    fn beside(out: &Path) -> Result<Staging> {
        let name = out.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // The outermost of the parents that do not exist yet: removing it removes them all.
        let created_parent = parent.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).last();
        let created_parent = created_parent.map(Path::to_path_buf);
        let path = parent.join(format!(".{name}.partial-{}", std::process::id()));
        fs::create_dir_all(&path)
            .map_err(|e| Error::Invalid(format!("{}: cannot create the run folder: {e}", out.display())))?;
        Ok(Staging { path, created_parent, published: false })
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
            if let Some(created) = &self.created_parent {
                // The folders this run created, from the staging folder's parent out; each is
                // empty now unless something else wrote there, which stops the removal.
                for dir in self.path.ancestors().skip(1) {
                    if fs::remove_dir(dir).is_err() || dir == created {
                        break;
                    }
                }
            }
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

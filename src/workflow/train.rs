//! Training a model on a folder of class subfolders into a run folder: the model, the metrics
//! CSV, the plots and the test evaluation, written into a staging folder and moved in only when
//! training succeeds.

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
use crate::train::fit::{FitConfig, FitOutcome, Progress, StopReason, fit};
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
    pub progress: Progress,
    /// What one image file may cost to read and decode; a file over them is skipped and reported.
    pub limits: DecodeLimits,
}

/// What a training run produced.
pub struct TrainRun {
    pub model: ModelFile,
    pub model_path: PathBuf,
    pub load: LoadReport,
    pub load_seconds: f64,
    pub outcome: FitOutcome,
    /// On the test split (None when the split has no test share).
    pub test: Option<Evaluation>,
    /// On `TrainSettings::test_dir`.
    pub test_dir: Option<Evaluation>,
}

/// Loads `dir` at `format` as `options` say, printing the load report.
fn load_folder(dir: &Path, format: &InputFormat, options: &LoadOptions) -> Result<(Dataset, LoadReport, f64)> {
    let start = Instant::now();
    let (dataset, report) = ImageFolder::load(dir, format, options)?;
    let seconds = start.elapsed().as_secs_f64();
    print!("{report}");
    println!("loaded {} images in {seconds:.1} s ({} KiB as u8)", dataset.len(), dataset.images.len() / 1024);
    Ok((dataset, report, seconds))
}

/// Trains a model as [`TrainSettings`] says, writing the run folder; prints as it goes.
///
/// The run folder changes only when training succeeds: everything is checked first (the data,
/// the test folder's classes, the split, a model already there), the
/// outputs are written into a staging folder beside it, and moved in at the end. A failed run
/// leaves the folder as it was (or absent).
pub fn train(backend: &Backend, settings: &TrainSettings) -> Result<TrainRun> {
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
    let (dataset, load, load_seconds) =
        load_folder(&settings.data_dir, &format, &LoadOptions { limits: settings.limits, ..LoadOptions::default() })?;
    let classes = dataset.class_names.len();
    let architecture = settings.architecture.clone().with_classes(classes)?;
    let test_set = match &settings.test_dir {
        None => None,
        Some(dir) => {
            println!();
            let options = LoadOptions { limits: settings.limits, min_classes: 1, ..LoadOptions::default() };
            let (test_set, _, _) = load_folder(dir, &format, &options)?;
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
    println!("\nclass counts per split:");
    println!("  {:<12} {:>8} {:>10} {:>8}", "class", "train", "validation", "test");
    for (c, name) in dataset.class_names.iter().enumerate() {
        println!("  {name:<12} {:>8} {:>10} {:>8}", counts[0][c], counts[1][c], counts[2][c]);
    }
    let named: Vec<(&str, Vec<usize>)> = split.parts().iter().map(|(n, _)| *n).zip(counts.iter().cloned()).collect();
    plots::class_counts(&dataset.class_names, &named, out.join("classes.png"))?;

    println!("\n{}", architecture.summary()?);
    println!("adapter: {}", backend.describe());
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
        progress: settings.progress,
    };
    let validation = (!split.validation.is_empty()).then_some(&validation_source as &dyn crate::train::BatchSource);
    let outcome = fit(model.as_mut(), &train_source, validation, &config)?;
    println!("batches: {}", outcome.batches);

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
        println!("\ntest split ({} images):\n{}", split.test.len(), evaluation.text());
        evaluation.write(out, "evaluation", "test split")?;
        Some(evaluation)
    };
    let test_dir = match &test_set {
        None => None,
        Some((dir, test_set)) => {
            let all: Vec<usize> = (0..test_set.len()).collect();
            let evaluation = evaluate(&mut predictor, test_set, &all, &dataset.class_names)
                .map_err(|e| Error::Invalid(format!("test folder {}: {e}", dir.display())))?;
            println!("\n{} ({} images):\n{}", dir.display(), all.len(), evaluation.text());
            evaluation.write(out, "evaluation-test-folder", &format!("test folder {}", path_name(dir)))?;
            Some(evaluation)
        }
    };
    staging.publish(&settings.out_dir)?;
    println!("saved {}", final_model.display());
    Ok(TrainRun { model: model_file, model_path: final_model, load, load_seconds, outcome, test, test_dir })
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

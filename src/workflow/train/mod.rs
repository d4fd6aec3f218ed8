//! Training a model on a folder of class subfolders into a run folder: a checkpoint after every
//! epoch (`checkpoint.safetensors`, from which a resumed run continues exactly) and the
//! metrics CSV as training goes; then the model, the plots and the test evaluation, written into
//! a staging folder and moved in only when training succeeds.

mod checkpoint;
mod events;
mod folder;
mod settings;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::data::folder::{Dataset, ImageFolder, LoadOptions};
use crate::data::image::InputFormat;
use crate::data::loader::ImageBatches;
use crate::data::split::{Split, stratified_split};
use crate::model::backend::{Backend, Predictor};
use crate::model::file::{ModelFile, ResumeState};
use crate::model::history::{History, TrainerState};
use crate::model::normalisation::Normalisation;
use crate::model::spec::Architecture;
use crate::model::{NamedTensor, OptimizerState, TrainOptions, Trainable};
use crate::report::plots;
use crate::train::callbacks::{EarlyStopping, Monitor, ReduceLrOnPlateau};
use crate::train::fit::{FitConfig, FitControl, FitOutcome, Snapshot, StopReason, fit_from};
use crate::workflow::evaluate::{Evaluation, evaluate};
use crate::workflow::path_name;
use crate::{Error, Result};
use checkpoint::{check_same_data, class_sizes, stored_run_settings};
use folder::{RunFolder, Staging, check_fresh_run_folder, remove_stale_temporary_files};

pub use checkpoint::{CHECKPOINT_FILE, Checkpoint, RunSplit, run_split};
pub use events::RunEvent;
pub use settings::{SettingDifference, TrainSettings};

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
/// split, an initial model (`init`), a model or checkpoint already there): a run that fails there leaves
/// the folder as it was (or absent). Once training begins the folder holds a checkpoint, written
/// before the first step and after every epoch, and the metrics CSV. The model, the plots and the
/// evaluations are written into a staging folder beside it and moved in at the end.
pub fn train(backend: &Backend, settings: &TrainSettings, observe: &mut dyn FnMut(&RunEvent)) -> Result<TrainRun> {
    train_from(backend, settings, None, &AtomicBool::new(false), observe)
}

/// [`train`], resuming `checkpoint` when given (with `settings` from [`Checkpoint::settings`],
/// whose epochs may have grown), and stopping after the step at which `interrupt` is set: the
/// checkpoint then holds that moment, and the error is [`Error::Interrupted`].
///
/// In four steps: `load` the data (everything checked before the run folder changes), `build` the
/// model, `fit` it (writing the checkpoints) and `publish` the outputs.
pub fn train_from(
    backend: &Backend,
    settings: &TrainSettings,
    checkpoint: Option<Checkpoint>,
    interrupt: &AtomicBool,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<TrainRun> {
    let checkpoint = checkpoint.as_ref();
    check_run_folder(settings, checkpoint)?;
    let (data, init) = load(settings, checkpoint, observe)?;
    let training = build(backend, settings, checkpoint, &data, init, observe)?;
    let run_settings = stored_run_settings(settings, checkpoint, data.class_sizes.clone())?;
    let folder = RunFolder::before_training(&settings.out_dir);
    let trained = (|| {
        let (model, outcome) = fit(training, settings, &data, &run_settings, &folder, interrupt, observe)?;
        publish(model, settings, &data, outcome, &folder, observe)
    })();
    folder.after_training(trained)
}

/// What is checked before anything loads: a fresh run's folder holds no other run, a resumed run
/// is not finished, and the test folder is there.
fn check_run_folder(settings: &TrainSettings, checkpoint: Option<&Checkpoint>) -> Result<()> {
    let out = &settings.out_dir;
    match checkpoint {
        None => check_fresh_run_folder(settings)?,
        Some(checkpoint) => {
            let (done, epochs) = (checkpoint.epochs_done(), settings.epochs);
            let stopped = checkpoint.trainer().trainer.early_stopping.is_some_and(|es| es.stopped);
            if (done >= epochs || stopped) && out.join("model.safetensors").exists() {
                return Err(Error::RunFinished { out: out.clone(), done, epochs, early_stopped: stopped });
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
    Ok(())
}

/// A run's data, loaded and checked: against the checkpoint, the test folder against the data.
struct RunData<'s> {
    dataset: Dataset,
    /// The test folder and its images.
    test_set: Option<(&'s PathBuf, Dataset)>,
    /// The settings' architecture, its head fitted to the data's classes.
    architecture: Architecture,
    class_sizes: Vec<(String, usize)>,
    split: Split,
    /// Images per class in the train, validation and test splits.
    counts: [Vec<usize>; 3],
    /// As the model file records it.
    normalisation: Normalisation,
}

impl RunData<'_> {
    /// A model file of this run: of a checkpoint with the optimizer's and the trainer's state.
    fn model_file(
        &self,
        settings: &TrainSettings,
        history: History,
        weights: Vec<NamedTensor>,
        optimizer: Option<OptimizerState>,
        resume: Option<ResumeState>,
    ) -> ModelFile {
        ModelFile {
            architecture: self.architecture.clone(),
            class_names: self.dataset.class_names.clone(),
            normalisation: self.normalisation,
            test_time_augment: settings.test_time_augment,
            history,
            weights,
            optimizer,
            resume,
        }
    }
}

/// Loads the data folder, the initial model of a fresh run (`init`) and the test folder, checks them, and
/// splits the data, telling `observe` of the load reports and the class counts.
fn load<'s>(
    settings: &'s TrainSettings,
    checkpoint: Option<&Checkpoint>,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<(RunData<'s>, Option<ModelFile>)> {
    let format = settings.input_format();
    let options = LoadOptions { limits: settings.limits, ..LoadOptions::default() };
    let dataset = load_folder(&settings.data_dir, &format, &options, false, observe)?;
    let classes = dataset.class_names.len();
    let architecture = settings.architecture.clone().with_classes(classes)?;
    let class_sizes = class_sizes(&dataset);
    if let Some(checkpoint) = checkpoint {
        check_same_data(checkpoint, &settings.data_dir, &class_sizes)?;
        if architecture != checkpoint.file.architecture {
            return Err(Error::Invalid(format!(
                "checkpoint {}: it holds architecture {}, its settings give {architecture}",
                checkpoint.path.display(),
                checkpoint.file.architecture
            )));
        }
    }
    let init = match (checkpoint, &settings.init) {
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
        return Err(Error::Setting {
            field: "split",
            reason: "leaves the training split empty: give it a share, or more data".into(),
        });
    }
    let counts = split.class_counts(&dataset.labels, classes);
    observe(&RunEvent::ClassCounts { class_names: &dataset.class_names, counts: &counts });
    let normalisation = Normalisation::new(format.channels, format.fit);
    Ok((RunData { dataset, test_set, architecture, class_sizes, split, counts, normalisation }, init))
}

/// The model a run trains, where it starts from, and what it trains on.
struct Training<'d> {
    model: Box<dyn Trainable + Send>,
    /// A resumed run's history and trainer state.
    resume: Option<(History, TrainerState)>,
    train_source: ImageBatches<'d>,
    validation_source: ImageBatches<'d>,
    config: FitConfig,
}

/// Builds the model with its first weights (the checkpoint's, the initial model's or new ones)
/// and, resuming, Adam's state; then the batch sources and the loop's settings.
fn build<'d>(
    backend: &Backend,
    settings: &TrainSettings,
    checkpoint: Option<&Checkpoint>,
    data: &'d RunData,
    init: Option<ModelFile>,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<Training<'d>> {
    let architecture = &data.architecture;
    observe(&RunEvent::Model { summary: &architecture.summary()?, adapter: &backend.describe() });
    let options = TrainOptions {
        class_weights: settings.balance_classes.then(|| inverse_frequency(&data.counts[0])),
        seed: settings.seed,
        ..TrainOptions::default()
    };
    let weights = match (checkpoint, init) {
        (Some(checkpoint), _) => checkpoint.file.weights.clone(),
        (None, Some(init)) => init.weights,
        (None, None) => architecture.initial_weights(settings.seed)?,
    };
    let mut model = backend.model(architecture, settings.batch_size, &weights, &options)?;
    let resume = match checkpoint {
        Some(checkpoint) => {
            model.set_optimizer_state(checkpoint.file.optimizer.as_ref().expect("load_checkpoint checks"))?;
            Some((checkpoint.file.history.clone(), checkpoint.trainer().trainer.clone()))
        }
        None => None,
    };
    let (dataset, split) = (&data.dataset, &data.split);
    let train_source = ImageBatches::new(dataset, &split.train)?.with_augment(settings.augment, settings.seed)?;
    let validation_source = ImageBatches::new(dataset, &split.validation)?;
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
        metrics_csv: Some(settings.out_dir.join("history.csv")),
    };
    Ok(Training { model, resume, train_source, validation_source, config })
}

/// Trains the model, a checkpoint (`run_settings` in it) written before the first step and after
/// every epoch; an interrupted run ends here, with [`Error::Interrupted`].
fn fit(
    training: Training,
    settings: &TrainSettings,
    data: &RunData,
    run_settings: &str,
    folder: &RunFolder,
    interrupt: &AtomicBool,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<(Box<dyn Trainable + Send>, FitOutcome)> {
    let out = &settings.out_dir;
    let checkpoint_path = out.join(CHECKPOINT_FILE);
    let Training { mut model, resume, train_source, validation_source, config } = training;
    let mut write_checkpoint = |snapshot: &Snapshot| {
        fs::create_dir_all(out)
            .map_err(|e| Error::Invalid(format!("{}: cannot create the run folder: {e}", out.display())))?;
        let file = data.model_file(
            settings,
            snapshot.history.clone(),
            snapshot.model.weights()?,
            Some(snapshot.model.optimizer_state()?),
            Some(ResumeState { trainer: snapshot.trainer.clone(), run_settings: run_settings.to_string() }),
        );
        file.save(&checkpoint_path)?;
        folder.checkpointed(snapshot.history.epochs.len());
        Ok(())
    };
    remove_stale_temporary_files(out);
    let validation =
        (!data.split.validation.is_empty()).then_some(&validation_source as &dyn crate::train::BatchSource);
    let control = FitControl { resume, checkpoint: &mut write_checkpoint, interrupt };
    let outcome = fit_from(model.as_mut(), &train_source, validation, &config, control, &mut |event| {
        observe(&RunEvent::Fit(event))
    })?;
    observe(&RunEvent::Batches(&outcome.batches));
    if let StopReason::Interrupted { epoch, step } = outcome.stop {
        return Err(Error::Interrupted { checkpoint: checkpoint_path, epoch, step });
    }
    Ok((model, outcome))
}

/// Writes the outputs into a staging folder (the plots, the model, the evaluations on the test
/// split and the test folder) and moves them into the run folder. A run whose loss diverged
/// publishes its last good weights, then fails.
fn publish(
    model: Box<dyn Trainable + Send>,
    settings: &TrainSettings,
    data: &RunData,
    outcome: FitOutcome,
    folder: &RunFolder,
    observe: &mut dyn FnMut(&RunEvent),
) -> Result<TrainRun> {
    let final_model = settings.out_dir.join("model.safetensors");
    let (dataset, split) = (&data.dataset, &data.split);
    let staging = Staging::beside(&settings.out_dir)?;
    let staged = staging.path();
    let named: Vec<(&str, Vec<usize>)> =
        split.parts().iter().map(|(n, _)| *n).zip(data.counts.iter().cloned()).collect();
    plots::class_counts(&dataset.class_names, &named, staged.join("classes.png"))?;
    let model_file = data.model_file(settings, outcome.history.clone(), model.weights()?, None, None);
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
        Predictor::from_model(model, &data.architecture).with_test_time_augment(settings.test_time_augment);
    let test = if split.test.is_empty() {
        None
    } else {
        let evaluation = evaluate(&mut predictor, dataset, &split.test, &dataset.class_names)?;
        observe(&RunEvent::Evaluated { test_folder: None, images: split.test.len(), evaluation: &evaluation });
        evaluation.write(staged, "evaluation", "test split")?;
        Some(evaluation)
    };
    let test_dir = match &data.test_set {
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
}

/// The model file `init` names, which must be of `architecture` (its layers and its input).
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
        Some(difference) => Err(Error::Setting { field: "init", reason: format!("{}: {difference}", path.display()) }),
        None => Ok(model),
    }
}

/// Keras-style balanced class weights: n_samples / (n_classes * n_class), 1 for an empty class.
fn inverse_frequency(counts: &[usize]) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    counts.iter().map(|&n| if n == 0 { 1.0 } else { total as f32 / (counts.len() * n) as f32 }).collect()
}

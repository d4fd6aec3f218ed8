//! A run folder's checkpoint as the workflow reads it: the run's settings and data it records, the
//! checks a resumed run passes against them, and a run's split found again from it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::settings::TrainSettings;
use crate::data::folder::{Dataset, ImageFolder, LoadOptions, LoadReport};
use crate::data::split::stratified_split;
use crate::model::file::{ModelFile, ResumeState};
use crate::{Error, Result};

/// The checkpoint a run folder holds while its run goes on, and after it.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// What a checkpoint's `run_settings` hold: the settings, and the images per class the data
/// folder gave, which a resumed run must find again.
#[derive(Serialize, Deserialize)]
struct RunRecord {
    settings: TrainSettings,
    classes: Vec<(String, usize)>,
}

/// A run folder's checkpoint, read to resume its run.
pub struct Checkpoint {
    pub(super) path: PathBuf,
    pub(super) file: ModelFile,
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

    pub(super) fn trainer(&self) -> &ResumeState {
        self.file.resume.as_ref().expect("load_checkpoint checks")
    }
}

/// The `run_settings` a checkpoint of this run stores. A resumed run's record is its checkpoint's,
/// with the epochs it now runs to.
pub(super) fn stored_run_settings(
    settings: &TrainSettings,
    checkpoint: Option<&Checkpoint>,
    class_sizes: Vec<(String, usize)>,
) -> Result<String> {
    let record = match checkpoint {
        Some(checkpoint) => RunRecord {
            settings: TrainSettings { epochs: settings.epochs, ..checkpoint.record.settings.clone() },
            classes: class_sizes,
        },
        None => RunRecord { settings: settings.with_absolute_paths()?, classes: class_sizes },
    };
    serde_json::to_string(&record).map_err(|e| Error::Invalid(format!("storing the run's settings: {e}")))
}

/// Images per class of `dataset`, by name, as a checkpoint records them.
pub(super) fn class_sizes(dataset: &Dataset) -> Vec<(String, usize)> {
    let mut counts = vec![0; dataset.class_names.len()];
    dataset.labels.iter().for_each(|&l| counts[l as usize] += 1);
    dataset.class_names.iter().cloned().zip(counts).collect()
}

/// A resumed run, or a look back at a run's split, must find the data its checkpoint was trained
/// on: the same classes with as many images each.
pub(super) fn check_same_data(checkpoint: &Checkpoint, data_dir: &Path, class_sizes: &[(String, usize)]) -> Result<()> {
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

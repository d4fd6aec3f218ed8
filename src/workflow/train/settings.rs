//! What `wgcnn train` is told: [`TrainSettings`], which a checkpoint stores so that a resumed run
//! goes on as it started.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::augment::Augment;
use crate::data::image::{DecodeLimits, Fit, InputFormat};
use crate::data::split::SplitRatios;
use crate::model::spec::Architecture;
use crate::model::test_time::TestTimeAugment;
use crate::{Error, Result};

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
    /// The settings that differ from `other`'s, found by comparing what a checkpoint stores of
    /// each (every field but the run folder and `overwrite`), so that no field is left out. A
    /// field that holds several values gives one difference per value that differs, named by
    /// its path (`split.train`, `limits.max_pixels`).
    pub fn differences(&self, other: &TrainSettings) -> Vec<SettingDifference> {
        let (mine, theirs) = (self.stored_values(), other.stored_values());
        mine.into_iter()
            .zip(theirs)
            .filter(|(a, b)| a != b)
            .map(|((field, now), (_, then))| SettingDifference { field, now, then })
            .collect()
    }

    /// Every value a checkpoint stores of these settings, by field path, sorted by it.
    pub fn stored_values(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(self).expect("settings serialise to JSON");
        let mut values = Vec::new();
        flatten("", &value, &mut values);
        values
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

/// A setting of a run that differs from another run's ([`TrainSettings::differences`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingDifference {
    /// The field, or the path of a value inside one: `lr`, `split.train`, `limits.max_pixels`.
    pub field: String,
    /// The value in the settings compared, and in the others.
    pub now: String,
    pub then: String,
}

/// The leaves of `value` as (path, text): strings as they are, `null` as `none`.
fn flatten(path: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, value) in fields {
                let path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                flatten(&path, value, out);
            }
        }
        serde_json::Value::String(text) => out.push((path.to_string(), text.clone())),
        serde_json::Value::Null => out.push((path.to_string(), "none".to_string())),
        other => out.push((path.to_string(), other.to_string())),
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

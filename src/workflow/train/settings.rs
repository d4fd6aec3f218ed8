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

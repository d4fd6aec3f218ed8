//! The built-in models, in one table: each one's architecture, batch sizes and training settings,
//! and the [`TrainSettings`] they give a run ([`Preset::settings`]).

use std::path::PathBuf;

use crate::data::augment::Augment;
use crate::data::image::{DecodeLimits, Fit};
use crate::data::split::SplitRatios;
use crate::model::spec::{Architecture, InputShape};
use crate::model::test_time::TestTimeAugment;
use crate::workflow::train::TrainSettings;
use crate::{Error, Result};

/// A built-in model ([`Preset::names`]), its batch sizes and its training settings.
#[derive(Clone, Debug)]
pub struct Preset {
    pub name: &'static str,
    pub architecture: Architecture,
    /// Images per training step unless told (the source projects' Keras default, 32).
    pub batch_size: usize,
    /// Images per step `bench-train` measures unless told (as `benches/training.rs`).
    pub bench_batch_size: usize,
    /// What a run of this preset trains with unless told otherwise.
    pub training: PresetTraining,
}

/// A preset's training settings: for `fer48`, the ones the README measures on FER-2013's
/// validation faces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresetTraining {
    pub epochs: usize,
    pub split: SplitRatios,
    pub augment: Augment,
    /// Adam's starting learning rate; on a plateau it is multiplied by `lr_factor`, down to
    /// `min_lr`.
    pub lr: f64,
    pub lr_factor: f64,
    pub min_lr: f64,
    /// Early stopping's patience (0: none) and the learning-rate plateau's (0: none).
    pub patience: usize,
    pub lr_patience: usize,
    /// Weigh each class's loss by the inverse of its share.
    pub balance_classes: bool,
    /// What the model file tells `eval`, `predict` and `serve` to predict with.
    pub test_time_augment: TestTimeAugment,
}

impl PresetTraining {
    /// The source projects' settings: 20 epochs, 70/20/10, no augmentation, Adam at 0.001,
    /// early stopping after 5 epochs, the rate halved after 3 (to at least 1e-6).
    pub const TUTORIAL: PresetTraining = PresetTraining {
        epochs: 20,
        split: SplitRatios::TUTORIAL,
        augment: Augment::OFF,
        lr: 1e-3,
        lr_factor: 0.5,
        min_lr: 1e-6,
        patience: 5,
        lr_patience: 3,
        balance_classes: false,
        test_time_augment: TestTimeAugment::None,
    };
}

/// One row of [`PRESETS`]: a preset as constants.
struct PresetRow {
    name: &'static str,
    /// The layers, in the spec grammar (`model::spec`).
    spec: &'static str,
    /// Channels, height, width.
    input: (usize, usize, usize),
    batch_size: usize,
    bench_batch_size: usize,
    training: PresetTraining,
}

/// The built-in models:
/// - `happy-sad` (Model A): `c16-p-c32-p-c64-p-c32-p-f-d256-d1` at 3x256x256;
/// - `emotions3` (Model B): `c32-p-c64-p-c128-p-f-d128-drop0.5-d3` at 3x128x128;
/// - `fer48`: a VGG-style stack with batch norm and `same` padding, two convolutions in the
///   middle blocks, at 1x48x48 (FER-2013's faces), with the training settings measured on
///   FER-2013's validation faces in the README.
const PRESETS: [PresetRow; 3] = [
    PresetRow {
        name: "happy-sad",
        spec: "c16-p-c32-p-c64-p-c32-p-f-d256-d1",
        input: (3, 256, 256),
        batch_size: 32,
        bench_batch_size: 32,
        training: PresetTraining::TUTORIAL,
    },
    PresetRow {
        name: "emotions3",
        spec: "c32-p-c64-p-c128-p-f-d128-drop0.5-d3",
        input: (3, 128, 128),
        batch_size: 32,
        bench_batch_size: 64,
        training: PresetTraining::TUTORIAL,
    },
    PresetRow {
        name: "fer48",
        spec: "c32samelin-bn-r-p-c64samelin-bn-r-c64samelin-bn-r-p-c128samelin-bn-r-c128samelin-bn-r-p-\
               c256samelin-bn-r-p-f-d256-drop0.5-d3",
        input: (1, 48, 48),
        batch_size: 64,
        bench_batch_size: 64,
        training: PresetTraining {
            epochs: 50,
            split: SplitRatios { train: 0.85, validation: 0.1, test: 0.05 },
            augment: Augment { flip: true, rotate_deg: 10.0, shift: 0.1, zoom: 0.1, ..Augment::OFF },
            patience: 10,
            lr_patience: 5,
            balance_classes: true,
            // Chosen on validation: 82.6% with the mirror, 82.0% without (README).
            test_time_augment: TestTimeAugment::Mirror,
            ..PresetTraining::TUTORIAL
        },
    },
];

impl Preset {
    /// The preset `wgcnn train` uses when given neither `--preset` nor `--arch`.
    pub const DEFAULT: &'static str = "happy-sad";

    /// The names of the built-in models, in the order of the table.
    pub fn names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|row| row.name)
    }

    /// The preset named `name`; an error listing the presets for another name.
    pub fn named(name: &str) -> Result<Preset> {
        let Some(row) = PRESETS.iter().find(|row| row.name == name) else {
            let names: Vec<&str> = Self::names().collect();
            return Err(Error::Invalid(format!("unknown preset {name:?}: expected one of {}", names.join(", "))));
        };
        let (channels, height, width) = row.input;
        Ok(Preset {
            name: row.name,
            architecture: Architecture::parse(row.spec, InputShape::new(channels, height, width))?,
            batch_size: row.batch_size,
            bench_batch_size: row.bench_batch_size,
            training: row.training,
        })
    }

    /// A run of this preset on the class subfolders of `data_dir` into the run folder `out_dir`:
    /// every setting the preset's, the rest as `wgcnn train` has them unless told (images
    /// stretched to the input, seed 0, the default decode limits, no test folder, no initial
    /// model, an existing run folder refused). Change the fields you need before training.
    pub fn settings(&self, data_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> TrainSettings {
        let training = &self.training;
        TrainSettings {
            data_dir: data_dir.into(),
            test_dir: None,
            architecture: self.architecture.clone(),
            fit: Fit::Stretch,
            split: training.split,
            epochs: training.epochs,
            batch_size: self.batch_size,
            lr: training.lr,
            seed: 0,
            patience: Some(training.patience).filter(|&p| p > 0),
            lr_patience: Some(training.lr_patience).filter(|&p| p > 0),
            lr_factor: training.lr_factor,
            min_lr: training.min_lr,
            augment: training.augment,
            balance_classes: training.balance_classes,
            test_time_augment: training.test_time_augment,
            out_dir: out_dir.into(),
            overwrite: false,
            limits: DecodeLimits::default(),
            init: None,
        }
    }
}

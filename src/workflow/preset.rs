//! The built-in models as the commands use them: the architecture, the batch sizes and the
//! training settings that go with it.

use crate::Result;
use crate::data::augment::Augment;
use crate::data::split::SplitRatios;
use crate::model::spec::Architecture;
use crate::model::test_time::TestTimeAugment;

/// A built-in model ([`crate::model::spec::PRESETS`]), its batch sizes and its training settings.
#[derive(Clone, Debug)]
pub struct Preset {
    pub architecture: Architecture,
    /// Images per training step unless told (the source projects' Keras default, 32).
    pub batch_size: usize,
    /// Images per step `bench-train` measures unless told (as `benches/training.rs`).
    pub bench_batch_size: usize,
    /// What `wgcnn train --preset` trains with unless a flag says otherwise.
    pub training: PresetTraining,
}

/// A preset's training settings: for `fer48`, the ones the README measures on FER-2013's
/// validation faces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PresetTraining {
    pub epochs: usize,
    pub split: SplitRatios,
    pub augment: Augment,
    /// Early stopping's patience (0: none) and the learning-rate plateau's (0: none).
    pub patience: usize,
    pub lr_patience: usize,
    /// Weigh each class's loss by the inverse of its share.
    pub balance_classes: bool,
    /// What the model file tells `eval`, `predict` and `serve` to predict with.
    pub test_time_augment: TestTimeAugment,
}

impl PresetTraining {
    /// The source projects' settings: 20 epochs, 70/20/10, no augmentation, early stopping after
    /// 5 epochs, the rate halved after 3.
    pub const TUTORIAL: PresetTraining = PresetTraining {
        epochs: 20,
        split: SplitRatios::TUTORIAL,
        augment: Augment::OFF,
        patience: 5,
        lr_patience: 3,
        balance_classes: false,
        test_time_augment: TestTimeAugment::None,
    };
}

impl Preset {
    /// The preset `wgcnn train` uses when given neither `--preset` nor `--arch`.
    pub const DEFAULT: &'static str = "happy-sad";

    /// The preset named `name`; an error listing the presets for another name.
    pub fn named(name: &str) -> Result<Preset> {
        let architecture = Architecture::preset(name)?;
        Ok(match name {
            "fer48" => Preset {
                architecture,
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
                },
            },
            _ => Preset {
                architecture,
                batch_size: 32,
                bench_batch_size: if name == "emotions3" { 64 } else { 32 },
                training: PresetTraining::TUTORIAL,
            },
        })
    }
}

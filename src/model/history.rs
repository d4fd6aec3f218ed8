//! The training history a model file stores and the trainer records: one record per epoch; and
//! the trainer's own state, which a checkpoint stores to resume a run. Both live beside the model
//! file so that the file format needs nothing from the trainer.

use serde::{Deserialize, Serialize};

use crate::model::weights::NamedTensor;

/// Metrics of one epoch, as Keras's `History` and the per-epoch CSV hold them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// None when there is no validation data.
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Learning rate used during the epoch.
    pub lr: f64,
    pub seconds: f64,
}

/// The training history: one record per finished epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
}

/// The best value a plateau callback (early stopping, learning-rate reduction) has seen, and the
/// epochs since it improved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// None until an epoch gives a value that counts (a NaN never does).
    pub best: Option<f64>,
    pub epochs_without_improvement: usize,
}

/// Early stopping's state: its plateau, the best epoch so far, and whether it ended the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingProgress {
    pub plateau: PlateauState,
    pub best_epoch: Option<usize>,
    pub stopped: bool,
}

/// An epoch interrupted after `steps_done` of its steps, and their running statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochProgress {
    /// 1-based.
    pub epoch: usize,
    pub steps_done: usize,
    pub loss_sum: f64,
    pub correct: u64,
    pub count: u64,
    /// Seconds the epoch has run so far.
    pub seconds: f64,
}

/// Where the trainer stands after an epoch (or an interrupted step), besides the history, the
/// model's weights and Adam's state: all it needs to go on as if it had never stopped. The sample
/// order, the augmentation and the dropout masks are keyed by the seed, the epoch and the step,
/// so no generator state is kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The rate of the next step (a plateau may have lowered it).
    pub lr: f64,
    /// Present when the run has early stopping.
    pub early_stopping: Option<EarlyStoppingProgress>,
    /// Present when the run reduces its rate on plateaus.
    pub reduce_lr: Option<PlateauState>,
    /// An epoch left unfinished; None after a whole epoch.
    pub epoch_in_progress: Option<EpochProgress>,
    /// The best epoch's weights, kept to restore them at the end (early stopping's
    /// `restore_best_weights`). Stored as tensors, not in the JSON.
    #[serde(skip)]
    pub best_weights: Option<Vec<NamedTensor>>,
    /// With an epoch in progress: the weights it started from, which a NaN loss later in the
    /// epoch falls back to. Stored as tensors, not in the JSON.
    #[serde(skip)]
    pub epoch_start_weights: Option<Vec<NamedTensor>>,
}

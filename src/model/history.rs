//! The training history a model file stores and the trainer records: one record per epoch. It
//! lives beside the model file so that the file format needs nothing from the trainer.

use serde::{Deserialize, Serialize};

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

//! What the training loop is told ([`FitConfig`], [`FitControl`]), what it reports at each
//! checkpoint ([`Snapshot`]) and what it returns ([`FitOutcome`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::events::{BatchTiming, StopReason};
use crate::Result;
use crate::model::Trainable;
use crate::model::history::{History, TrainerState};
use crate::train::callbacks::{EarlyStopping, ReduceLrOnPlateau};

/// What [`fit`](super::fit) does.
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// The most epochs to run (early stopping or a diverging loss may end training sooner).
    pub epochs: usize,
    /// The starting learning rate (a [`ReduceLrOnPlateau`] may lower it).
    pub lr: f64,
    /// Seeds the shuffling: the same seed gives the same sample order, epoch by epoch.
    pub seed: u64,
    /// Shuffle the training samples every epoch; otherwise they go in order.
    pub shuffle: bool,
    /// Ends training when a metric stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Lowers the learning rate when a metric stops improving.
    pub reduce_lr: Option<ReduceLrOnPlateau>,
    /// Rewritten after every epoch with the whole history (`epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds`).
    pub metrics_csv: Option<PathBuf>,
}

impl Default for FitConfig {
    /// One epoch at Adam's usual rate 1e-3, shuffled from seed 0, no callbacks, no CSV.
    fn default() -> Self {
        Self { epochs: 1, lr: 1e-3, seed: 0, shuffle: true, early_stopping: None, reduce_lr: None, metrics_csv: None }
    }
}

/// What [`fit`](super::fit) returns.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOutcome {
    /// One record per completed epoch.
    pub history: History,
    /// Why training ended.
    pub stop: StopReason,
    /// The epoch the early-stopping monitor rated best; None without early stopping.
    pub best_epoch: Option<usize>,
    /// How long batches took to prepare, and how long the model waited for them.
    pub batches: BatchTiming,
}

/// Where [`fit_from`](super::fit_from) starts, where it reports its state, and what stops it early.
pub struct FitControl<'a> {
    /// A run to continue from a [`Snapshot`]: its history and the trainer's state. The model
    /// must hold the weights and Adam's state of that moment; the run then goes on exactly as if
    /// it had never stopped (the same `config`, except `epochs`, which may grow).
    pub resume: Option<(History, TrainerState)>,
    /// Handed the run's state after every epoch (callbacks done), and after the step at which
    /// `interrupt` was found set: a checkpoint writer. An error ends training with it.
    pub checkpoint: &'a mut dyn FnMut(&Snapshot) -> Result<()>,
    /// Set (by a signal handler) to stop after the current step, with a checkpoint.
    pub interrupt: &'a AtomicBool,
}

/// The state of a run at a step or an epoch's end: with the model's weights and Adam's state,
/// all that [`FitControl::resume`] needs.
pub struct Snapshot<'a> {
    pub history: &'a History,
    pub trainer: &'a TrainerState,
    pub model: &'a dyn Trainable,
}

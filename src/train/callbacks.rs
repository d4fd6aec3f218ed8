//! Keras's `EarlyStopping` and `ReduceLROnPlateau`: the metric they watch, when a value counts as
//! an improvement, and what they do after a run of epochs without one.

use crate::model::history::{EarlyStoppingProgress, EpochRecord, PlateauState};
use crate::model::weights::NamedTensor;
use crate::{Error, Result};

/// The metric a callback watches. Losses improve downwards ("min" in Keras), accuracies upwards
/// ("max"). Without validation data `ValLoss` and `ValAccuracy` watch the training loss and
/// accuracy instead, so one configuration serves runs with and without a validation set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Monitor {
    /// The validation loss (Keras's `val_loss`).
    #[default]
    ValLoss,
    /// The validation accuracy (`val_accuracy`).
    ValAccuracy,
    /// The training loss (`loss`).
    Loss,
    /// The training accuracy (`accuracy`).
    Accuracy,
}

impl Monitor {
    /// The watched value of an epoch (the training metric when the epoch had no validation).
    pub fn value(self, record: &EpochRecord) -> f64 {
        match self {
            Monitor::ValLoss => record.val_loss.unwrap_or(record.loss),
            Monitor::ValAccuracy => record.val_accuracy.unwrap_or(record.accuracy),
            Monitor::Loss => record.loss,
            Monitor::Accuracy => record.accuracy,
        }
    }

    /// True for the losses, which improve by going down.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Monitor::ValLoss | Monitor::Loss)
    }

    /// Better than `best` by more than `min_delta`. A NaN is never an improvement.
    fn is_improvement(self, current: f64, best: f64, min_delta: f64) -> bool {
        if self.lower_is_better() { current < best - min_delta } else { current > best + min_delta }
    }

    /// The starting "best", which any finite value beats.
    fn worst(self) -> f64 {
        if self.lower_is_better() { f64::INFINITY } else { f64::NEG_INFINITY }
    }
}

/// Stop training when the monitored metric stops improving, as Keras 3's `EarlyStopping`.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// The metric watched.
    pub monitor: Monitor,
    /// Epochs without improvement after which training stops (0: at the first one).
    pub patience: usize,
    /// An epoch improves only when it beats the best value by more than this.
    pub min_delta: f64,
    /// Put back the weights of the best epoch when training ends, whether it stopped early or ran
    /// all its epochs (Keras 3 does both; Keras 2 only on an early stop).
    pub restore_best_weights: bool,
}

impl Default for EarlyStopping {
    /// Keras's defaults: watch `val_loss`, patience 0, min_delta 0, no restoring.
    fn default() -> Self {
        Self { monitor: Monitor::ValLoss, patience: 0, min_delta: 0.0, restore_best_weights: false }
    }
}

impl EarlyStopping {
    pub(crate) fn validate(&self) -> Result<()> {
        check_min_delta("early_stopping", self.min_delta)
    }
}

/// Lower the learning rate when the monitored metric stops improving, as Keras's
/// `ReduceLROnPlateau` with no cooldown.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    /// The metric watched.
    pub monitor: Monitor,
    /// The new rate is the old one times this, in (0, 1).
    pub factor: f64,
    /// Epochs without improvement after which the rate is lowered; the count then starts again.
    pub patience: usize,
    /// An epoch improves only when it beats the best value by more than this.
    pub min_delta: f64,
    /// The rate never goes below this.
    pub min_lr: f64,
}

impl Default for ReduceLrOnPlateau {
    /// Keras's defaults: watch `val_loss`, factor 0.1, patience 10, min_delta 1e-4, min_lr 0.
    fn default() -> Self {
        Self { monitor: Monitor::ValLoss, factor: 0.1, patience: 10, min_delta: 1e-4, min_lr: 0.0 }
    }
}

impl ReduceLrOnPlateau {
    pub(crate) fn validate(&self) -> Result<()> {
        check_min_delta("reduce_lr", self.min_delta)?;
        if !(self.factor > 0.0 && self.factor < 1.0) {
            return Err(Error::Invalid(format!("reduce_lr: factor must be in (0, 1), got {}", self.factor)));
        }
        if !(self.min_lr >= 0.0 && self.min_lr.is_finite()) {
            return Err(Error::Invalid(format!("reduce_lr: min_lr must be a finite value >= 0, got {}", self.min_lr)));
        }
        Ok(())
    }
}

fn check_min_delta(callback: &str, min_delta: f64) -> Result<()> {
    if min_delta >= 0.0 && min_delta.is_finite() {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{callback}: min_delta must be a finite value >= 0, got {min_delta}")))
    }
}

/// The best value of a monitored metric so far and the epochs since it, counted as both Keras
/// callbacks count them.
#[derive(Debug)]
struct PlateauTracker {
    monitor: Monitor,
    min_delta: f64,
    best: f64,
    epochs_without_improvement: usize,
}

impl PlateauTracker {
    /// A tracker at `state` (the default state: before any epoch).
    fn resume(monitor: Monitor, min_delta: f64, state: PlateauState) -> Self {
        let best = state.best.unwrap_or(monitor.worst());
        Self { monitor, min_delta, best, epochs_without_improvement: state.epochs_without_improvement }
    }

    fn state(&self) -> PlateauState {
        PlateauState {
            best: (self.best != self.monitor.worst()).then_some(self.best),
            epochs_without_improvement: self.epochs_without_improvement,
        }
    }

    /// Takes in a finished epoch; true when it improved on the best.
    fn observe(&mut self, record: &EpochRecord) -> bool {
        let current = self.monitor.value(record);
        let improved = self.monitor.is_improvement(current, self.best, self.min_delta);
        if improved {
            self.best = current;
            self.epochs_without_improvement = 0;
        } else {
            self.epochs_without_improvement += 1;
        }
        improved
    }
}

/// The running state of an [`EarlyStopping`] during one `fit`.
#[derive(Debug)]
pub(crate) struct EarlyStoppingState<'a> {
    config: &'a EarlyStopping,
    plateau: PlateauTracker,
    best_epoch: Option<usize>,
    best_weights: Option<Vec<NamedTensor>>,
    /// It ended the run.
    stopped: bool,
}

impl<'a> EarlyStoppingState<'a> {
    /// The state of `config` at `progress` (the default: before any epoch), holding the best
    /// epoch's weights when it keeps them.
    pub(crate) fn resume(
        config: &'a EarlyStopping,
        progress: EarlyStoppingProgress,
        best_weights: Option<Vec<NamedTensor>>,
    ) -> Self {
        Self {
            config,
            plateau: PlateauTracker::resume(config.monitor, config.min_delta, progress.plateau),
            best_epoch: progress.best_epoch,
            best_weights,
            stopped: progress.stopped,
        }
    }

    /// What [`Self::resume`] continues from.
    pub(crate) fn progress(&self) -> EarlyStoppingProgress {
        EarlyStoppingProgress { plateau: self.plateau.state(), best_epoch: self.best_epoch, stopped: self.stopped }
    }

    /// The best epoch's weights, when kept.
    pub(crate) fn best_weights(&self) -> Option<&[NamedTensor]> {
        self.best_weights.as_deref()
    }

    /// The best epoch, when this ended the run.
    pub(crate) fn stopped_at(&self) -> Option<usize> {
        self.best_epoch.filter(|_| self.stopped)
    }

    /// Takes in a finished epoch and the model's weights at its end; returns the best epoch when
    /// training should stop.
    pub(crate) fn after_epoch(&mut self, record: &EpochRecord, weights: &[NamedTensor]) -> Option<usize> {
        let improved = self.plateau.observe(record);
        // Like Keras, the first epoch is the best until one beats it, even when its value is NaN.
        if improved || self.best_epoch.is_none() {
            self.best_epoch = Some(record.epoch);
            if self.config.restore_best_weights {
                self.best_weights = Some(weights.to_vec());
            }
        }
        // Keras never stops after the first epoch.
        self.stopped = !improved && record.epoch > 1 && self.plateau.epochs_without_improvement >= self.config.patience;
        self.stopped_at()
    }

    /// The epoch with the best monitored value (None before the first epoch).
    pub(crate) fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The best epoch and its weights, when they are to be put back after `last_epoch`: only with
    /// `restore_best_weights` and when the last epoch was not the best.
    pub(crate) fn weights_to_restore(&self, last_epoch: usize) -> Option<(usize, &[NamedTensor])> {
        match (self.best_epoch, &self.best_weights) {
            (Some(best), Some(weights)) if best != last_epoch => Some((best, weights)),
            _ => None,
        }
    }
}

/// The running state of a [`ReduceLrOnPlateau`] during one `fit`.
#[derive(Debug)]
pub(crate) struct LrReducer<'a> {
    config: &'a ReduceLrOnPlateau,
    plateau: PlateauTracker,
}

impl<'a> LrReducer<'a> {
    /// The state of `config` at `plateau` (the default: before any epoch).
    pub(crate) fn resume(config: &'a ReduceLrOnPlateau, plateau: PlateauState) -> Self {
        Self { config, plateau: PlateauTracker::resume(config.monitor, config.min_delta, plateau) }
    }

    /// What [`Self::resume`] continues from.
    pub(crate) fn plateau(&self) -> PlateauState {
        self.plateau.state()
    }

    /// Takes in a finished epoch trained at `lr`; returns the rate for the next epoch when it changes.
    pub(crate) fn after_epoch(&mut self, record: &EpochRecord, lr: f64) -> Option<f64> {
        let improved = self.plateau.observe(record);
        // At min_lr there is nothing left to lower; Keras then keeps counting without resetting.
        if improved || self.plateau.epochs_without_improvement < self.config.patience || lr <= self.config.min_lr {
            return None;
        }
        self.plateau.epochs_without_improvement = 0;
        Some((lr * self.config.factor).max(self.config.min_lr))
    }
}

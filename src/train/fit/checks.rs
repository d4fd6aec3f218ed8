//! What the training loop checks before its first step: its inputs and settings, and a resumed
//! state against them.

use super::config::FitConfig;
use crate::model::history::{History, TrainerState};
use crate::train::BatchSource;
use crate::{Error, Result};

/// A resumed state that does not fit `config` (a checkpoint that is not this run's).
pub(super) fn check_resumed_state(
    history: &History,
    state: &TrainerState,
    config: &FitConfig,
    steps: usize,
) -> Result<()> {
    let mismatch = |what: &str| Err(Error::Invalid(format!("resuming: the trainer's state {what}")));
    if state.early_stopping.is_some() != config.early_stopping.is_some() {
        return mismatch("and the run's settings disagree on early stopping");
    }
    if state.reduce_lr.is_some() != config.reduce_lr.is_some() {
        return mismatch("and the run's settings disagree on learning-rate reduction");
    }
    if let Some(progress) = &state.epoch_in_progress {
        if progress.epoch != history.epochs.len() + 1 || progress.steps_done >= steps || progress.steps_done == 0 {
            return mismatch(&format!(
                "holds step {} of epoch {} after {} epochs, where an epoch has {steps} steps",
                progress.steps_done,
                progress.epoch,
                history.epochs.len()
            ));
        }
        if state.epoch_start_weights.is_none() {
            return mismatch("holds an epoch in progress without the weights it started from");
        }
    }
    if history.epochs.iter().enumerate().any(|(i, record)| record.epoch != i + 1) {
        return mismatch("has a history whose epochs are not numbered 1, 2, 3...");
    }
    if !(state.lr > 0.0 && state.lr.is_finite()) {
        return mismatch(&format!("has the learning rate {}", state.lr));
    }
    Ok(())
}

pub(super) fn check_inputs(
    batch: usize,
    train: &dyn BatchSource,
    validation: Option<&dyn BatchSource>,
    config: &FitConfig,
) -> Result<()> {
    if batch == 0 {
        return Err(Error::Invalid("fit: the model's batch size is 0".into()));
    }
    if train.is_empty() {
        return Err(Error::Invalid("fit: the training set is empty".into()));
    }
    if let Some(validation) = validation {
        if validation.is_empty() {
            return Err(Error::Invalid("fit: the validation set is empty; pass none to train without one".into()));
        }
        if validation.sample_len() != train.sample_len() {
            return Err(Error::shape(
                "fit: values per validation sample (as per training sample)",
                train.sample_len(),
                validation.sample_len(),
            ));
        }
    }
    if !(config.lr > 0.0 && config.lr.is_finite()) {
        return Err(Error::Invalid(format!("fit: the learning rate must be a finite value > 0, got {}", config.lr)));
    }
    if let Some(early_stopping) = &config.early_stopping {
        early_stopping.validate()?;
    }
    if let Some(reduce_lr) = &config.reduce_lr {
        reduce_lr.validate()?;
    }
    Ok(())
}

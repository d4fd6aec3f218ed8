//! The Keras-style training loop: epochs of shuffled full batches, validation over every sample,
//! early stopping, learning-rate reduction on plateaus, a guard against a diverging loss, progress
//! events ([`TrainEvent`], for the caller to show) and a per-epoch metrics CSV.

mod checks;
mod config;
mod csv;
mod events;
mod prefetch;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::Result;
use crate::model::history::{EpochProgress, EpochRecord, History, TrainerState};
use crate::model::{StepStats, Trainable};
use crate::train::BatchSource;
use crate::train::callbacks::{EarlyStoppingState, LrReducer};
use checks::{check_inputs, check_resumed_state};
use csv::{metrics_csv, write_csv};
use prefetch::prefetched;

pub use crate::train::callbacks::{EarlyStopping, Monitor, ReduceLrOnPlateau};
pub use config::{FitConfig, FitControl, FitOutcome, Snapshot};
pub use events::{BatchTiming, StopReason, TrainEvent};

/// Trains `model` on `train` for `config.epochs` epochs, as Keras's `fit`.
///
/// Every epoch takes the training samples in an order shuffled from the seed and the epoch
/// number, in batches of `model.batch_size()`, the last one short when the batch does not divide
/// the samples (as Keras does: every sample counts every epoch). The short batch is padded with
/// [`PADDING_LABEL`](crate::model::PADDING_LABEL) rows of zeros, which the models leave out of the loss, its gradient and the
/// batch-norm statistics, so the step is the one a batch of its real rows would take. Then
/// `validation`, when given, is evaluated over every sample, padded the same way.
///
/// Callbacks act after each epoch, as Keras's: [`ReduceLrOnPlateau`] sets the next epoch's rate,
/// [`EarlyStopping`] may end training and, with `restore_best_weights`, puts back the best
/// epoch's weights when training ends, early or not (as Keras 3). A NaN or infinite training loss
/// ends training at once with the weights of the last completed epoch (not the best epoch's).
///
/// Silent: [`fit_with`] tells an observer of the epochs, the callbacks' actions and why training
/// stopped. Errors: an empty training or validation set, sample sizes that differ, bad settings,
/// and whatever the model or the data sources return.
pub fn fit(
    model: &mut dyn Trainable,
    train: &dyn BatchSource,
    validation: Option<&dyn BatchSource>,
    config: &FitConfig,
) -> Result<FitOutcome> {
    fit_with(model, train, validation, config, &mut |_| {})
}

/// [`fit`], telling `observe` of every [`TrainEvent`] as it happens.
pub fn fit_with(
    model: &mut dyn Trainable,
    train: &dyn BatchSource,
    validation: Option<&dyn BatchSource>,
    config: &FitConfig,
    observe: &mut dyn FnMut(&TrainEvent),
) -> Result<FitOutcome> {
    let never = AtomicBool::new(false);
    let control = FitControl { resume: None, checkpoint: &mut |_| Ok(()), interrupt: &never };
    fit_from(model, train, validation, config, control, observe)
}

/// [`fit_with`], started from and reporting to `control`: a resumed run repeats the uninterrupted
/// one bit for bit (on the same backend), history included but for the seconds.
pub fn fit_from(
    model: &mut dyn Trainable,
    train: &dyn BatchSource,
    validation: Option<&dyn BatchSource>,
    config: &FitConfig,
    control: FitControl,
    observe: &mut dyn FnMut(&TrainEvent),
) -> Result<FitOutcome> {
    let batch = model.batch_size();
    check_inputs(batch, train, validation, config)?;
    let steps = train.len().div_ceil(batch);
    let mut timing = BatchTiming::default();
    let FitControl { resume, checkpoint, interrupt } = control;
    let fresh = resume.is_none();
    let (mut history, mut state) =
        resume.unwrap_or_else(|| (History::default(), TrainerState { lr: config.lr, ..TrainerState::default() }));
    if !fresh {
        check_resumed_state(&history, &state, config, steps)?;
    }
    let mut early_stopping = config
        .early_stopping
        .as_ref()
        .map(|es| EarlyStoppingState::resume(es, state.early_stopping.unwrap_or_default(), state.best_weights.take()));
    let mut lr_reducer =
        config.reduce_lr.as_ref().map(|reduce| LrReducer::resume(reduce, state.reduce_lr.unwrap_or_default()));
    let mut lr = state.lr;
    let mut stop = match early_stopping.as_ref().and_then(EarlyStoppingState::stopped_at) {
        Some(best_epoch) => StopReason::EarlyStopped { best_epoch },
        None => StopReason::Completed,
    };
    // The weights at the end of the last completed epoch: what a diverging step falls back to.
    let mut last_good_weights = match state.epoch_start_weights.take() {
        Some(weights) => weights,
        None => model.weights()?,
    };
    let mut in_progress = state.epoch_in_progress.take();
    // What the trainer's state is at this moment, for a checkpoint.
    let trainer_state = |lr: f64,
                         early_stopping: &Option<EarlyStoppingState>,
                         lr_reducer: &Option<LrReducer>,
                         epoch_in_progress: Option<EpochProgress>,
                         epoch_start_weights: Option<Vec<_>>| TrainerState {
        lr,
        early_stopping: early_stopping.as_ref().map(EarlyStoppingState::progress),
        reduce_lr: lr_reducer.as_ref().map(LrReducer::plateau),
        epoch_in_progress,
        best_weights: early_stopping.as_ref().and_then(|es| es.best_weights().map(<[_]>::to_vec)),
        epoch_start_weights,
    };
    if fresh && config.epochs > 0 {
        // A checkpoint before the first step, so that a run stopped at any moment can resume.
        let trainer = trainer_state(lr, &early_stopping, &lr_reducer, None, None);
        checkpoint(&Snapshot { history: &history, trainer: &trainer, model: &*model })?;
    }

    // A run that stopped early stays stopped, whatever `epochs` says now.
    let last_epoch = if matches!(stop, StopReason::EarlyStopped { .. }) { 0 } else { config.epochs };
    for epoch in history.epochs.len() + 1..=last_epoch {
        let started = Instant::now();
        let progress = in_progress.take().unwrap_or(EpochProgress { epoch, ..EpochProgress::default() });
        observe(&TrainEvent::EpochStarted { epoch, epochs: config.epochs, steps });
        let order = epoch_order(train.len(), config.seed, epoch, config.shuffle);
        let run = train_epoch(model, train, &order, progress, lr, steps, interrupt, observe, &mut timing)?;
        let seconds = progress.seconds + started.elapsed().as_secs_f64();
        let train_stats = match run {
            EpochRun::Finished(stats) => stats,
            EpochRun::NonFinite { step } => {
                model.set_weights(&last_good_weights)?;
                stop = StopReason::NonFinite { epoch, step };
                break;
            }
            EpochRun::Interrupted { steps_done, stats } => {
                let progress = EpochProgress {
                    epoch,
                    steps_done,
                    loss_sum: stats.loss_sum,
                    correct: stats.correct,
                    count: stats.count,
                    seconds,
                };
                let trainer = trainer_state(lr, &early_stopping, &lr_reducer, Some(progress), Some(last_good_weights));
                checkpoint(&Snapshot { history: &history, trainer: &trainer, model: &*model })?;
                stop = StopReason::Interrupted { epoch, step: steps_done };
                break;
            }
        };
        if validation.is_some() {
            observe(&TrainEvent::Validating);
        }
        let val_stats = validation.map(|source| evaluate_all(model, source, &mut timing)).transpose()?;
        let record = EpochRecord {
            epoch,
            loss: train_stats.mean_loss(),
            accuracy: train_stats.accuracy(),
            val_loss: val_stats.map(|s| s.mean_loss()),
            val_accuracy: val_stats.map(|s| s.accuracy()),
            lr,
            seconds: progress.seconds + started.elapsed().as_secs_f64(),
        };
        observe(&TrainEvent::EpochEnded { record: &record, epochs: config.epochs });
        history.epochs.push(record.clone());
        if let Some(path) = &config.metrics_csv {
            write_csv(path, &metrics_csv(&history))?;
        }
        last_good_weights = model.weights()?;

        if let Some(new_lr) = lr_reducer.as_mut().and_then(|reducer| reducer.after_epoch(&record, lr)) {
            observe(&TrainEvent::LrLowered { epoch, lr: new_lr });
            lr = new_lr;
        }
        let early_stop = early_stopping.as_mut().and_then(|es| es.after_epoch(&record, &last_good_weights));
        let trainer = trainer_state(lr, &early_stopping, &lr_reducer, None, None);
        checkpoint(&Snapshot { history: &history, trainer: &trainer, model: &*model })?;
        if let Some(best_epoch) = early_stop {
            stop = StopReason::EarlyStopped { best_epoch };
            break;
        }
        if epoch < config.epochs && interrupt.load(Ordering::Relaxed) {
            stop = StopReason::Interrupted { epoch, step: steps };
            break;
        }
    }

    observe(&TrainEvent::Stopped(stop));
    // An interrupted run is unfinished: its model goes on from its last weights when resumed.
    let restore = match (&stop, &early_stopping) {
        (StopReason::NonFinite { .. } | StopReason::Interrupted { .. }, _) | (_, None) => None,
        (_, Some(es)) => es.weights_to_restore(history.epochs.len()),
    };
    if let Some((best_epoch, weights)) = restore {
        observe(&TrainEvent::RestoringBest { epoch: best_epoch });
        model.set_weights(weights)?;
    }
    let best_epoch = early_stopping.as_ref().and_then(EarlyStoppingState::best_epoch);
    Ok(FitOutcome { history, stop, best_epoch, batches: timing })
}

/// The sample order of `epoch`: 0..len, shuffled by a generator keyed by both the seed and the
/// epoch, so a run repeats exactly and every epoch differs.
fn epoch_order(len: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&(epoch as u64).to_le_bytes());
        order.shuffle(&mut StdRng::from_seed(key));
    }
    order
}

enum EpochRun {
    Finished(StepStats),
    /// The 1-based step whose loss was not finite.
    NonFinite {
        step: usize,
    },
    /// Stopped by the interrupt flag before the epoch's last step.
    Interrupted {
        steps_done: usize,
        stats: StepStats,
    },
}

/// Runs the steps of an epoch after the `progress.steps_done` already taken (with their
/// statistics), stopping after a step at which `interrupt` is set, unless it was the last.
#[allow(clippy::too_many_arguments)]
fn train_epoch(
    model: &mut dyn Trainable,
    train: &dyn BatchSource,
    order: &[usize],
    progress: EpochProgress,
    lr: f64,
    steps_in_epoch: usize,
    interrupt: &AtomicBool,
    observe: &mut dyn FnMut(&TrainEvent),
    timing: &mut BatchTiming,
) -> Result<EpochRun> {
    let batch = model.batch_size();
    let mut total = StepStats { loss_sum: progress.loss_sum, correct: progress.correct, count: progress.count };
    let mut steps = progress.steps_done;
    let mut run = None;
    let chunks = order.chunks(batch).skip(steps);
    prefetched(train, chunks, batch, progress.epoch, timing, |buffer| {
        steps += 1;
        let stats = model.train_step(&buffer.images, &buffer.labels, lr as f32)?;
        if !stats.loss_sum.is_finite() {
            run = Some(EpochRun::NonFinite { step: steps });
            return Ok(ControlFlow::Break(()));
        }
        total.add(stats);
        observe(&TrainEvent::StepDone {
            step: steps,
            steps: steps_in_epoch,
            loss: total.mean_loss(),
            accuracy: total.accuracy(),
        });
        if steps < steps_in_epoch && interrupt.load(Ordering::Relaxed) {
            run = Some(EpochRun::Interrupted { steps_done: steps, stats: total });
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(run.unwrap_or(EpochRun::Finished(total)))
}

/// Loss and accuracy over every sample of `source`, in order.
fn evaluate_all(model: &mut dyn Trainable, source: &dyn BatchSource, timing: &mut BatchTiming) -> Result<StepStats> {
    let batch = model.batch_size();
    let indices: Vec<usize> = (0..source.len()).collect();
    let mut total = StepStats::default();
    prefetched(source, indices.chunks(batch), batch, 0, timing, |buffer| {
        total.add(model.evaluate(&buffer.images, &buffer.labels)?);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_permutation_that_repeats_per_seed_and_epoch() {
        let first = epoch_order(50, 7, 1, true);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(first, epoch_order(50, 7, 1, true));
        assert_ne!(first, epoch_order(50, 7, 2, true));
        assert_ne!(first, epoch_order(50, 8, 1, true));
        assert_eq!(epoch_order(5, 7, 3, false), vec![0, 1, 2, 3, 4]);
    }
}

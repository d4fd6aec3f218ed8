//! The Keras-style training loop: epochs of shuffled full batches, validation over every sample,
//! early stopping, learning-rate reduction on plateaus, a guard against a diverging loss, progress
//! events ([`TrainEvent`], for the caller to show) and a per-epoch metrics CSV.

use std::fmt::{self, Write as _};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::model::history::{EpochProgress, EpochRecord, History, TrainerState};
use crate::model::{PADDING_LABEL, StepStats, Trainable};
use crate::train::BatchSource;
pub use crate::train::callbacks::{EarlyStopping, Monitor, ReduceLrOnPlateau};
use crate::train::callbacks::{EarlyStoppingState, LrReducer};
use crate::{Error, Result};

/// What [`fit_with`] tells its observer as training goes; [`fit`] tells no one. The library
/// prints nothing: the `wgcnn` binary and the examples draw these as bars and lines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrainEvent<'a> {
    /// An epoch (1-based, of `epochs`) begins: `steps` training batches follow.
    EpochStarted { epoch: usize, epochs: usize, steps: usize },
    /// Training step `step` (1-based, of `steps`) of the epoch is done; `loss` and `accuracy` are
    /// the epoch's running means so far.
    StepDone { step: usize, steps: usize, loss: f64, accuracy: f64 },
    /// The epoch's training steps are done and the validation set is being evaluated.
    Validating,
    /// An epoch (of `epochs`) completed, validation included.
    EpochEnded { record: &'a EpochRecord, epochs: usize },
    /// [`ReduceLrOnPlateau`] lowered the learning rate after `epoch`.
    LrLowered { epoch: usize, lr: f64 },
    /// Training ended, and why (an epoch left unfinished by a NaN loss sends no `EpochEnded`).
    Stopped(StopReason),
    /// [`EarlyStopping`] puts back the weights of `epoch`, the best.
    RestoringBest { epoch: usize },
}

impl TrainEvent<'_> {
    /// The line a log shows for this event, as Keras's `verbose=2`; None for the events a
    /// progress bar shows (an epoch starting, a step, validation).
    pub fn line(&self) -> Option<String> {
        match *self {
            TrainEvent::EpochStarted { .. } | TrainEvent::StepDone { .. } | TrainEvent::Validating => None,
            TrainEvent::EpochEnded { record, epochs } => Some(epoch_line(record, epochs)),
            TrainEvent::LrLowered { epoch, lr } => {
                Some(format!("epoch {epoch}: lowering the learning rate to {}", lr as f32))
            }
            TrainEvent::Stopped(stop) => Some(stop.to_string()),
            TrainEvent::RestoringBest { epoch } => Some(format!("restoring the weights of epoch {epoch}, the best")),
        }
    }
}

/// What [`fit`] does.
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

/// Why training ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every epoch ran.
    Completed,
    /// The early-stopping monitor went `patience` epochs without improving.
    EarlyStopped { best_epoch: usize },
    /// A training step's loss was NaN or infinite (epoch and step 1-based); the model holds the
    /// weights of the epoch before (the initial ones if it was the first).
    NonFinite { epoch: usize, step: usize },
    /// [`FitControl::interrupt`] was set: training stopped after `step` of `epoch` (the epoch's
    /// last step when it stopped between epochs), and the checkpoint holds that moment.
    Interrupted { epoch: usize, step: usize },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StopReason::Completed => write!(f, "training ran all its epochs"),
            StopReason::EarlyStopped { best_epoch } => {
                write!(f, "training stopped early: no improvement since epoch {best_epoch}")
            }
            StopReason::NonFinite { epoch, step } => {
                write!(f, "training stopped: the loss became NaN or infinite at epoch {epoch}, step {step}; ")?;
                match epoch {
                    0 | 1 => write!(f, "the initial weights were kept"),
                    _ => write!(f, "the weights of epoch {} were kept", epoch - 1),
                }
            }
            StopReason::Interrupted { epoch, step } => {
                write!(f, "training interrupted after step {step} of epoch {epoch}")
            }
        }
    }
}

/// What [`fit`] returns.
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

/// Time spent on the host data of a run: each batch is prepared on a background thread while the
/// model works on the one before, so the model waits only when preparing is the slower.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchTiming {
    /// Batches fed to the model, training and evaluation.
    pub batches: usize,
    /// Seconds spent preparing them (filling, converting, augmenting), on the background thread.
    pub prepare_seconds: f64,
    /// Seconds the trainer waited for the first batch of each pass (an epoch's training, a
    /// validation), which nothing runs beside.
    pub first_batch_seconds: f64,
    /// Seconds the trainer waited for every later batch: 0 when preparing keeps ahead of the model.
    pub wait_seconds: f64,
}

impl fmt::Display for BatchTiming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} batches prepared in {:.3} s on the background thread; the model waited {:.3} s for first batches, {:.3} s for the others",
            self.batches, self.prepare_seconds, self.first_batch_seconds, self.wait_seconds
        )
    }
}

/// Trains `model` on `train` for `config.epochs` epochs, as Keras's `fit`.
///
/// Every epoch takes the training samples in an order shuffled from the seed and the epoch
/// number, in batches of `model.batch_size()`, the last one short when the batch does not divide
/// the samples (as Keras does: every sample counts every epoch). The short batch is padded with
/// [`PADDING_LABEL`] rows of zeros, which the models leave out of the loss, its gradient and the
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

/// Where [`fit_from`] starts, where it reports its state, and what stops it early.
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

/// A resumed state that does not fit `config` (a checkpoint that is not this run's).
fn check_resumed_state(history: &History, state: &TrainerState, config: &FitConfig, steps: usize) -> Result<()> {
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

fn check_inputs(
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

/// One batch of host images and labels.
struct BatchBuffer {
    images: Vec<f32>,
    labels: Vec<u32>,
}

impl BatchBuffer {
    fn new(batch: usize, sample_len: usize) -> Self {
        Self { images: vec![0.0; batch * sample_len], labels: vec![PADDING_LABEL; batch] }
    }

    /// Loads the samples at `indices`; the rows after them become padding (zeros, [`PADDING_LABEL`]).
    fn load(&mut self, source: &dyn BatchSource, indices: &[usize], epoch: usize) -> Result<()> {
        source.fill(indices, epoch, &mut self.images, &mut self.labels)?;
        self.images[indices.len() * source.sample_len()..].fill(0.0);
        self.labels[indices.len()..].fill(PADDING_LABEL);
        Ok(())
    }
}

/// Hands `consume` the batches of `chunks` in order. A background thread prepares each batch
/// while `consume` works on the one before (two buffers in turn), so the data is the same as
/// when prepared in line and training stays bit-for-bit reproducible. Stops at the first error
/// or when `consume` breaks; the time spent is added to `timing`.
fn prefetched<'a>(
    source: &dyn BatchSource,
    chunks: impl Iterator<Item = &'a [usize]> + Send,
    batch: usize,
    epoch: usize,
    timing: &mut BatchTiming,
    mut consume: impl FnMut(&BatchBuffer) -> Result<ControlFlow<()>>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = mpsc::sync_channel::<(Result<BatchBuffer>, f64)>(1);
        let (free_tx, free_rx) = mpsc::channel::<BatchBuffer>();
        for _ in 0..2 {
            free_tx.send(BatchBuffer::new(batch, source.sample_len())).expect("the receiver is alive");
        }
        // The wait for a batch counts from when the trainer is ready for it: for the first, from
        // before the preparing thread starts, so the wait is never shorter than its preparation.
        let mut waiting = Instant::now();
        scope.spawn(move || {
            for indices in chunks {
                // Both ends close when the consumer returns, which ends this thread.
                let Ok(mut buffer) = free_rx.recv() else { return };
                let started = Instant::now();
                let loaded = buffer.load(source, indices, epoch).map(|()| buffer);
                if ready_tx.send((loaded, started.elapsed().as_secs_f64())).is_err() {
                    return;
                }
            }
        });
        let mut first = true;
        loop {
            let Ok((loaded, prepare_seconds)) = ready_rx.recv() else { return Ok(()) };
            let waited = waiting.elapsed().as_secs_f64();
            match std::mem::replace(&mut first, false) {
                true => timing.first_batch_seconds += waited,
                false => timing.wait_seconds += waited,
            }
            timing.prepare_seconds += prepare_seconds;
            timing.batches += 1;
            let buffer = loaded?;
            if consume(&buffer)?.is_break() {
                return Ok(());
            }
            // Fails only once the producer has finished, when the buffer is no longer needed.
            let _ = free_tx.send(buffer);
            waiting = Instant::now();
        }
    })
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

/// `epoch 3/20 - loss 0.4123 - accuracy 0.8125 - val_loss 0.5012 - val_accuracy 0.7500 - lr 0.001 - 12.3s`
fn epoch_line(record: &EpochRecord, epochs: usize) -> String {
    let mut line =
        format!("epoch {}/{epochs} - loss {:.4} - accuracy {:.4}", record.epoch, record.loss, record.accuracy);
    if let (Some(loss), Some(accuracy)) = (record.val_loss, record.val_accuracy) {
        let _ = write!(line, " - val_loss {loss:.4} - val_accuracy {accuracy:.4}");
    }
    // The rate as the model received it, which also prints without f64 noise (0.0002, not 0.00020000000000000001).
    let _ = write!(line, " - lr {} - {:.1}s", record.lr as f32, record.seconds);
    line
}

const METRICS_CSV_HEADER: &str = "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds";

/// The history as CSV: the header, then one row per epoch with values that parse back exactly;
/// the validation cells are empty for epochs without validation.
fn metrics_csv(history: &History) -> String {
    let optional = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    let mut csv = format!("{METRICS_CSV_HEADER}\n");
    for r in &history.epochs {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            r.epoch,
            r.loss,
            r.accuracy,
            optional(r.val_loss),
            optional(r.val_accuracy),
            r.lr,
            r.seconds
        );
    }
    csv
}

/// Writes the CSV through a temporary file renamed into place, as every file the user keeps.
fn write_csv(path: &Path, contents: &str) -> Result<()> {
    crate::model::file::write_atomically(path, contents.as_bytes())
        .map_err(|e| Error::Invalid(format!("writing the metrics CSV {}: {e}", path.display())))
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

    #[test]
    fn epoch_line_reads_like_keras_verbose_2() {
        let record = EpochRecord {
            epoch: 3,
            loss: 0.41234,
            accuracy: 0.8125,
            val_loss: Some(0.5),
            val_accuracy: Some(0.75),
            lr: 1e-3,
            seconds: 12.34,
        };
        assert_eq!(
            epoch_line(&record, 20),
            "epoch 3/20 - loss 0.4123 - accuracy 0.8125 - val_loss 0.5000 - val_accuracy 0.7500 - lr 0.001 - 12.3s"
        );
        let without_validation = EpochRecord { val_loss: None, val_accuracy: None, ..record };
        assert_eq!(
            epoch_line(&without_validation, 20),
            "epoch 3/20 - loss 0.4123 - accuracy 0.8125 - lr 0.001 - 12.3s"
        );
    }
}

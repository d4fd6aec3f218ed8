//! What the training loop tells as it goes ([`TrainEvent`]), why it stopped ([`StopReason`]) and
//! how long its batches took ([`BatchTiming`]), each with the line a log shows for it.

use std::fmt::{self, Write as _};

use crate::model::history::EpochRecord;

/// What [`fit_with`](super::fit_with) tells its observer as training goes; [`fit`](super::fit)
/// tells no one. The library prints nothing: the `wgcnn` binary and the examples draw these as
/// bars and lines.
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
    /// [`ReduceLrOnPlateau`](crate::train::callbacks::ReduceLrOnPlateau) lowered the learning rate after `epoch`.
    LrLowered { epoch: usize, lr: f64 },
    /// Training ended, and why (an epoch left unfinished by a NaN loss sends no `EpochEnded`).
    Stopped(StopReason),
    /// [`EarlyStopping`](crate::train::callbacks::EarlyStopping) puts back the weights of `epoch`, the best.
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
    /// [`FitControl::interrupt`](super::FitControl::interrupt) was set: training stopped after `step` of `epoch` (the epoch's
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

#[cfg(test)]
mod tests {
    use super::*;
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

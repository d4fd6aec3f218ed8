//! Training progress on stdout: [`TrainEvent`]s drawn as a bar per epoch when stdout is a
//! terminal, as plain lines otherwise (a log file, a pipe). The library only reports events; this
//! is the one place that draws them, shared by the `wgcnn` binary and the examples (which include
//! this file by path), so that both show the same thing.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wgcnn::train::fit::TrainEvent;
use wgcnn::workflow::train::RunEvent;

/// Shows a training run's events: a bar per epoch (steps done, running loss and accuracy, time
/// left), then the epoch's line; without a terminal, the lines only (as Keras's `verbose=2`).
pub struct TrainProgress {
    bars: bool,
    bar: Option<ProgressBar>,
}

impl TrainProgress {
    /// Bars when stdout is a terminal, lines otherwise.
    pub fn new() -> Self {
        Self { bars: std::io::stdout().is_terminal(), bar: None }
    }

    /// Prints a training run's `event` as `wgcnn train` does: its text, and its training
    /// progress as [`TrainProgress::show`] draws it.
    pub fn show_run(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Fit(event) => self.show(event),
            other => print!("{other}"),
        }
    }

    /// Draws `event`.
    pub fn show(&mut self, event: &TrainEvent) {
        match *event {
            TrainEvent::EpochStarted { epoch, epochs, steps } if self.bars => {
                self.bar = Some(epoch_bar(epoch, epochs, steps));
            }
            TrainEvent::StepDone { step, loss, accuracy, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("- loss {loss:.4} - accuracy {accuracy:.4}"));
                    bar.set_position(step as u64);
                }
            }
            TrainEvent::Validating => {
                if let Some(bar) = &self.bar {
                    bar.set_message("- validating");
                }
            }
            TrainEvent::EpochEnded { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            // An epoch cut short by a NaN loss: its bar stays where it stopped.
            TrainEvent::Stopped(_) => {
                if let Some(bar) = self.bar.take() {
                    bar.abandon();
                }
            }
            _ => {}
        }
        if let Some(line) = event.line() {
            println!("{line}");
        }
    }
}

fn epoch_bar(epoch: usize, epochs: usize, steps: usize) -> ProgressBar {
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} - ETA {eta}")
        .expect("the progress template is valid")
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout())
        .with_style(style)
        .with_prefix(format!("{epoch}/{epochs}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_template_parses() {
        let bar = epoch_bar(2, 5, 7);
        assert_eq!((bar.length(), bar.prefix()), (Some(7), "2/5".to_string()));
    }
}

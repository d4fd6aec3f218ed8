//! What a training run tells its observer as it goes ([`RunEvent`]), and the text each reads as.

use std::fmt;
use std::path::Path;

use crate::data::folder::LoadReport;
use crate::train::fit::{BatchTiming, TrainEvent};
use crate::workflow::evaluate::Evaluation;

/// What [`train`](super::train) tells its observer as it goes, in this order. Each event displays
/// as the text `wgcnn train` prints for it, newlines included (a [`TrainEvent`] as its line, if it
/// has one: a progress bar is the caller's to draw).
#[derive(Clone, Copy, Debug)]
pub enum RunEvent<'a> {
    /// A folder was loaded: the training data, then the test folder if there is one.
    Loaded { report: &'a LoadReport, images: usize, bytes: usize, seconds: f64, test_folder: bool },
    /// Images per class in the train, validation and test splits.
    ClassCounts { class_names: &'a [String], counts: &'a [Vec<usize>; 3] },
    /// The model's layer summary and the adapter it trains on.
    Model { summary: &'a str, adapter: &'a str },
    /// From [`crate::train::fit::fit_with`].
    Fit(&'a TrainEvent<'a>),
    /// Training ended: the time its batches took.
    Batches(&'a BatchTiming),
    /// The trained model evaluated on `images` images: of the test split, or of the test folder.
    Evaluated { test_folder: Option<&'a Path>, images: usize, evaluation: &'a Evaluation },
    /// The run folder is written: the model's path.
    Saved(&'a Path),
}

impl fmt::Display for RunEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RunEvent::Loaded { report, images, bytes, seconds, test_folder } => {
                if test_folder {
                    writeln!(f)?;
                }
                write!(f, "{report}")?;
                writeln!(f, "loaded {images} images in {seconds:.1} s ({} KiB as u8)", bytes / 1024)
            }
            RunEvent::ClassCounts { class_names, counts } => {
                writeln!(f, "\nclass counts per split:")?;
                writeln!(f, "  {:<12} {:>8} {:>10} {:>8}", "class", "train", "validation", "test")?;
                for (c, name) in class_names.iter().enumerate() {
                    writeln!(f, "  {name:<12} {:>8} {:>10} {:>8}", counts[0][c], counts[1][c], counts[2][c])?;
                }
                Ok(())
            }
            RunEvent::Model { summary, adapter } => writeln!(f, "\n{summary}\nadapter: {adapter}"),
            RunEvent::Fit(event) => match event.line() {
                Some(line) => writeln!(f, "{line}"),
                None => Ok(()),
            },
            RunEvent::Batches(timing) => writeln!(f, "batches: {timing}"),
            RunEvent::Evaluated { test_folder, images, evaluation } => {
                let what = test_folder.map_or("test split".into(), |dir| dir.display().to_string());
                writeln!(f, "\n{what} ({images} images):\n{}", evaluation.text())
            }
            RunEvent::Saved(path) => writeln!(f, "saved {}", path.display()),
        }
    }
}

//! Reporting what a model does: classification metrics and the confusion matrix (more to come:
//! predictions read from model outputs, PNG plots).

pub mod metrics;

pub use metrics::{ClassScores, ClassificationReport, ConfusionMatrix, Scores};

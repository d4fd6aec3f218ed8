//! Reporting what a model does: classification metrics and the confusion matrix, and per-image
//! predictions read from model outputs (PNG plots to come).

pub mod metrics;
pub mod prediction;

pub use metrics::{ClassScores, ClassificationReport, ConfusionMatrix, Scores};
pub use prediction::Prediction;

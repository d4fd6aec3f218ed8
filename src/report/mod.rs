//! Reporting what a model does: classification metrics and the confusion matrix, per-image
//! predictions read from model outputs, and the PNG plots of training and evaluation.

pub mod metrics;
pub mod plots;
pub mod prediction;

pub use metrics::{ClassScores, ClassificationReport, ConfusionMatrix, Scores};
pub use plots::GridItem;
pub use prediction::Prediction;

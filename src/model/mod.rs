//! Models: architectures as data, their parameters, and what the trainer needs from a model
//! running on a backend (the GPU kernels, the native CPU backend or the CPU reference).

pub mod backend;
pub mod explain;
pub mod file;
pub mod history;
pub(crate) mod host;
pub mod normalisation;
pub(crate) mod op;
pub(crate) mod plan;
pub mod spec;
pub mod test_time;
pub(crate) mod walk;
pub mod weights;

use crate::shape::AdamConfig;
use crate::{Error, Result};
pub use weights::{NamedTensor, OptimizerState};

/// Loss and accuracy counts of one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Sum over the batch's samples of the (class-weighted) loss.
    pub loss_sum: f64,
    /// Samples predicted right.
    pub correct: u64,
    /// Samples counted (padding rows excluded).
    pub count: u64,
}

impl StepStats {
    pub fn mean_loss(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.loss_sum / self.count as f64 }
    }
    pub fn accuracy(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.correct as f64 / self.count as f64 }
    }
    pub fn add(&mut self, other: StepStats) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.count += other.count;
    }
}

/// Where the time of one training step goes: seconds per layer and pass ("conv1 forward",
/// "loss", "adam"), in the order the step first runs each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepProfile {
    pub parts: Vec<(String, f64)>,
}

impl StepProfile {
    /// Adds `seconds` to the part `label`, appending it if new.
    pub fn add(&mut self, label: &str, seconds: f64) {
        match self.parts.iter_mut().find(|(l, _)| l == label) {
            Some((_, total)) => *total += seconds,
            None => self.parts.push((label.to_string(), seconds)),
        }
    }

    /// The sum of the parts.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|(_, s)| s).sum()
    }
}

/// Label of a padding row: the loss kernels ignore rows whose label is out of range, so a final
/// short batch can be padded to the model's fixed batch size without changing the result.
pub const PADDING_LABEL: u32 = u32::MAX;

/// The rows of a batch before its padding: padding only ever fills the end of a batch, and a
/// training step needs at least one real row.
pub(crate) fn real_rows(labels: &[u32]) -> Result<usize> {
    let rows = labels.iter().position(|&l| l == PADDING_LABEL).unwrap_or(labels.len());
    if rows == 0 || labels[rows..].iter().any(|&l| l != PADDING_LABEL) {
        return Err(Error::Invalid(format!(
            "a batch must hold its images first and padding only after them, and at least one image; \
             got labels {labels:?}"
        )));
    }
    Ok(rows)
}

/// What the trainer needs from a model on some backend. Images are NCHW f32 in [0, 1], `batch`
/// of them; labels are class indices. Implemented by the GPU model and by both CPU models
/// (native and reference).
pub trait Trainable {
    /// The fixed number of images per call (a short batch is padded with [`PADDING_LABEL`]).
    fn batch_size(&self) -> usize;
    /// One optimisation step (forward, loss, backward, Adam at `lr`) on a batch: its real rows
    /// first, then (a short last batch) padding rows labelled [`PADDING_LABEL`], which count for
    /// nothing: the step is the one a batch of the real rows alone would take.
    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats>;
    /// One training step as [`Trainable::train_step`], timed per layer and pass. Each part runs on
    /// its own (the GPU submits and waits for each dispatch), so the total exceeds a real step's
    /// time; the shares show where a step's time goes.
    fn profile_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepProfile>;
    /// Loss and accuracy in inference mode (no dropout, batch norm on running statistics),
    /// without updating anything. Padding rows are not counted.
    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats>;
    /// Class probabilities, [batch, classes] (one sigmoid column for a binary model).
    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>>;
    /// Every weight and running statistic, copied to the host.
    fn weights(&self) -> Result<Vec<NamedTensor>>;
    /// Replaces every weight and running statistic (names and shapes must match).
    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()>;
    /// Adam's state: the steps taken, the last step's rate and both moments of every trainable
    /// parameter, copied to the host. With the weights, all a model needs to go on training as
    /// if it had never stopped (the step also keys the dropout masks).
    fn optimizer_state(&self) -> Result<OptimizerState>;
    /// Replaces Adam's state (names and shapes must match the trainable parameters).
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// How a model trains, besides the learning rate (which the trainer sets every step).
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    pub adam: AdamConfig,
    /// Keras's `class_weight`: one factor per class multiplying its samples' loss; None = all 1.
    pub class_weights: Option<Vec<f32>>,
    /// Seeds dropout masks.
    pub seed: u64,
}

impl TrainOptions {
    /// One loss weight per class of `architecture` (all 1 unless set), checked against its classes.
    pub fn class_weights_for(&self, architecture: &spec::Architecture) -> Result<Vec<f32>> {
        let classes = architecture.classes();
        let weights = self.class_weights.clone().unwrap_or_else(|| vec![1.0; classes]);
        if weights.len() != classes {
            return Err(Error::shape("class weights", [classes], [weights.len()]));
        }
        Ok(weights)
    }
}

/// Checks a batch size before a model is built for it.
pub(crate) fn check_batch_size(batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    Ok(())
}

/// Each dropout layer draws its own masks: the run's seed mixed with the layer's position.
pub(crate) fn layer_seed(seed: u64, layer: usize) -> u64 {
    seed ^ (layer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

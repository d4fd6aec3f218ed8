//! Models: architectures as data, their parameters, and what the trainer needs from a model
//! running on a backend (the GPU kernels or the CPU reference).

pub mod file;
pub mod spec;

use crate::Result;

/// A named host tensor: how weights travel between a backend, the trainer and a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// e.g. `conv1.weight`, `dense2.bias`, `bn1.running_mean`.
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

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

/// Label of a padding row: the loss kernels ignore rows whose label is out of range, so a final
/// short batch can be padded to the model's fixed batch size without changing the result.
pub const PADDING_LABEL: u32 = u32::MAX;

/// What the trainer needs from a model on some backend. Images are NCHW f32 in [0, 1], `batch`
/// of them; labels are class indices. Implemented by the GPU model and the CPU model.
pub trait Trainable {
    /// The fixed number of images per call (a short batch is padded with [`PADDING_LABEL`]).
    fn batch_size(&self) -> usize;
    /// One optimisation step (forward, loss, backward, Adam at `lr`) on a full batch.
    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats>;
    /// Loss and accuracy in inference mode (no dropout, batch norm on running statistics),
    /// without updating anything. Padding rows are not counted.
    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats>;
    /// Class probabilities, [batch, classes] (one sigmoid column for a binary model).
    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>>;
    /// Every weight and running statistic, copied to the host.
    fn weights(&self) -> Result<Vec<NamedTensor>>;
    /// Replaces every weight and running statistic (names and shapes must match).
    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()>;
}

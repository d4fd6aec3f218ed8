//! Models: architectures as data, their parameters, and what the trainer needs from a model
//! running on a backend (the GPU kernels or the CPU reference).

pub mod backend;
pub mod cpu;
pub mod explain;
pub mod file;
pub mod gpu;
pub mod history;
pub mod spec;

use crate::shape::{AdamConfig, BatchNormShape, Conv2dShape, DenseShape, Pool2dShape};
use crate::{Error, Result};
use spec::{LayerInfo, LayerSpec, ParamInfo};

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
/// of them; labels are class indices. Implemented by the GPU model and the CPU model.
pub trait Trainable {
    /// The fixed number of images per call (a short batch is padded with [`PADDING_LABEL`]).
    fn batch_size(&self) -> usize;
    /// One optimisation step (forward, loss, backward, Adam at `lr`) on a batch: its real rows
    /// first, then (a short last batch) padding rows labelled [`PADDING_LABEL`], which count for
    /// nothing: the step is the one a batch of the real rows alone would take.
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

/// The tensor of `weights` named like `info`, checked against its shape.
pub(crate) fn find_weight<'a>(weights: &'a [NamedTensor], info: &ParamInfo) -> Result<&'a NamedTensor> {
    let w = weights
        .iter()
        .find(|w| w.name == info.name)
        .ok_or_else(|| Error::Invalid(format!("weights: no tensor named {}", info.name)))?;
    if w.shape != info.shape {
        return Err(Error::shape(format!("weight {}", info.name), &info.shape, &w.shape));
    }
    Ok(w)
}

/// Each dropout layer draws its own masks: the run's seed mixed with the layer's position.
pub(crate) fn layer_seed(seed: u64, layer: usize) -> u64 {
    seed ^ (layer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The operation shapes of a layer at a batch size, shared by both backends.
impl LayerInfo {
    /// A convolution's shape and whether its ReLU is fused.
    pub fn conv2d_shape(&self, batch: usize) -> Result<(Conv2dShape, bool)> {
        match (&self.spec, &self.input[..]) {
            (&LayerSpec::Conv2d { filters, kernel, stride, padding, relu }, &[c, h, w]) => Ok((
                Conv2dShape {
                    batch,
                    in_channels: c,
                    in_h: h,
                    in_w: w,
                    out_channels: filters,
                    kernel_h: kernel,
                    kernel_w: kernel,
                    stride,
                    padding,
                },
                relu,
            )),
            _ => Err(Error::Invalid(format!("{} is not a convolution over [c, h, w]", self.name))),
        }
    }

    pub fn pool2d_shape(&self, batch: usize) -> Result<Pool2dShape> {
        match (&self.spec, &self.input[..]) {
            (&LayerSpec::MaxPool2d { pool, stride }, &[channels, in_h, in_w]) => {
                Ok(Pool2dShape { batch, channels, in_h, in_w, pool, stride })
            }
            _ => Err(Error::Invalid(format!("{} is not a max-pool over [c, h, w]", self.name))),
        }
    }

    pub fn dense_shape(&self, batch: usize) -> DenseShape {
        DenseShape { batch, inputs: self.input.iter().product(), outputs: self.output.iter().product() }
    }

    /// Batch norm over the first per-sample dimension (channels, or features after a dense layer).
    pub fn batch_norm_shape(&self, batch: usize) -> BatchNormShape {
        BatchNormShape { batch, channels: self.input[0], spatial: self.input[1..].iter().product() }
    }
}

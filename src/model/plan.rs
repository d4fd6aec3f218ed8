//! A model plan: an [`Architecture`] validated once and resolved into the operations every backend
//! runs, at one batch size. Each layer carries its op with its shapes, the indices of its
//! parameters in the plan's parameter list and its dropout seed, and whether its ReLU is fused
//! into the next layer's backward pass. [`super::walk`] runs a plan on any executor; this is the only place
//! where layer kinds become operations.

use super::explain::grad_cam_layer;
use super::layer_seed;
use super::spec::{Architecture, InputShape, LayerInfo, LayerSpec, ParamInfo};
use super::weights::NamedTensor;
use crate::shape::{BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Pool2dShape};
use crate::{Error, Result};

/// Training (batch statistics, dropout, parameter gradients) or inference (running statistics,
/// dropout the identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
}

/// A layer's operation at the plan's batch size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// Convolution with bias, its ReLU fused into the same kernel when `relu`.
    Conv2d {
        shape: Conv2dShape,
        relu: bool,
        weight: usize,
        bias: usize,
    },
    MaxPool2d {
        shape: Pool2dShape,
    },
    BatchNorm {
        shape: BatchNormShape,
        params: BatchNormParams,
    },
    Relu,
    /// Reshapes to [batch, features]; no data moves.
    Flatten,
    /// Fully connected with bias, its ReLU fused when `relu`.
    Dense {
        shape: DenseShape,
        relu: bool,
        weight: usize,
        bias: usize,
    },
    /// Training masks come from (`seed`, the step); `config.step` is set by the executor.
    Dropout {
        config: DropoutConfig,
    },
}

/// The indices in [`Plan::params`] of a batch-norm layer's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormParams {
    pub gamma: usize,
    pub beta: usize,
    pub running_mean: usize,
    pub running_var: usize,
}

/// One layer of a plan.
#[derive(Clone, Debug)]
pub struct PlanLayer {
    pub info: LayerInfo,
    pub op: Op,
    /// A convolution whose ReLU's backward pass the next layer (a max-pool) applies: one pass over
    /// the pool's input instead of two.
    pub relu_fused_into_pool: bool,
}

impl PlanLayer {
    /// Dims with the batch first: [batch, ...per-sample input].
    pub fn input_dims(&self, batch: usize) -> Vec<usize> {
        std::iter::once(batch).chain(self.info.input.iter().copied()).collect()
    }

    /// [batch, ...per-sample output].
    pub fn output_dims(&self, batch: usize) -> Vec<usize> {
        std::iter::once(batch).chain(self.info.output.iter().copied()).collect()
    }
}

/// A validated sequential model at one batch size.
#[derive(Clone, Debug)]
pub struct Plan {
    pub batch: usize,
    pub input: InputShape,
    /// Logits per image (1 for a sigmoid model).
    pub outputs: usize,
    pub layers: Vec<PlanLayer>,
    /// Every parameter and running statistic, in layer order.
    pub params: Vec<ParamInfo>,
    /// The Grad-CAM layer: the last convolution, if any.
    pub grad_cam: Option<usize>,
}

impl Plan {
    /// The plan of `architecture` for `batch` images; `seed` seeds the dropout masks, each layer
    /// its own.
    pub fn new(architecture: &Architecture, batch: usize, seed: u64) -> Result<Plan> {
        super::check_batch_size(batch)?;
        let infos = architecture.layers_info()?;
        let mut layers = Vec::with_capacity(infos.len());
        let mut params = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            // Parameters in the order `LayerInfo::params` lists them: weight, bias; or gamma, beta,
            // running mean, running variance.
            let p = params.len();
            let op = match info.spec {
                LayerSpec::Conv2d { .. } => {
                    let (shape, relu) = info.conv2d_shape(batch)?;
                    Op::Conv2d { shape, relu, weight: p, bias: p + 1 }
                }
                LayerSpec::MaxPool2d { .. } => Op::MaxPool2d { shape: info.pool2d_shape(batch)? },
                LayerSpec::BatchNorm => Op::BatchNorm {
                    shape: info.batch_norm_shape(batch),
                    params: BatchNormParams { gamma: p, beta: p + 1, running_mean: p + 2, running_var: p + 3 },
                },
                LayerSpec::Relu => Op::Relu,
                LayerSpec::Flatten => Op::Flatten,
                LayerSpec::Dense { relu, .. } => {
                    Op::Dense { shape: info.dense_shape(batch), relu, weight: p, bias: p + 1 }
                }
                LayerSpec::Dropout { rate } => {
                    Op::Dropout { config: DropoutConfig { rate, seed: layer_seed(seed, i), step: 0 } }
                }
            };
            let next_is_pool = matches!(infos.get(i + 1).map(|l| &l.spec), Some(LayerSpec::MaxPool2d { .. }));
            let relu_fused_into_pool = matches!(op, Op::Conv2d { relu: true, .. }) && next_is_pool;
            params.extend(info.params.iter().cloned());
            layers.push(PlanLayer { info: info.clone(), op, relu_fused_into_pool });
        }
        let grad_cam = grad_cam_layer(&infos);
        Ok(Plan { batch, input: architecture.input, outputs: architecture.outputs(), layers, params, grad_cam })
    }

    /// Values per image.
    pub fn sample_len(&self) -> usize {
        self.input.elements()
    }

    /// The parameters Adam updates (not batch norm's running statistics).
    pub fn trainable(&self) -> impl Iterator<Item = usize> + '_ {
        self.params.iter().enumerate().filter(|(_, p)| p.trainable).map(|(i, _)| i)
    }
}

/// The operation shapes of a layer at a batch size.
impl LayerInfo {
    /// A convolution's shape and whether its ReLU is fused.
    fn conv2d_shape(&self, batch: usize) -> Result<(Conv2dShape, bool)> {
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

    fn pool2d_shape(&self, batch: usize) -> Result<Pool2dShape> {
        match (&self.spec, &self.input[..]) {
            (&LayerSpec::MaxPool2d { pool, stride }, &[channels, in_h, in_w]) => {
                Ok(Pool2dShape { batch, channels, in_h, in_w, pool, stride })
            }
            _ => Err(Error::Invalid(format!("{} is not a max-pool over [c, h, w]", self.name))),
        }
    }

    fn dense_shape(&self, batch: usize) -> DenseShape {
        DenseShape { batch, inputs: self.input.iter().product(), outputs: self.output.iter().product() }
    }

    /// Batch norm over the first per-sample dimension (channels, or features after a dense layer).
    fn batch_norm_shape(&self, batch: usize) -> BatchNormShape {
        BatchNormShape { batch, channels: self.input[0], spatial: self.input[1..].iter().product() }
    }
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

/// `data` under the name and shape of `info`.
pub(crate) fn named(info: &ParamInfo, data: Vec<f32>) -> NamedTensor {
    NamedTensor { name: info.name.clone(), shape: info.shape.clone(), data }
}

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
        let mut params = Vec::new();
        let mut ops = Vec::with_capacity(infos.len());
        for (i, info) in infos.iter().enumerate() {
            ops.push(info.op(batch, params.len(), layer_seed(seed, i))?);
            params.extend(info.params.iter().cloned());
        }
        // The walk fuses a convolution's ReLU into the max-pool op after it, whatever their layers.
        let fused = |i: usize| {
            matches!(ops[i], Op::Conv2d { relu: true, .. }) && matches!(ops.get(i + 1), Some(Op::MaxPool2d { .. }))
        };
        let grad_cam = grad_cam_layer(&infos);
        let layers = infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| PlanLayer { info, op: ops[i], relu_fused_into_pool: fused(i) })
            .collect();
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

/// A layer's operation at a batch size: the one place where layer kinds become ops.
impl LayerInfo {
    /// The op of this layer for `batch` images, its parameters from index `first_param` of the
    /// plan's list in the order [`LayerInfo::params`] gives them, its dropout mask from `seed`.
    fn op(&self, batch: usize, first_param: usize, seed: u64) -> Result<Op> {
        let p = first_param;
        Ok(match self.spec {
            LayerSpec::Conv2d { filters, kernel, stride, padding, relu } => {
                let (in_channels, in_h, in_w) = self.spatial_input()?;
                let shape = Conv2dShape {
                    batch,
                    in_channels,
                    in_h,
                    in_w,
                    out_channels: filters,
                    kernel_h: kernel,
                    kernel_w: kernel,
                    stride,
                    padding,
                };
                Op::Conv2d { shape, relu, weight: p, bias: p + 1 }
            }
            LayerSpec::MaxPool2d { pool, stride } => {
                let (channels, in_h, in_w) = self.spatial_input()?;
                Op::MaxPool2d { shape: Pool2dShape { batch, channels, in_h, in_w, pool, stride } }
            }
            // Over the first per-sample dimension: channels, or features after a dense layer.
            LayerSpec::BatchNorm => Op::BatchNorm {
                shape: BatchNormShape { batch, channels: self.input[0], spatial: self.input[1..].iter().product() },
                params: BatchNormParams { gamma: p, beta: p + 1, running_mean: p + 2, running_var: p + 3 },
            },
            LayerSpec::Relu => Op::Relu,
            LayerSpec::Flatten => Op::Flatten,
            LayerSpec::Dense { relu, .. } => {
                let shape =
                    DenseShape { batch, inputs: self.input.iter().product(), outputs: self.output.iter().product() };
                Op::Dense { shape, relu, weight: p, bias: p + 1 }
            }
            LayerSpec::Dropout { rate } => Op::Dropout { config: DropoutConfig { rate, seed, step: 0 } },
        })
    }

    /// The per-sample input as channels, height, width.
    fn spatial_input(&self) -> Result<(usize, usize, usize)> {
        match self.input[..] {
            [channels, height, width] => Ok((channels, height, width)),
            _ => Err(Error::Invalid(format!("{} needs a [c, h, w] input", self.name))),
        }
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

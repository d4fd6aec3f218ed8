//! A model plan: an [`Architecture`] validated once and resolved into the operations every backend
//! runs, at one batch size. Each layer carries the op its kind lowers it into (with its shapes, the
//! indices of its parameters in the plan's parameter list and its dropout seed), and whether its
//! ReLU is fused into the next layer's backward pass. [`super::walk`] runs a plan on any executor.

use super::explain::grad_cam_layer;
use super::layer_seed;
use super::op::{Op, OpSite};
use super::spec::{Architecture, InputShape, LayerInfo, ParamInfo};
use super::weights::NamedTensor;
use crate::{Error, Result};

/// Training (batch statistics, dropout, parameter gradients) or inference (running statistics,
/// dropout the identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
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
            let site = OpSite { batch, first_param: params.len(), seed: layer_seed(seed, i) };
            let op = info.spec.op(&info.input, &info.output, site).map_err(|reason| {
                Error::Invalid(format!("architecture {architecture}: layer {}: {reason}", info.name))
            })?;
            ops.push(op);
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

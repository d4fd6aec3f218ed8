//! The operations every backend runs: what a layer kind lowers itself into (in its module of
//! `spec::kinds`), what a [`super::plan::Plan`] holds per layer and [`super::walk`] runs on an
//! executor. Each op carries its shapes at the plan's batch size and the indices of its
//! parameters in the plan's parameter list.

use crate::shape::{BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Pool2dShape};

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

/// The indices in the plan's parameter list of a batch-norm layer's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormParams {
    pub gamma: usize,
    pub beta: usize,
    pub running_mean: usize,
    pub running_var: usize,
}

/// Where a layer's op sits in its plan.
#[derive(Clone, Copy, Debug)]
pub struct OpSite {
    /// Images per step.
    pub batch: usize,
    /// The index of the layer's first parameter in the plan's list; the others follow in the order
    /// the layer's shape inference gives them.
    pub first_param: usize,
    /// The layer's dropout seed.
    pub seed: u64,
}

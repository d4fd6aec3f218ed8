//! Batch normalisation (`shaders/batch_norm.wgsl`): training forward, inference forward, and the
//! backward passes of both modes, with the semantics of [`crate::reference::batch_norm`].
//!
//! Saved statistics: [`forward_train`] allocates the per-channel batch mean and inverse standard
//! deviation itself and hands them back in [`SavedStats`] beside its dispatches. A layer builds its
//! forward once, keeps the `SavedStats`, builds its [`backward`] from them, and replays both every
//! step: each replay of the forward rewrites the statistics the backward then reads, and no caller
//! has to size or keep apart buffers that only this pair uses. Everything the rest of a model
//! touches (x, y, the layer's weights, the gradients) is passed in.
//!
//! Tensors are checked by element count, so [batch, channels, H, W] and [batch, channels * H * W]
//! views both serve; `y` and `dx` must be buffers distinct from the tensors they are computed from.

use super::elementwise_grid;
use crate::Result;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor, grid};
use crate::shader;
use crate::shape::{BatchNormConfig, BatchNormShape};

static SHADER: Shader = shader!("batch_norm.wgsl");
/// Invocations per workgroup, for the reductions (a power of two: the tree halves it) and the
/// element-wise passes alike.
const WG: u32 = 256;
static BATCH_STATS: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "bn_batch_stats",
    bindings: &[(1, Read), (4, ReadWrite), (5, ReadWrite), (6, ReadWrite), (7, ReadWrite), (19, Read)],
};
static APPLY_BATCH_STATS: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "bn_apply_batch_stats",
    bindings: &[(1, Read), (2, Read), (3, Read), (9, Read), (10, Read), (19, Read), (8, ReadWrite)],
};
static INFERENCE: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "bn_inference",
    bindings: &[(1, Read), (2, Read), (3, Read), (11, Read), (12, Read), (8, ReadWrite)],
};
static PARAM_GRADS: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "bn_param_grads",
    bindings: &[(1, Read), (9, Read), (10, Read), (13, Read), (19, Read), (14, ReadWrite), (15, ReadWrite)],
};
static INPUT_GRAD: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "bn_input_grad",
    bindings: &[
        (1, Read),
        (2, Read),
        (9, Read),
        (10, Read),
        (13, Read),
        (16, Read),
        (17, Read),
        (19, Read),
        (18, ReadWrite),
    ],
};

/// Uniform block of every batch-norm kernel (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    momentum: f32,
    epsilon: f32,
    _pad: [u32; 3],
}

impl Params {
    fn new(shape: &BatchNormShape, config: &BatchNormConfig) -> Self {
        Self {
            batch: shape.batch as u32,
            channels: shape.channels as u32,
            spatial: shape.spatial as u32,
            momentum: config.momentum,
            epsilon: config.epsilon,
            _pad: [0; 3],
        }
    }
}

/// A layer's per-channel tensors, each \[channels\]: the trained scale and shift, and the running
/// statistics that training mode updates and inference mode normalises with.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    pub gamma: &'a GpuTensor,
    pub beta: &'a GpuTensor,
    pub running_mean: &'a GpuTensor,
    pub running_var: &'a GpuTensor,
}

/// The batch statistics of the training forward pass, \[channels\] each, that the backward pass
/// reads, and the real-rows count both passes read.
#[derive(Clone, Debug)]
pub struct SavedStats {
    pub mean: GpuTensor,
    /// `1 / sqrt(biased batch variance + epsilon)`.
    pub inv_std: GpuTensor,
    /// \[1\] u32: the rows of the batch that are real images (the rest are padding), as given to
    /// [`forward_train`].
    pub rows: GpuTensor,
}

/// The dispatches of a training forward pass, to record in order, and the statistics they save.
#[derive(Debug)]
pub struct TrainForward {
    pub dispatches: Vec<Dispatch>,
    pub saved: SavedStats,
}

/// Where the backward pass writes: `dx` like x, `dgamma` and `dbeta` \[channels\] (overwritten, not
/// accumulated).
#[derive(Clone, Copy, Debug)]
pub struct Grads<'a> {
    pub dx: &'a GpuTensor,
    pub dgamma: &'a GpuTensor,
    pub dbeta: &'a GpuTensor,
}

fn check_forward(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &GpuTensor,
    weights: &Weights,
    y: &GpuTensor,
) -> Result<()> {
    shape.check_forward(
        config,
        &[("x", x.len()), ("y", y.len())],
        [weights.gamma.len(), weights.beta.len(), weights.running_mean.len(), weights.running_var.len()],
    )
}

/// Training-mode forward, two dispatches: per-channel batch mean and biased variance (saved, and
/// folded into the running statistics as `running = momentum * running + (1 - momentum) * stat`),
/// then `y = gamma * (x - mean) * inv_std + beta`. Allocates the saved statistics (see the module
/// comment). `rows` (\[1\] u32, read when the dispatches run, so a step can change it) is how many
/// rows of the batch are real: the statistics are theirs alone, and the padding rows after them
/// get `y = 0` here and `dx = 0` in [`backward`], as a batch of `rows` images would.
pub fn forward_train(
    gpu: &Gpu,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &GpuTensor,
    weights: &Weights,
    rows: &GpuTensor,
    y: &GpuTensor,
) -> Result<TrainForward> {
    check_forward(shape, config, x, weights, y)?;
    if rows.len() != 1 {
        return Err(crate::Error::shape("batch_norm rows", [1], rows.shape()));
    }
    let saved = SavedStats {
        mean: GpuTensor::zeros(gpu, "batch_norm saved mean", &[shape.channels])?,
        inv_std: GpuTensor::zeros(gpu, "batch_norm saved inv_std", &[shape.channels])?,
        rows: rows.clone(),
    };
    let params = Params::new(shape, config);
    let constants = [("WG", WG as f64)];
    let stats = gpu.dispatch(
        &gpu.kernel(&BATCH_STATS, &constants)?,
        &params,
        &[x, weights.running_mean, weights.running_var, &saved.mean, &saved.inv_std, rows],
        grid(shape.channels as u32),
    )?;
    let apply = gpu.dispatch(
        &gpu.kernel(&APPLY_BATCH_STATS, &constants)?,
        &params,
        &[x, weights.gamma, weights.beta, &saved.mean, &saved.inv_std, rows, y],
        elementwise_grid(shape.len(), WG),
    )?;
    Ok(TrainForward { dispatches: vec![stats, apply], saved })
}

/// Inference-mode forward, one dispatch:
/// `y = gamma * (x - running_mean) / sqrt(running_var + epsilon) + beta`.
pub fn forward_inference(
    gpu: &Gpu,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &GpuTensor,
    weights: &Weights,
    y: &GpuTensor,
) -> Result<Dispatch> {
    check_forward(shape, config, x, weights, y)?;
    gpu.dispatch(
        &gpu.kernel(&INFERENCE, &[("WG", WG as f64)])?,
        &Params::new(shape, config),
        &[x, weights.gamma, weights.beta, weights.running_mean, weights.running_var, y],
        elementwise_grid(shape.len(), WG),
    )
}

/// Inference-mode backward, one dispatch: `dx = dy * gamma / sqrt(running_var + epsilon)`, the
/// per-channel affine map of batch norm on its running statistics, run by the inference forward
/// kernel on `dy` with a zero mean and a zero beta (allocated here and kept alive by the dispatch).
/// As [`crate::reference::batch_norm::backward_inference`].
pub fn backward_inference(
    gpu: &Gpu,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    gamma: &GpuTensor,
    running_var: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Dispatch> {
    config.validate()?;
    shape
        .check(&[("dy", dy.len()), ("dx", dx.len())], &[("gamma", gamma.len()), ("running_var", running_var.len())])?;
    let zeros = GpuTensor::zeros(gpu, "batch_norm zero mean and beta", &[shape.channels])?;
    let weights = Weights { gamma, beta: &zeros, running_mean: &zeros, running_var };
    forward_inference(gpu, shape, config, dy, &weights, dx)
}

/// Training-mode backward, two dispatches: `dbeta = sum(dy)` and `dgamma = sum(dy * xhat)` per
/// channel, then `dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma)` with
/// `M = rows * spatial` and `xhat = (x - mean) * inv_std` recomputed from the forward input `x`
/// and the statistics its [`forward_train`] saved; `dx = 0` on the padding rows.
pub fn backward(
    gpu: &Gpu,
    shape: &BatchNormShape,
    x: &GpuTensor,
    gamma: &GpuTensor,
    saved: &SavedStats,
    dy: &GpuTensor,
    grads: &Grads,
) -> Result<Vec<Dispatch>> {
    shape.check(
        &[("x", x.len()), ("dy", dy.len()), ("dx", grads.dx.len())],
        &[
            ("gamma", gamma.len()),
            ("saved mean", saved.mean.len()),
            ("saved inv_std", saved.inv_std.len()),
            ("dgamma", grads.dgamma.len()),
            ("dbeta", grads.dbeta.len()),
        ],
    )?;
    // The backward pass uses neither momentum nor epsilon: inv_std already holds epsilon.
    let params = Params::new(shape, &BatchNormConfig::default());
    let constants = [("WG", WG as f64)];
    let param_grads = gpu.dispatch(
        &gpu.kernel(&PARAM_GRADS, &constants)?,
        &params,
        &[x, &saved.mean, &saved.inv_std, dy, &saved.rows, grads.dgamma, grads.dbeta],
        grid(shape.channels as u32),
    )?;
    let input_grad = gpu.dispatch(
        &gpu.kernel(&INPUT_GRAD, &constants)?,
        &params,
        &[x, gamma, &saved.mean, &saved.inv_std, dy, grads.dgamma, grads.dbeta, &saved.rows, grads.dx],
        elementwise_grid(shape.len(), WG),
    )?;
    Ok(vec![param_grads, input_grad])
}

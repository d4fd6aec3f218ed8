//! Classification losses from logits and the inference probabilities (`shaders/loss.wgsl`).
//! Semantics: [`crate::reference::loss`].

use super::elementwise_grid;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shader;
use crate::shape::LossShape;
use crate::{Error, Result};

static SHADER: Shader = shader!("loss.wgsl");
/// Workgroup size; a power of two (the stats are a tree reduction). The batch is small (one row
/// per invocation at 64), so one workgroup does the whole loss.
const WG: u32 = 64;
static CROSS_ENTROPY: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "cross_entropy",
    bindings: &[(1, Read), (2, Read), (3, Read), (4, ReadWrite), (5, ReadWrite)],
};
static PROBABILITIES: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "probabilities", bindings: &[(1, Read), (6, ReadWrite)] };

/// Number of f32 in the stats tensor: [mean loss, correct predictions, rows counted, ignored rows].
pub const STATS_LEN: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    batch: u32,
    classes: u32,
    _pad: [u32; 2],
}

/// The [batch, classes] shape of a 2-D logits tensor, validated.
fn logits_shape(logits: &GpuTensor) -> Result<LossShape> {
    let &[batch, classes] = logits.shape() else {
        return Err(Error::shape("loss logits", "[batch, classes]", logits.shape()));
    };
    let shape = LossShape { batch, classes };
    shape.validate(logits.len())?;
    Ok(shape)
}

fn params(shape: LossShape) -> LossParams {
    LossParams { batch: shape.batch as u32, classes: shape.classes as u32, _pad: [0; 2] }
}

/// Loss, gradient and batch statistics of logits [batch, classes] against u32 `labels` \[batch\],
/// with `class_weights` [max(classes, 2)], in one workgroup: writes `dlogits` (same shape as the
/// logits, the gradient of the loss averaged over the rows counted) and `stats` \[4\] = [mean loss,
/// correct predictions, rows counted, rows ignored]. A label `>= max(classes, 2)` cannot be checked
/// here (it is in a buffer): the kernel ignores that row (zero loss and gradient, not correct, not
/// in the mean) and counts it in `stats[3]`; this is how a short batch's padding rows
/// ([`crate::model::PADDING_LABEL`]) drop out, as if the batch were that much shorter.
pub fn cross_entropy(
    gpu: &Gpu,
    logits: &GpuTensor,
    labels: &GpuTensor,
    class_weights: &GpuTensor,
    dlogits: &GpuTensor,
    stats: &GpuTensor,
) -> Result<Dispatch> {
    let shape = logits_shape(logits)?;
    shape.validate_with_labels(logits.len(), labels.len(), class_weights.len())?;
    if dlogits.shape() != logits.shape() {
        return Err(Error::shape("loss dlogits", logits.shape(), dlogits.shape()));
    }
    if stats.len() != STATS_LEN {
        return Err(Error::shape("loss stats", [STATS_LEN], stats.shape()));
    }
    let kernel = gpu.kernel(&CROSS_ENTROPY, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &params(shape), &[logits, labels, class_weights, dlogits, stats], [1, 1, 1])
}

/// `probs` = sigmoid of logits [batch, 1], or the softmax of each row of logits [batch, classes].
pub fn probabilities(gpu: &Gpu, logits: &GpuTensor, probs: &GpuTensor) -> Result<Dispatch> {
    let shape = logits_shape(logits)?;
    if probs.shape() != logits.shape() {
        return Err(Error::shape("probabilities", logits.shape(), probs.shape()));
    }
    let kernel = gpu.kernel(&PROBABILITIES, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &params(shape), &[logits, probs], elementwise_grid(shape.batch, WG))
}

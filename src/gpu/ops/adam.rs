//! One Adam (AdamW) step over flat parameter arrays (`shaders/adam.wgsl`).
//! Semantics: [`crate::reference::adam::step`].

use super::elementwise_grid;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shader;
use crate::shape::AdamConfig;
use crate::{Error, Result};

static SHADER: Shader = shader!("adam.wgsl");
const WG: u32 = 256;
static ADAM_STEP: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "adam_step",
    bindings: &[(1, ReadWrite), (2, Read), (3, ReadWrite), (4, ReadWrite)],
};

/// The uniform block of one Adam step. The step-dependent `alpha` changes every step: rewrite it
/// with [`Dispatch::update_params`] instead of rebuilding the dispatch.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    pub len: u32,
    /// `lr * sqrt(1 - beta2^step) / (1 - beta1^step)`, computed in f64.
    pub alpha: f32,
    pub one_minus_beta1: f32,
    pub one_minus_beta2: f32,
    pub epsilon: f32,
    pub lr: f32,
    pub weight_decay: f32,
    pub _pad: u32,
}

impl AdamParams {
    /// The parameters of step `step` (counting from 1) over `len` elements.
    pub fn new(cfg: &AdamConfig, step: u64, len: usize) -> Result<Self> {
        let len = u32::try_from(len).map_err(|_| Error::Invalid(format!("adam: {len} elements exceed 2^32")))?;
        Ok(Self {
            len,
            alpha: cfg.alpha(step)? as f32,
            one_minus_beta1: (1.0 - cfg.beta1 as f64) as f32,
            one_minus_beta2: (1.0 - cfg.beta2 as f64) as f32,
            epsilon: cfg.epsilon,
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            _pad: 0,
        })
    }
}

/// Whether two tensors share bytes of one buffer.
fn overlap(a: &GpuTensor, b: &GpuTensor) -> bool {
    a.buffer() == b.buffer() && a.offset() < b.offset() + b.bytes() && b.offset() < a.offset() + a.bytes()
}

/// Step `step` (from 1) of Adam on `param` with gradient `grad` and moments `m`, `v`, all of one
/// length (any shapes). `param`, `m` and `v` may be views of one arena but must not overlap;
/// `grad` must live in another buffer, since wgpu forbids one buffer bound both read-only and
/// read-write in a dispatch.
pub fn step(
    gpu: &Gpu,
    cfg: &AdamConfig,
    step: u64,
    param: &GpuTensor,
    grad: &GpuTensor,
    m: &GpuTensor,
    v: &GpuTensor,
) -> Result<Dispatch> {
    AdamConfig::check_lengths(param.len(), &[("grad", grad.len()), ("m", m.len()), ("v", v.len())])?;
    let writable = [("param", param), ("m", m), ("v", v)];
    for (i, &(name, t)) in writable.iter().enumerate() {
        if t.buffer() == grad.buffer() {
            return Err(Error::Invalid(format!(
                "adam: {name} and grad share a buffer; grad needs its own (wgpu does not bind one \
                 buffer both read-only and read-write in a dispatch)"
            )));
        }
        for &(other, u) in &writable[i + 1..] {
            if overlap(t, u) {
                return Err(Error::Invalid(format!("adam: {name} and {other} overlap")));
            }
        }
    }
    let params = AdamParams::new(cfg, step, param.len())?;
    let kernel = gpu.kernel(&ADAM_STEP, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &params, &[param, grad, m, v], elementwise_grid(param.len(), WG))
}

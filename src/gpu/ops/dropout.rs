//! Inverted dropout forward and backward (`shaders/dropout.wgsl`), with the mask of
//! [`crate::reference::dropout`] recomputed from (seed, step) rather than stored. At inference dropout is
//! the identity: record no dispatch.

use super::{elementwise_grid, same_len};
use crate::Result;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shader;
use crate::shape::DropoutConfig;

static SHADER: Shader = shader!("dropout.wgsl");
const WG: u32 = 256;
static DROPOUT: KernelSpec = KernelSpec { shader: &SHADER, entry: "dropout", bindings: &[(1, Read), (2, ReadWrite)] };

/// The dropout kernel's uniform block. A training loop that records the dispatches once moves to
/// the next step's mask with [`Dispatch::update_params`] and `DropoutParams::new` of the new step.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DropoutParams {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    threshold: u32,
    scale: f32,
    _pad: [u32; 2],
}

impl DropoutParams {
    pub fn new(config: &DropoutConfig, len: usize) -> Result<Self> {
        Ok(Self {
            len: config.validate(len)?,
            seed_lo: config.seed as u32,
            seed_hi: (config.seed >> 32) as u32,
            step: config.step,
            threshold: config.threshold(),
            scale: config.scale(),
            _pad: [0; 2],
        })
    }
}

/// `y = x * keep * scale` (training).
pub fn forward(gpu: &Gpu, config: &DropoutConfig, x: &GpuTensor, y: &GpuTensor) -> Result<Dispatch> {
    same_len("dropout_forward y", x, y)?;
    apply_mask(gpu, config, x, y)
}

/// `dx = dy * keep * scale`, with the forward pass's `config` (same seed and step).
pub fn backward(gpu: &Gpu, config: &DropoutConfig, dy: &GpuTensor, dx: &GpuTensor) -> Result<Dispatch> {
    same_len("dropout_backward dx", dy, dx)?;
    apply_mask(gpu, config, dy, dx)
}

fn apply_mask(gpu: &Gpu, config: &DropoutConfig, src: &GpuTensor, dst: &GpuTensor) -> Result<Dispatch> {
    let params = DropoutParams::new(config, src.len())?;
    let kernel = gpu.kernel(&DROPOUT, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &params, &[src, dst], elementwise_grid(src.len(), WG))
}

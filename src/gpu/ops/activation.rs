//! ReLU forward and backward (`shaders/activation.wgsl`).

use super::{LenParams, elementwise_grid, same_len};
use crate::Result;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shader;

static SHADER: Shader = shader!("activation.wgsl");
const WG: u32 = 256;
static RELU_FORWARD: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "relu_forward", bindings: &[(1, Read), (2, ReadWrite)] };
static RELU_BACKWARD: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "relu_backward", bindings: &[(1, Read), (3, Read), (4, ReadWrite)] };

/// `y = max(x, 0)`.
pub fn relu(gpu: &Gpu, x: &GpuTensor, y: &GpuTensor) -> Result<Dispatch> {
    same_len("relu_forward y", x, y)?;
    let kernel = gpu.kernel(&RELU_FORWARD, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &LenParams::new(x.len()), &[x, y], elementwise_grid(x.len(), WG))
}

/// `dx = dy * (y > 0)`, from the forward output `y`.
pub fn relu_backward(gpu: &Gpu, y: &GpuTensor, dy: &GpuTensor, dx: &GpuTensor) -> Result<Dispatch> {
    same_len("relu_backward dy", y, dy)?;
    same_len("relu_backward dx", y, dx)?;
    let kernel = gpu.kernel(&RELU_BACKWARD, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &LenParams::new(y.len()), &[y, dy, dx], elementwise_grid(y.len(), WG))
}

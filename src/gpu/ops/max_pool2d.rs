//! Max-pooling 2-D forward (values and argmax) and backward (a gather over the argmax, optionally
//! fused with the backward pass of a ReLU before the pool) (`shaders/max_pool2d.wgsl`). Semantics,
//! ties and NaN as [`crate::reference::max_pool2d`].

use super::elementwise_grid;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shader;
use crate::shape::Pool2dShape;
use crate::{Error, Result};

static SHADER: Shader = shader!("max_pool2d.wgsl");
const FORWARD_WG: u32 = 256;
/// Bands of input rows (rows, when windows overlap) per backward workgroup.
const BACKWARD_ROWS: u32 = 4;
static FORWARD: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "max_pool2d_forward", bindings: &[(1, Read), (2, ReadWrite), (3, ReadWrite)] };
static BACKWARD: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "max_pool2d_backward",
    bindings: &[(4, Read), (5, Read), (6, ReadWrite), (7, Read)],
};

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    pool: u32,
    stride: u32,
    _pad: u32,
}

/// `y` = the max of each window of `x`, `argmax` = the flat index into `x` of the element chosen
/// (a u32 tensor of `y`'s shape, kept for the backward pass).
pub fn forward(gpu: &Gpu, shape: &Pool2dShape, x: &GpuTensor, y: &GpuTensor, argmax: &GpuTensor) -> Result<Dispatch> {
    shape.validate()?;
    check_dims("max_pool2d_forward x", &shape.input_dims(), x)?;
    check_dims("max_pool2d_forward y", &shape.output_dims(), y)?;
    check_dims("max_pool2d_forward argmax", &shape.output_dims(), argmax)?;
    let kernel = gpu.kernel(&FORWARD, &[("WG", FORWARD_WG as f64)])?;
    gpu.dispatch(&kernel, &pool_params(shape), &[x, y, argmax], elementwise_grid(y.len(), FORWARD_WG))
}

/// `dx[i]` = the sum of `dy` over the windows whose saved `argmax` is `i` (0 for the rest).
/// `y` is the forward output. With `relu_mask`, a window passes its gradient only where `y > 0`:
/// the backward pass of a ReLU before the pool, fused (as [`crate::reference::max_pool2d::backward_relu`]).
#[allow(clippy::too_many_arguments)] // the pool's saved state, both gradients and the fusion flag
pub fn backward(
    gpu: &Gpu,
    shape: &Pool2dShape,
    argmax: &GpuTensor,
    y: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
    relu_mask: bool,
) -> Result<Dispatch> {
    shape.validate()?;
    check_dims("max_pool2d_backward argmax", &shape.output_dims(), argmax)?;
    check_dims("max_pool2d_backward y", &shape.output_dims(), y)?;
    check_dims("max_pool2d_backward dy", &shape.output_dims(), dy)?;
    check_dims("max_pool2d_backward dx", &shape.input_dims(), dx)?;
    // A lane per window column (per input column when windows overlap), rounded up to the 8
    // lanes of a 256-bit SIMD register, at most 64 (longer rows loop).
    let lanes = if shape.pool <= shape.stride { shape.in_w.div_ceil(shape.stride) } else { shape.in_w };
    let wg = lanes.next_multiple_of(8).min(64) as u32;
    let constants = [("WG", wg as f64), ("RELU_MASK", relu_mask as u8 as f64), ("ROWS", BACKWARD_ROWS as f64)];
    let kernel = gpu.kernel(&BACKWARD, &constants)?;
    // Units: bands of `stride` input rows (one window row each) or single rows, as the shader.
    let unit_rows = if shape.pool <= shape.stride { shape.stride } else { 1 };
    let units = (shape.batch * shape.channels * shape.in_h.div_ceil(unit_rows)) as u32;
    gpu.dispatch(&kernel, &pool_params(shape), &[argmax, dy, dx, y], crate::gpu::grid(units.div_ceil(BACKWARD_ROWS)))
}

fn pool_params(shape: &Pool2dShape) -> PoolParams {
    PoolParams {
        planes: (shape.batch * shape.channels) as u32,
        in_h: shape.in_h as u32,
        in_w: shape.in_w as u32,
        out_h: shape.out_h() as u32,
        out_w: shape.out_w() as u32,
        pool: shape.pool as u32,
        stride: shape.stride as u32,
        _pad: 0,
    }
}

fn check_dims(what: &str, dims: &[usize; 4], t: &GpuTensor) -> Result<()> {
    if t.shape() != dims {
        return Err(Error::shape(what, dims, t.shape()));
    }
    Ok(())
}

//! Max-pooling 2-D forward (values and argmax) and backward (a gather over the argmax)
//! (`shaders/max_pool2d.wgsl`). Semantics, ties and NaN as [`crate::cpu::max_pool2d`].

use super::elementwise_grid;
use crate::gpu::kernel::{Access::*, KernelSpec, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shader;
use crate::shape::Pool2dShape;
use crate::{Error, Result};

static SHADER: Shader = shader!("max_pool2d.wgsl");
const WG: u32 = 256;
static FORWARD: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "max_pool2d_forward", bindings: &[(1, Read), (2, ReadWrite), (3, ReadWrite)] };
static BACKWARD: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "max_pool2d_backward", bindings: &[(4, Read), (5, Read), (6, ReadWrite)] };

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
pub fn max_pool2d_forward(
    gpu: &Gpu,
    shape: &Pool2dShape,
    x: &GpuTensor,
    y: &GpuTensor,
    argmax: &GpuTensor,
) -> Result<Dispatch> {
    shape.validate()?;
    check_dims("max_pool2d_forward x", &shape.input_dims(), x)?;
    check_dims("max_pool2d_forward y", &shape.output_dims(), y)?;
    check_dims("max_pool2d_forward argmax", &shape.output_dims(), argmax)?;
    run_per_element(gpu, &FORWARD, shape, y.len(), &[x, y, argmax])
}

/// `dx[i]` = the sum of `dy` over the windows whose saved `argmax` is `i` (0 for the rest).
pub fn max_pool2d_backward(
    gpu: &Gpu,
    shape: &Pool2dShape,
    argmax: &GpuTensor,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Dispatch> {
    shape.validate()?;
    check_dims("max_pool2d_backward argmax", &shape.output_dims(), argmax)?;
    check_dims("max_pool2d_backward dy", &shape.output_dims(), dy)?;
    check_dims("max_pool2d_backward dx", &shape.input_dims(), dx)?;
    run_per_element(gpu, &BACKWARD, shape, dx.len(), &[argmax, dy, dx])
}

/// One invocation per element of `count` (outputs forward, inputs backward).
fn run_per_element(
    gpu: &Gpu,
    spec: &KernelSpec,
    shape: &Pool2dShape,
    count: usize,
    tensors: &[&GpuTensor],
) -> Result<Dispatch> {
    let params = PoolParams {
        planes: (shape.batch * shape.channels) as u32,
        in_h: shape.in_h as u32,
        in_w: shape.in_w as u32,
        out_h: shape.out_h() as u32,
        out_w: shape.out_w() as u32,
        pool: shape.pool as u32,
        stride: shape.stride as u32,
        _pad: 0,
    };
    let kernel = gpu.kernel(spec, &[("WG", WG as f64)])?;
    gpu.dispatch(&kernel, &params, tensors, elementwise_grid(count, WG))
}

fn check_dims(what: &str, dims: &[usize; 4], t: &GpuTensor) -> Result<()> {
    if t.shape() != dims {
        return Err(Error::shape(what, dims, t.shape()));
    }
    Ok(())
}

//! Conv2d forward, input gradient, and weight + bias gradient: the software kernels
//! (`shaders/conv2d.wgsl`) or, on a device with the tiled variant, the implicit GEMMs of
//! [`super::conv2d_mm`], whose weight-gradient partials this module sums.

use super::{ConvParams, conv2d_mm, elementwise_grid};
use crate::gpu::kernel::{Access::*, KernelSpec, MAX_WORKGROUPS_PER_DIM, Shader};
use crate::gpu::{AdapterProfile, Dispatch, Gpu, GpuTensor, KernelVariant, grid};
use crate::shader;
use crate::shape::{Conv2dShape, Padding};
use crate::{Error, Result};

static SHADER: Shader = shader!("conv2d.wgsl");
static PACK_WEIGHTS: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "conv2d_pack_weights", bindings: &[(2, Read), (12, ReadWrite)] };
static FORWARD: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "conv2d_forward",
    bindings: &[(1, Read), (11, Read), (3, Read), (4, ReadWrite)],
};
static PACK_WEIGHTS_BY_INPUT: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "conv2d_pack_weights_by_input", bindings: &[(2, Read), (12, ReadWrite)] };
static SPREAD_OUTPUT_GRADIENT: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "conv2d_spread_output_gradient", bindings: &[(5, Read), (13, ReadWrite)] };
static BACKWARD_WEIGHT: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "conv2d_backward_weight", bindings: &[(1, Read), (5, Read), (7, ReadWrite)] };
static REDUCE_WEIGHT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "conv2d_reduce_weight",
    bindings: &[(10, Read), (8, ReadWrite), (9, ReadWrite)],
};

/// Rows of dy per workgroup, and lanes along a row, when spreading dy for the input gradient.
const SPREAD_ROWS: u32 = 4;
const SPREAD_WG: u32 = 64;

/// Workgroup shape of the convolution kernels for an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTiling {
    /// Invocations per workgroup.
    pub workgroup: u32,
    /// Workgroups the weight-gradient pass aims for, by splitting its long reduction.
    pub target_workgroups: u32,
    /// The weight-gradient pass sizes its workgroups to its lane count, in multiples of this
    /// many invocations and at most `weight_workgroup_max`.
    pub weight_lane_multiple: u32,
    pub weight_workgroup_max: u32,
}

/// The tiling for an adapter. Lavapipe runs a workgroup on one CPU thread, 8 lanes at a time, and
/// a few workgroups per core keep it busy. Splitting the weight-gradient reduction further only
/// cost time there (Model A's conv2 1.7 s with 64 workgroups' worth of splits, 0.4-0.6 s with 16),
/// and a workgroup of any multiple of 8 lanes does as well as a power of two, so that pass sizes
/// its workgroups to its lanes (97 lanes: two workgroups of 56, not two of 64). GPUs want many
/// more workgroups in flight to hide memory latency, hence many more splits, and whole 64-wide
/// waves.
pub fn tiling(profile: AdapterProfile) -> ConvTiling {
    match profile {
        AdapterProfile::Software => {
            ConvTiling { workgroup: 64, target_workgroups: 16, weight_lane_multiple: 8, weight_workgroup_max: 64 }
        }
        AdapterProfile::Hardware => {
            ConvTiling { workgroup: 64, target_workgroups: 2048, weight_lane_multiple: 64, weight_workgroup_max: 64 }
        }
    }
}

fn expect_shape(what: &str, t: &GpuTensor, dims: &[usize]) -> Result<()> {
    if t.shape() != dims {
        return Err(Error::shape(format!("conv2d {what}"), dims, t.shape()));
    }
    Ok(())
}

/// `y = conv(x, w) + b`, then ReLU if `relu` (fused). Two dispatches: the weights are first
/// repacked tap-major (`[k][out_c]`, a small copy) so the main pass loads four output channels'
/// weights at once; the packed copy is allocated here and kept alive by the dispatches.
pub fn forward(
    gpu: &Gpu,
    shape: &Conv2dShape,
    x: &GpuTensor,
    w: &GpuTensor,
    b: &GpuTensor,
    y: &GpuTensor,
    relu: bool,
) -> Result<Vec<Dispatch>> {
    shape.validate()?;
    expect_shape("input", x, &shape.input_dims())?;
    expect_shape("weight", w, &shape.weight_dims())?;
    expect_shape("bias", b, &[shape.out_channels])?;
    expect_shape("output", y, &shape.output_dims())?;
    if gpu.kernels == KernelVariant::Tiled {
        return Ok(vec![conv2d_mm::forward(gpu, shape, x, w, b, y, relu)?]);
    }
    let ckk = shape.in_channels * shape.kernel_h * shape.kernel_w;
    let out_c4 = shape.out_channels.div_ceil(4);
    let packed = GpuTensor::zeros(gpu, "conv2d packed weights", &[ckk, out_c4 * 4])?;
    let pack = gpu.kernel(&PACK_WEIGHTS, &[("WG", 256.0)])?;
    Ok(vec![
        gpu.dispatch(&pack, &ConvParams::new(shape), &[w, &packed], elementwise_grid(ckk * out_c4 * 4, 256))?,
        forward_pass(gpu, shape, x, &packed, b, y, relu)?,
    ])
}

/// The main forward pass over weights already packed tap-major.
fn forward_pass(
    gpu: &Gpu,
    shape: &Conv2dShape,
    x: &GpuTensor,
    packed: &GpuTensor,
    b: &GpuTensor,
    y: &GpuTensor,
    relu: bool,
) -> Result<Dispatch> {
    let t = tiling(gpu.profile);
    let params = ConvParams { relu: relu as u32, ..ConvParams::new(shape) };
    let padded = shape.pad_top() > 0 || shape.pad_left() > 0 || shape.padding == Padding::Same;
    let forward = gpu.kernel(&FORWARD, &[("WG", t.workgroup as f64), ("PADDED", padded as u8 as f64)])?;
    // One invocation per 4 output pixels of a row and 4 output channels.
    let columns = (shape.batch * shape.out_h() * shape.out_w().div_ceil(4)) as u32;
    let [gx, gy, _] = grid(columns.div_ceil(t.workgroup));
    gpu.dispatch(&forward, &params, &[x, packed, b, y], [gx, gy, shape.out_channels.div_ceil(4) as u32])
}

/// `dx = conv_transpose(dy, w)`: the gradient w.r.t. the input. `dy` is the gradient at the
/// convolution's output (after any ReLU backward). A convolution itself, run by the forward pass
/// (see `shaders/conv2d.wgsl`): three dispatches, which pack the weights transposed and flipped,
/// spread `dy` into a zero-padded buffer, and convolve the two. The buffers are allocated here and
/// kept alive by the dispatches; the spread buffer's padding is zeroed once, at allocation.
pub fn backward_input(
    gpu: &Gpu,
    shape: &Conv2dShape,
    dy: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Vec<Dispatch>> {
    shape.validate()?;
    expect_shape("output gradient", dy, &shape.output_dims())?;
    expect_shape("weight", w, &shape.weight_dims())?;
    expect_shape("input gradient", dx, &shape.input_dims())?;
    if gpu.kernels == KernelVariant::Tiled {
        return Ok(vec![conv2d_mm::backward_input(gpu, shape, dy, w, dx)?]);
    }
    let taps = shape.kernel_h * shape.kernel_w;
    let in_c4 = shape.in_channels.div_ceil(4);
    let packed = GpuTensor::zeros(gpu, "conv2d transposed weights", &[shape.out_channels * taps, in_c4 * 4])?;
    // dx = valid, stride-1 convolution of the spread gradient, out_c channels in, in_c out.
    let transposed = Conv2dShape {
        batch: shape.batch,
        in_channels: shape.out_channels,
        in_h: shape.in_h + shape.kernel_h - 1,
        in_w: shape.in_w + shape.kernel_w - 1,
        out_channels: shape.in_channels,
        kernel_h: shape.kernel_h,
        kernel_w: shape.kernel_w,
        stride: 1,
        padding: Padding::Valid,
    };
    let spread = GpuTensor::zeros(gpu, "conv2d spread output gradient", &transposed.input_dims())?;
    let no_bias = GpuTensor::zeros(gpu, "conv2d zero bias", &[shape.in_channels])?;
    let params = ConvParams::new(shape);
    let pack = gpu.kernel(&PACK_WEIGHTS_BY_INPUT, &[("WG", 256.0)])?;
    let spread_kernel =
        gpu.kernel(&SPREAD_OUTPUT_GRADIENT, &[("WG", SPREAD_WG as f64), ("SPREAD_ROWS", SPREAD_ROWS as f64)])?;
    let dy_rows = (shape.batch * shape.out_channels * shape.out_h()) as u32;
    Ok(vec![
        gpu.dispatch(&pack, &params, &[w, &packed], elementwise_grid(packed.len(), 256))?,
        gpu.dispatch(&spread_kernel, &params, &[dy, &spread], grid(dy_rows.div_ceil(SPREAD_ROWS)))?,
        forward_pass(gpu, &transposed, &spread, &packed, &no_bias, dx, false)?,
    ])
}

/// `dw` and `db`: partial sums over `splits` chunks of the (n, oy) rows, then a fixed-order sum of
/// the chunks, so the result is the same bits on every run. Two dispatches; the partial-sum
/// buffer is allocated here and kept alive by the dispatches.
pub fn backward_weight(
    gpu: &Gpu,
    shape: &Conv2dShape,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
    db: &GpuTensor,
) -> Result<Vec<Dispatch>> {
    shape.validate()?;
    expect_shape("input", x, &shape.input_dims())?;
    expect_shape("output gradient", dy, &shape.output_dims())?;
    expect_shape("weight gradient", dw, &shape.weight_dims())?;
    expect_shape("bias gradient", db, &[shape.out_channels])?;
    let ckk = shape.in_channels * shape.kernel_h * shape.kernel_w;
    let reduce_kernel = gpu.kernel(&REDUCE_WEIGHT, &[("WG", 256.0)])?;
    let reduce_grid = elementwise_grid(shape.out_channels * (ckk + 1), 256);
    if gpu.kernels == KernelVariant::Tiled {
        let (partials, partial, params) = conv2d_mm::backward_weight_partials(gpu, shape, x, dy)?;
        return Ok(vec![partials, gpu.dispatch(&reduce_kernel, &params, &[&partial, dw, db], reduce_grid)?]);
    }
    let t = tiling(gpu.profile);
    // One invocation per (ci, ky, 4 columns of the kernel), and one for the bias.
    let lanes = (shape.in_channels * shape.kernel_h * shape.kernel_w.div_ceil(4) + 1) as u32;
    // As few workgroups across the lanes as fit, each as small as holds its share (a first layer
    // has only 3*3 + 1 lanes).
    let column_groups = lanes.div_ceil(t.weight_workgroup_max);
    let workgroup = lanes.div_ceil(column_groups).next_multiple_of(t.weight_lane_multiple).min(t.weight_workgroup_max);
    let row_groups = (shape.out_channels as u32).div_ceil(4);
    let rows = (shape.batch * shape.out_h()) as u32;
    let wanted = (t.target_workgroups / (column_groups * row_groups)).clamp(1, rows.min(MAX_WORKGROUPS_PER_DIM));
    let split_len = rows.div_ceil(wanted);
    let splits = rows.div_ceil(split_len);
    let partial =
        GpuTensor::zeros(gpu, "conv2d weight-gradient partial sums", &[splits as usize, shape.out_channels, ckk + 1])?;
    let params = ConvParams { split_len, splits, ..ConvParams::new(shape) };
    let partial_kernel = gpu.kernel(&BACKWARD_WEIGHT, &[("WG", workgroup as f64)])?;
    Ok(vec![
        gpu.dispatch(&partial_kernel, &params, &[x, dy, &partial], [column_groups, splits, row_groups])?,
        gpu.dispatch(&reduce_kernel, &params, &[&partial, dw, db], reduce_grid)?,
    ])
}

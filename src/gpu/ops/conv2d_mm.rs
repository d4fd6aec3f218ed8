//! The tiled (implicit-GEMM) convolution passes for hardware GPUs (`shaders/conv2d_mm.wgsl`):
//! forward, input gradient, and the weight gradient's partial sums. [`super::conv2d`] checks the
//! shapes, picks these or the software passes by the device's kernel variant, and sums the weight
//! gradient's partials.

use super::ConvParams;
use crate::gpu::kernel::{Access::*, KernelSpec, MAX_WORKGROUPS_PER_DIM, Shader};
use crate::gpu::{AdapterProfile, Dispatch, Gpu, GpuTensor, grid};
use crate::shader;
use crate::shape::Conv2dShape;
use crate::{Error, Result};

static SHADER: Shader = shader!("conv2d_mm.wgsl");
static FORWARD: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "conv2d_mm_forward",
    bindings: &[(1, Read), (2, Read), (6, Read), (3, Read), (4, ReadWrite)],
};
static BACKWARD_INPUT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "conv2d_mm_backward_input",
    bindings: &[(5, Read), (2, Read), (4, ReadWrite)],
};
static BACKWARD_WEIGHT: KernelSpec = KernelSpec {
    shader: &SHADER,
    entry: "conv2d_mm_backward_weight",
    bindings: &[(1, Read), (5, Read), (14, Read), (7, ReadWrite)],
};

/// Tile sizes of the implicit GEMMs: a workgroup computes a `m x n` block of the product in
/// `k`-deep slices, each invocation a 4 x 4 register tile, so it has `m * n / 16` invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmTiling {
    pub m: u32,
    pub n: u32,
    pub k: u32,
}

impl MmTiling {
    /// The tiles for a product with `rows` rows (output channels, or input channels for the input
    /// gradient): 64 columns (pixels, which are many) by the smallest of 16, 32 or 64 rows that
    /// holds them, so that a 16-channel layer does not compute 48 rows of zeros; slices 16 deep.
    /// 64 x 64 is TensorFlow.js's conv2d_mm tile with 256 invocations.
    pub fn for_rows(rows: usize) -> Self {
        let m = match rows {
            0..=16 => 16,
            17..=32 => 32,
            _ => 64,
        };
        MmTiling { m, n: 64, k: 16 }
    }

    fn constants(self, vec4: bool) -> [(&'static str, f64); 4] {
        [
            ("TILE_M", f64::from(self.m)),
            ("TILE_N", f64::from(self.n)),
            ("TILE_K", f64::from(self.k)),
            ("VEC4", f64::from(u8::from(vec4))),
        ]
    }
}

/// Workgroups the weight-gradient pass aims for by splitting its reduction over the pixels: many
/// on a GPU (to fill its cores), few on a CPU adapter (each workgroup is a thread's task).
fn target_workgroups(profile: AdapterProfile) -> u32 {
    match profile {
        AdapterProfile::Software => 16,
        AdapterProfile::Hardware => 1024,
    }
}

/// The partial sums take at most this much memory (and never more than a binding may hold).
const MAX_PARTIAL_BYTES: u64 = 64 << 20;

/// `y = conv(x, w) + b`, then ReLU if `relu`: one dispatch, the weights read as they are (four at
/// a time when a filter's `in_c * k_h * k_w` values are a multiple of 4).
pub fn forward(
    gpu: &Gpu,
    shape: &Conv2dShape,
    x: &GpuTensor,
    w: &GpuTensor,
    b: &GpuTensor,
    y: &GpuTensor,
    relu: bool,
) -> Result<Dispatch> {
    let tiling = MmTiling::for_rows(shape.out_channels);
    let ckk = shape.in_channels * shape.kernel_h * shape.kernel_w;
    let kernel = gpu.kernel(&FORWARD, &tiling.constants(ckk.is_multiple_of(4)))?;
    let columns = shape.batch * shape.out_h() * shape.out_w();
    let params = ConvParams { relu: relu as u32, ..ConvParams::new(shape) };
    gpu.dispatch(&kernel, &params, &[x, w, w, b, y], blocks(columns, tiling, shape.out_channels)?)
}

/// `dx`, the gradient w.r.t. the input: one dispatch reading `dy` and the weights in place (no
/// transposed copy, no spread gradient).
pub fn backward_input(
    gpu: &Gpu,
    shape: &Conv2dShape,
    dy: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Dispatch> {
    let tiling = MmTiling::for_rows(shape.in_channels);
    let kernel = gpu.kernel(&BACKWARD_INPUT, &tiling.constants(false))?;
    let columns = shape.batch * shape.in_h * shape.in_w;
    gpu.dispatch(&kernel, &ConvParams::new(shape), &[dy, w, dx], blocks(columns, tiling, shape.in_channels)?)
}

/// Workgroups for a product of `rows` x `columns` in `tiling`'s blocks: the column blocks spread
/// over x and y, the row blocks in z.
fn blocks(columns: usize, tiling: MmTiling, rows: usize) -> Result<[u32; 3]> {
    let [gx, gy, _] = grid((columns as u32).div_ceil(tiling.n));
    let row_blocks = (rows as u32).div_ceil(tiling.m);
    if row_blocks > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::Invalid(format!("conv2d: {rows} channels are more than the tiled kernels dispatch")));
    }
    Ok([gx, gy, row_blocks])
}

/// The weight gradient's partial sums: the pixels of the batch cut into `splits` runs, each
/// workgroup's product over one run written to `partial[split][co][ckk + 1]` (the last column is
/// the bias gradient's). Returns the dispatch, the partial-sum buffer (kept alive by the caller's
/// dispatches) and the parameters with the split, for the fixed-order sum of the splits.
pub fn backward_weight_partials(
    gpu: &Gpu,
    shape: &Conv2dShape,
    x: &GpuTensor,
    dy: &GpuTensor,
) -> Result<(Dispatch, GpuTensor, ConvParams)> {
    let tiling = MmTiling::for_rows(shape.out_channels);
    let ckk = shape.in_channels * shape.kernel_h * shape.kernel_w;
    let pixels = shape.out_h() * shape.out_w();
    let column_blocks = (ckk as u32 + 1).div_ceil(tiling.n);
    let row_blocks = (shape.out_channels as u32).div_ceil(tiling.m);
    let reduction = (shape.batch * pixels) as u32;
    let split_bytes = (shape.out_channels * (ckk + 1) * 4) as u64;
    let most_splits = (MAX_PARTIAL_BYTES.min(gpu.max_binding_bytes()) / split_bytes).max(1) as u32;
    let wanted = (target_workgroups(gpu.profile) / (column_blocks * row_blocks))
        .clamp(1, most_splits.min(MAX_WORKGROUPS_PER_DIM))
        .min(reduction.div_ceil(tiling.k));
    // Whole slices per split, so that the vec4 path's loads stay inside one split and one image.
    let split_len = reduction.div_ceil(wanted).next_multiple_of(tiling.k);
    let splits = reduction.div_ceil(split_len);
    if column_blocks > MAX_WORKGROUPS_PER_DIM || row_blocks > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::Invalid(format!("conv2d: {shape:?} is larger than the tiled kernels dispatch")));
    }
    let partial =
        GpuTensor::zeros(gpu, "conv2d weight-gradient partial sums", &[splits as usize, shape.out_channels, ckk + 1])?;
    let params = ConvParams { split_len, splits, ..ConvParams::new(shape) };
    let kernel = gpu.kernel(&BACKWARD_WEIGHT, &tiling.constants(pixels.is_multiple_of(4)))?;
    let dispatch = gpu.dispatch(&kernel, &params, &[x, dy, dy, &partial], [column_blocks, row_blocks, splits])?;
    Ok((dispatch, partial, params))
}

//! Dense (fully connected) layers, `y = x @ w + b` in Keras's layout, on one strided matrix-product
//! kernel (`shaders/matmul.wgsl`). The forward pass and both weight-carrying backward passes are
//! the same kernel reading its operands through different strides, so nothing is transposed in
//! memory; the bias gradient is a column sum.

use super::elementwise_grid;
use crate::gpu::kernel::{Access::*, KernelSpec, MAX_WORKGROUPS_PER_DIM, Shader};
use crate::gpu::{Dispatch, Gpu, GpuTensor, KernelVariant};
use crate::shape::DenseShape;
use crate::{Error, Result, shader};

static SHADER: Shader = shader!("matmul.wgsl");
const MATMUL_BINDINGS: &[(u32, crate::gpu::kernel::Access)] = &[(1, Read), (2, Read), (3, Read), (4, ReadWrite)];
static MATMUL: KernelSpec = KernelSpec { shader: &SHADER, entry: "matmul", bindings: MATMUL_BINDINGS };
static MATMUL_TILED: KernelSpec = KernelSpec { shader: &SHADER, entry: "matmul_tiled", bindings: MATMUL_BINDINGS };
static COLUMN_SUM: KernelSpec =
    KernelSpec { shader: &SHADER, entry: "column_sum", bindings: &[(2, Read), (4, ReadWrite)] };

/// `MAX_ROWS` of the shader: the most rows one `matmul` workgroup may hold.
const MAX_ROWS: u32 = 8;
/// Side of one invocation's register tile in `matmul_tiled` (`REG` of the shader).
const TILED_REGISTER_TILE: u32 = 4;
/// Invocations per workgroup of `column_sum`: one per column, so any size that fills SIMD lanes.
const COLUMN_SUM_WG: u32 = 64;

const HAS_BIAS: u32 = 1;
const RELU: u32 = 2;

/// Uniform block of `matmul.wgsl` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    a_row_stride: u32,
    a_col_stride: u32,
    b_row_stride: u32,
    b_col_stride: u32,
}

/// A matrix read through strides: element `(row, col)` is
/// `tensor[row * row_stride + col * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub tensor: &'a GpuTensor,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix of `cols` columns.
    pub fn row_major(tensor: &'a GpuTensor, cols: usize) -> Self {
        Self { tensor, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major matrix of `stored_cols` columns: `(row, col)` reads the stored
    /// element `[col][row]`.
    pub fn transposed(tensor: &'a GpuTensor, stored_cols: usize) -> Self {
        Self { tensor, row_stride: 1, col_stride: stored_cols }
    }

    /// Fails unless every element of a `rows x cols` view lies inside the tensor.
    fn check(&self, what: &str, rows: usize, cols: usize) -> Result<()> {
        let last = (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
        if last >= self.tensor.len() {
            return Err(Error::Invalid(format!(
                "matmul operand {what}: a {rows}x{cols} view with strides ({}, {}) reaches element \
                 {last}, but the tensor of shape {:?} has {}",
                self.row_stride,
                self.col_stride,
                self.tensor.shape(),
                self.tensor.len()
            )));
        }
        Ok(())
    }
}

/// `c = a @ b (+ bias) (then ReLU)` with `a` M x K, `b` K x N, `c` M x N row-major, `bias` N.
#[derive(Clone, Copy, Debug)]
pub struct Matmul<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Operand<'a>,
    pub b: Operand<'a>,
    pub bias: Option<&'a GpuTensor>,
    pub relu: bool,
    pub c: &'a GpuTensor,
}

impl<'a> Matmul<'a> {
    /// The dense forward pass `y = x @ w + b`, then ReLU if `relu`.
    pub fn forward(
        shape: &DenseShape,
        x: &'a GpuTensor,
        w: &'a GpuTensor,
        b: &'a GpuTensor,
        y: &'a GpuTensor,
        relu: bool,
    ) -> Result<Self> {
        check_dense(shape)?;
        check_matrix("dense x", x, shape.batch, shape.inputs)?;
        check_matrix("dense w", w, shape.inputs, shape.outputs)?;
        check_matrix("dense b", b, shape.outputs, 1)?;
        check_matrix("dense y", y, shape.batch, shape.outputs)?;
        Ok(Self {
            m: shape.batch,
            n: shape.outputs,
            k: shape.inputs,
            a: Operand::row_major(x, shape.inputs),
            b: Operand::row_major(w, shape.outputs),
            bias: Some(b),
            relu,
            c: y,
        })
    }

    /// The input gradient `dx = dy @ w^T`.
    pub fn backward_input(shape: &DenseShape, dy: &'a GpuTensor, w: &'a GpuTensor, dx: &'a GpuTensor) -> Result<Self> {
        check_dense(shape)?;
        check_matrix("dense dy", dy, shape.batch, shape.outputs)?;
        check_matrix("dense w", w, shape.inputs, shape.outputs)?;
        check_matrix("dense dx", dx, shape.batch, shape.inputs)?;
        Ok(Self {
            m: shape.batch,
            n: shape.inputs,
            k: shape.outputs,
            a: Operand::row_major(dy, shape.outputs),
            b: Operand::transposed(w, shape.outputs),
            bias: None,
            relu: false,
            c: dx,
        })
    }

    /// The weight gradient `dw = x^T @ dy`, summed over the batch.
    pub fn backward_weight(shape: &DenseShape, x: &'a GpuTensor, dy: &'a GpuTensor, dw: &'a GpuTensor) -> Result<Self> {
        check_dense(shape)?;
        check_matrix("dense x", x, shape.batch, shape.inputs)?;
        check_matrix("dense dy", dy, shape.batch, shape.outputs)?;
        check_matrix("dense dw", dw, shape.inputs, shape.outputs)?;
        Ok(Self {
            m: shape.inputs,
            n: shape.outputs,
            k: shape.batch,
            a: Operand::transposed(x, shape.inputs),
            b: Operand::row_major(dy, shape.outputs),
            bias: None,
            relu: false,
            c: dw,
        })
    }

    fn params(&self) -> Result<MatmulParams> {
        if self.m == 0 || self.n == 0 || self.k == 0 {
            return Err(Error::Invalid(format!(
                "matmul: sizes must be positive, got m {} n {} k {}",
                self.m, self.n, self.k
            )));
        }
        self.a.check("a", self.m, self.k)?;
        self.b.check("b", self.k, self.n)?;
        if self.c.len() != self.m * self.n {
            return Err(Error::shape("matmul c", [self.m, self.n], self.c.shape()));
        }
        if let Some(bias) = self.bias
            && bias.len() != self.n
        {
            return Err(Error::shape("matmul bias", [self.n], bias.shape()));
        }
        let flags = if self.bias.is_some() { HAS_BIAS } else { 0 } | if self.relu { RELU } else { 0 };
        // Every index the kernel forms is at most the last element of a tensor checked above,
        // and tensors fit one binding, so these fit u32; converting checked anyway.
        Ok(MatmulParams {
            m: to_u32(self.m)?,
            n: to_u32(self.n)?,
            k: to_u32(self.k)?,
            flags,
            a_row_stride: to_u32(self.a.row_stride)?,
            a_col_stride: to_u32(self.a.col_stride)?,
            b_row_stride: to_u32(self.b.row_stride)?,
            b_col_stride: to_u32(self.b.col_stride)?,
        })
    }
}

/// Which `matmul.wgsl` entry point runs, and its tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulVariant {
    /// `matmul`: `wg` invocations across output columns, `rows` (at most 8) output rows per
    /// workgroup in scalar accumulators, the A operand broadcast from workgroup-uniform loads.
    Broadcast { wg: u32, rows: u32 },
    /// `matmul_tiled`: `tile x tile` invocations each holding a 4x4 register tile, operands
    /// staged through workgroup memory in `tile`-deep slices.
    Tiled { tile: u32 },
}

impl MatmulVariant {
    /// The matmul of a kernel variant.
    ///
    /// Software kernels (lavapipe): an invocation is one SIMD lane and a workgroup runs on one
    /// CPU thread, so register tiles spill and workgroup memory buys nothing; the broadcast kernel
    /// with 64 columns x 8 rows did best on a 1024^3 product (about 1.6 GFLOP/s per core; 4 rows
    /// 1.25, the tiled kernel 1.0; 32 or 128 columns within noise of 64).
    /// Tiled kernels (GPUs): the classic shared-memory tiling, 16 x 16 invocations computing a
    /// 64 x 64 block, so each operand element loaded from memory serves 64 multiply-adds.
    pub fn for_kernels(kernels: KernelVariant) -> Self {
        match kernels {
            KernelVariant::Software => MatmulVariant::Broadcast { wg: 64, rows: 8 },
            KernelVariant::Tiled => MatmulVariant::Tiled { tile: 16 },
        }
    }
}

/// `c = a @ b (+ bias) (then ReLU)` with the variant of `gpu`'s kernels.
pub fn matmul(gpu: &Gpu, product: &Matmul) -> Result<Dispatch> {
    matmul_with(gpu, product, MatmulVariant::for_kernels(gpu.kernels))
}

/// `c = a @ b (+ bias) (then ReLU)` with an explicit variant (tests and tuning run every variant
/// on whatever adapter they have).
pub fn matmul_with(gpu: &Gpu, product: &Matmul, variant: MatmulVariant) -> Result<Dispatch> {
    let params = product.params()?;
    let (spec, constants, block_cols, block_rows) = match variant {
        MatmulVariant::Broadcast { wg, rows } => {
            if wg == 0 || rows == 0 || rows > MAX_ROWS {
                return Err(Error::Invalid(format!("matmul: {variant:?} needs wg > 0 and 1 <= rows <= {MAX_ROWS}")));
            }
            (&MATMUL, vec![("WG", f64::from(wg)), ("ROWS", f64::from(rows))], wg, rows)
        }
        MatmulVariant::Tiled { tile } => {
            if tile == 0 || tile * tile > gpu.limits.max_compute_invocations_per_workgroup {
                return Err(Error::Invalid(format!(
                    "matmul: {variant:?} needs 0 < tile * tile <= {}",
                    gpu.limits.max_compute_invocations_per_workgroup
                )));
            }
            let block = tile * TILED_REGISTER_TILE;
            (&MATMUL_TILED, vec![("TILE", f64::from(tile))], block, block)
        }
    };
    let workgroups = [params.n.div_ceil(block_cols), params.m.div_ceil(block_rows), 1];
    if workgroups[0] > MAX_WORKGROUPS_PER_DIM || workgroups[1] > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::Invalid(format!(
            "matmul: {} x {} output needs {workgroups:?} workgroups of {variant:?}, over the \
             limit of {MAX_WORKGROUPS_PER_DIM} per dimension",
            product.m, product.n
        )));
    }
    let kernel = gpu.kernel(spec, &constants)?;
    // Without a bias the kernel never reads binding 3; A stands in so the layout stays one.
    let bias = product.bias.unwrap_or(product.a.tensor);
    gpu.dispatch(&kernel, &params, &[product.a.tensor, product.b.tensor, bias, product.c], workgroups)
}

/// Dense forward: `y = x @ w + b`, then ReLU if `relu` (the ReLU's backward then reads `y`).
/// `x` and `y` may have any shape whose leading dimension is the batch (e.g. an NCHW activation
/// feeding the layer without a flatten); `w` is [inputs, outputs], `b` is \[outputs\].
pub fn forward(
    gpu: &Gpu,
    shape: &DenseShape,
    x: &GpuTensor,
    w: &GpuTensor,
    b: &GpuTensor,
    y: &GpuTensor,
    relu: bool,
) -> Result<Dispatch> {
    matmul(gpu, &Matmul::forward(shape, x, w, b, y, relu)?)
}

/// Dense input gradient: `dx = dy @ w^T`.
pub fn backward_input(
    gpu: &Gpu,
    shape: &DenseShape,
    dy: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Dispatch> {
    matmul(gpu, &Matmul::backward_input(shape, dy, w, dx)?)
}

/// Dense weight gradient: `dw = x^T @ dy` (overwrites `dw`).
pub fn backward_weight(
    gpu: &Gpu,
    shape: &DenseShape,
    x: &GpuTensor,
    dy: &GpuTensor,
    dw: &GpuTensor,
) -> Result<Dispatch> {
    matmul(gpu, &Matmul::backward_weight(shape, x, dy, dw)?)
}

/// Dense bias gradient: `db[o] = sum over the batch of dy[b][o]`, in batch order (overwrites `db`).
pub fn backward_bias(gpu: &Gpu, shape: &DenseShape, dy: &GpuTensor, db: &GpuTensor) -> Result<Dispatch> {
    check_dense(shape)?;
    check_matrix("dense dy", dy, shape.batch, shape.outputs)?;
    check_matrix("dense db", db, shape.outputs, 1)?;
    let params = MatmulParams {
        m: 1,
        n: to_u32(shape.outputs)?,
        k: to_u32(shape.batch)?,
        flags: 0,
        a_row_stride: 0,
        a_col_stride: 0,
        b_row_stride: to_u32(shape.outputs)?,
        b_col_stride: 1,
    };
    let kernel = gpu.kernel(&COLUMN_SUM, &[("WG", f64::from(COLUMN_SUM_WG))])?;
    gpu.dispatch(&kernel, &params, &[dy, db], elementwise_grid(shape.outputs, COLUMN_SUM_WG))
}

fn check_dense(shape: &DenseShape) -> Result<()> {
    if shape.batch == 0 || shape.inputs == 0 || shape.outputs == 0 {
        return Err(Error::Invalid(format!("dense: every size must be positive, got {shape:?}")));
    }
    Ok(())
}

/// Fails unless `t` has leading dimension `rows` and `rows * cols` elements.
fn check_matrix(what: &str, t: &GpuTensor, rows: usize, cols: usize) -> Result<()> {
    if t.shape().first() != Some(&rows) || t.len() != rows * cols {
        return Err(Error::shape(what, [rows, cols], t.shape()));
    }
    Ok(())
}

fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Invalid(format!("matmul: size {v} does not fit in u32")))
}

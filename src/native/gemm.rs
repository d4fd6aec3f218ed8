//! The native backend's one matrix multiply: the `gemm` crate's kernels behind a checked, safe
//! call. The kernel set is chosen at run time, [`CpuKernels::in_use`]: AVX-512 where the CPU has it,
//! else AVX2+FMA, else portable code, and `WGCNN_CPU_KERNELS` narrows it (so an AVX-512 machine
//! tests the AVX2 path too). The product runs on the calling thread; the backend splits work
//! across cores itself, in fixed pieces, so a product's bits do not depend on the thread count
//! (they do depend on the kernel set: its vector width orders the sums).

use std::sync::OnceLock;

use gemm_common::gemm::gemm_basic_generic;
use gemm_common::simd::MixedSimd;

/// The environment variable that narrows the kernel set: `avx512`, `avx2`, `portable` or `auto`.
pub const CPU_KERNELS_ENV: &str = "WGCNN_CPU_KERNELS";

/// Which of the GEMM crate's kernel sets the native backend runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuKernels {
    /// Plain Rust, one value at a time (any CPU).
    Portable,
    /// 256-bit AVX2 with FMA (x86-64-v3).
    Avx2,
    /// 512-bit AVX-512F (x86-64-v4).
    Avx512,
}

impl std::fmt::Display for CpuKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuKernels::Portable => "portable",
            CpuKernels::Avx2 => "AVX2+FMA",
            CpuKernels::Avx512 => "AVX-512",
        })
    }
}

impl CpuKernels {
    /// The widest set this CPU runs.
    pub fn detected() -> CpuKernels {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            if <gemm_common::simd::V4 as MixedSimd<f32, f32, f32, f32>>::try_new().is_some() {
                return CpuKernels::Avx512;
            }
            if <gemm_common::simd::V3 as MixedSimd<f32, f32, f32, f32>>::try_new().is_some() {
                return CpuKernels::Avx2;
            }
        }
        CpuKernels::Portable
    }

    /// The widest set this CPU runs, at most `WGCNN_CPU_KERNELS`'s when it is set; an unknown value
    /// is an error naming the variable. A narrower set than the CPU's is taken as asked; a wider
    /// one is refused.
    pub fn from_env() -> crate::Result<CpuKernels> {
        let detected = CpuKernels::detected();
        let asked = match std::env::var(CPU_KERNELS_ENV) {
            Err(_) => return Ok(detected),
            Ok(value) => match value.trim().to_ascii_lowercase().as_str() {
                "" | "auto" => return Ok(detected),
                "avx512" | "avx-512" => CpuKernels::Avx512,
                "avx2" => CpuKernels::Avx2,
                "portable" => CpuKernels::Portable,
                _ => {
                    return Err(crate::Error::Invalid(format!(
                        "{CPU_KERNELS_ENV}={value:?}: expected avx512, avx2, portable or auto"
                    )));
                }
            },
        };
        if asked > detected {
            return Err(crate::Error::Invalid(format!(
                "{CPU_KERNELS_ENV} asks for {asked} kernels, but this CPU runs {detected} at most"
            )));
        }
        Ok(asked)
    }

    /// The set every product of this process runs: [`CpuKernels::from_env`], read once (the
    /// detected set if the variable is unusable; the binary reports that error before any work).
    pub fn in_use() -> CpuKernels {
        static IN_USE: OnceLock<CpuKernels> = OnceLock::new();
        *IN_USE.get_or_init(|| CpuKernels::from_env().unwrap_or_else(|_| CpuKernels::detected()))
    }
}

/// A read-only matrix: element (i, j) is `data[i * row_stride + j * col_stride]`. A transpose is
/// the same data with the strides swapped, so no operand is ever copied to be transposed.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `rows x cols` stored row after row, each `row_stride` apart (`cols` when packed).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// The transpose of this matrix.
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Whether every element lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// `c = a * b + beta * c`, `c` stored row after row, `c_row_stride` apart. With `beta == 0`, `c`'s
/// old values are not read (stale values in a reused buffer are fine).
///
/// Panics when the operands' sizes do not match or a matrix does not fit its slice: the backend's own
/// bookkeeping computed them from checked shapes, so that is a bug, never an input error.
pub fn matmul(a: Matrix, b: Matrix, beta: f32, c: &mut [f32], c_row_stride: usize) {
    matmul_with(CpuKernels::in_use(), a, b, beta, c, c_row_stride)
}

/// [`matmul`] with the kernel set `kernels` (a set wider than the CPU's runs the widest it has).
fn matmul_with(kernels: CpuKernels, a: Matrix, b: Matrix, beta: f32, c: &mut [f32], c_row_stride: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: {m}x{k} times {}x{n}", b.rows);
    assert!(a.fits() && b.fits(), "matmul: an operand does not fit its slice");
    assert!(m == 0 || n == 0 || (m - 1) * c_row_stride + n <= c.len(), "matmul: the product does not fit its slice");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.chunks_mut(c_row_stride).take(m).for_each(|row| row[..n].iter_mut().for_each(|v| *v *= beta));
        return;
    }
    let stride = |s: usize| isize::try_from(s).expect("a slice's strides fit isize");
    // The kernels want the destination's columns contiguous, as `gemm::gemm` arranges it: c is row
    // major, so the product is computed as c^T = b^T a^T, c^T column major.
    let product = Product {
        m: n,
        n: m,
        k,
        dst: c.as_mut_ptr(),
        dst_cs: stride(c_row_stride),
        dst_rs: 1,
        read_dst: beta != 0.0,
        lhs: b.data.as_ptr(),
        lhs_cs: stride(b.row_stride),
        lhs_rs: stride(b.col_stride),
        rhs: a.data.as_ptr(),
        rhs_cs: stride(a.row_stride),
        rhs_rs: stride(a.col_stride),
        alpha: beta,
    };
    // SAFETY: every element the kernels read or write lies inside the slices: checked above for a
    // and b by `fits`, and for c (rows `c_row_stride` apart, column stride 1) by the last assert.
    // They only read `lhs` and `rhs`, and do not read c when beta is 0.
    unsafe { product.run(kernels) }
}

/// One call of the kernels: `dst = alpha * dst + lhs * rhs` in the kernels' own terms.
struct Product {
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
    alpha: f32,
}

/// Runs `$product` with the microkernels of `gemm_f32::microkernel::$set` on `$simd`, as the
/// crate's own dispatch does for the set it detects.
macro_rules! run_with {
    ($product:expr, $set:ident, $simd:expr, $lanes:expr) => {{
        use gemm_f32::microkernel::$set::f32 as kernels;
        let p = $product;
        gemm_basic_generic::<
            _,
            f32,
            $lanes,
            { kernels::MR_DIV_N * $lanes },
            { kernels::NR },
            { kernels::MR_DIV_N },
            { kernels::H_M },
            { kernels::H_N },
        >(
            $simd,
            p.m,
            p.n,
            p.k,
            p.dst,
            p.dst_cs,
            p.dst_rs,
            p.read_dst,
            p.lhs,
            p.lhs_cs,
            p.lhs_rs,
            p.rhs,
            p.rhs_cs,
            p.rhs_rs,
            p.alpha,
            1.0,
            false,
            false,
            false,
            |a, b, c| a * b + c,
            &kernels::UKR,
            &kernels::H_UKR,
            false,
            gemm_common::Parallelism::None,
        )
    }};
}

impl Product {
    /// # Safety
    /// The pointers and strides must describe matrices inside live allocations, `dst` not aliasing
    /// the others.
    unsafe fn run(&self, kernels: CpuKernels) {
        // SAFETY: as the caller promises; each set runs only when its SIMD type says the CPU has it.
        unsafe {
            match kernels {
                #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
                CpuKernels::Avx512 => match <gemm_common::simd::V4 as MixedSimd<f32, f32, f32, f32>>::try_new() {
                    Some(simd) => run_with!(self, avx512f, simd, 16),
                    None => self.run(CpuKernels::Avx2),
                },
                #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
                CpuKernels::Avx2 => match <gemm_common::simd::V3 as MixedSimd<f32, f32, f32, f32>>::try_new() {
                    Some(simd) => run_with!(self, fma, simd, 8),
                    None => self.run(CpuKernels::Portable),
                },
                _ => {
                    let simd = <gemm_common::simd::Scalar as MixedSimd<f32, f32, f32, f32>>::try_new();
                    run_with!(self, scalar, simd.expect("the portable kernels run anywhere"), 1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `c = a b + beta c` in f64, element by element.
    fn naive(a: Matrix, b: Matrix, beta: f32, c: &[f32], c_row_stride: usize) -> Vec<f64> {
        let at = |m: &Matrix, i: usize, j: usize| f64::from(m.data[i * m.row_stride + j * m.col_stride]);
        let mut out = Vec::new();
        for i in 0..a.rows {
            for j in 0..b.cols {
                let sum: f64 = (0..a.cols).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
                out.push(sum + f64::from(beta) * f64::from(c[i * c_row_stride + j]));
            }
        }
        out
    }

    fn values(seed: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 - 0.5)
            .collect()
    }

    /// Every kernel set this CPU runs gives the product within rounding, at ragged shapes, with a
    /// transposed operand and a strided product, with and without the old `c`.
    #[test]
    fn every_kernel_set_this_cpu_runs_multiplies_right() {
        let sets = [CpuKernels::Portable, CpuKernels::Avx2, CpuKernels::Avx512];
        let runnable: Vec<CpuKernels> = sets.into_iter().filter(|set| *set <= CpuKernels::detected()).collect();
        assert!(runnable.contains(&CpuKernels::Portable));
        for &(m, k, n) in &[(1, 1, 1), (3, 27, 1000), (16, 27, 257), (33, 144, 65), (64, 5, 3), (7, 300, 31)] {
            let a_data = values(1, m * k);
            let b_data = values(2, n * k);
            let a = Matrix::rows(&a_data, m, k, k);
            // b stored as its transpose, n x k, read through swapped strides.
            let b = Matrix::rows(&b_data, n, k, k).t();
            let c_row_stride = n + 3;
            for beta in [0.0, 1.5] {
                let old = values(3, m * c_row_stride);
                let want = naive(a, b, beta, &old, c_row_stride);
                for &set in &runnable {
                    // Stale values are not read when beta is 0.
                    let mut c = if beta == 0.0 { vec![f32::NAN; old.len()] } else { old.clone() };
                    matmul_with(set, a, b, beta, &mut c, c_row_stride);
                    for i in 0..m {
                        for j in 0..n {
                            let (got, want) = (f64::from(c[i * c_row_stride + j]), want[i * n + j]);
                            assert!(
                                (got - want).abs() <= 1e-5 * (k as f64).sqrt() + 1e-6,
                                "{set} {m}x{k}x{n} beta {beta} at ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

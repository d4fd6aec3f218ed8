//! The native backend's one matrix multiply: the `gemm` crate behind a checked, safe call. Its
//! kernels are chosen at run time (AVX-512, AVX2+FMA, NEON or portable) and it runs on the calling
//! thread (`Parallelism::None`); the backend splits work across cores itself, in fixed pieces, so
//! a product's bits do not depend on the thread count.

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
    // SAFETY: every element gemm reads or writes lies inside the slices: checked above for a and
    // b by `fits`, and for c (rows `c_row_stride` apart, column stride 1) by the last assert. gemm
    // takes `lhs` and `rhs` as *const and only reads them; `c` is not read when beta is 0.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            stride(c_row_stride),
            beta != 0.0,
            a.data.as_ptr(),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.col_stride),
            stride(b.row_stride),
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

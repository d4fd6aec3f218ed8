//! A dense layer as GEMMs, `x` [batch, inputs] times `w` [inputs, outputs] (Keras's layout), split
//! across cores in blocks of rows of the result: every element is one GEMM's dot product, so the
//! bits do not depend on the thread count.

use rayon::prelude::*;

use super::gemm::{Matrix, matmul};
use crate::shape::DenseShape;

/// Rows of the result per task: small enough to spread a batch over the cores.
const ROWS_PER_TASK: usize = 8;
/// Rows of the weight gradient per task (inputs).
const INPUTS_PER_TASK: usize = 256;

/// `y = x @ w + b`, then max(y, 0) if `relu`, as [`crate::reference::dense::forward`].
pub fn forward(s: &DenseShape, x: &[f32], w: &[f32], b: &[f32], relu: bool, y: &mut [f32]) {
    let weights = Matrix::rows(w, s.inputs, s.outputs, s.outputs);
    y.par_chunks_mut(ROWS_PER_TASK * s.outputs).enumerate().for_each(|(task, y)| {
        let rows = y.len() / s.outputs;
        let x = &x[task * ROWS_PER_TASK * s.inputs..];
        matmul(Matrix::rows(x, rows, s.inputs, s.inputs), weights, 0.0, y, s.outputs);
        for y in y.chunks_exact_mut(s.outputs) {
            y.iter_mut().zip(b).for_each(|(v, &b)| *v = if relu { (*v + b).max(0.0) } else { *v + b });
        }
    });
}

/// `dx = dy @ w^T`, as [`crate::reference::dense::backward_input`].
pub fn backward_input(s: &DenseShape, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let weights_t = Matrix::rows(w, s.inputs, s.outputs, s.outputs).t();
    dx.par_chunks_mut(ROWS_PER_TASK * s.inputs).enumerate().for_each(|(task, dx)| {
        let rows = dx.len() / s.inputs;
        let dy = &dy[task * ROWS_PER_TASK * s.outputs..];
        matmul(Matrix::rows(dy, rows, s.outputs, s.outputs), weights_t, 0.0, dx, s.inputs);
    });
}

/// `dw = x^T @ dy` and `db = sum of dy over the batch`, as
/// [`crate::reference::dense::backward_weight`] and `_bias`.
pub fn backward_params(s: &DenseShape, x: &[f32], dy: &[f32], dw: &mut [f32], db: &mut [f32]) {
    let dy_m = Matrix::rows(dy, s.batch, s.outputs, s.outputs);
    dw.par_chunks_mut(INPUTS_PER_TASK * s.outputs).enumerate().for_each(|(task, dw)| {
        let first = task * INPUTS_PER_TASK;
        let rows = dw.len() / s.outputs;
        // x^T's rows first..first + rows: x's columns, x[b, i] at b * inputs + i.
        let x_t = Matrix { data: &x[first..], rows, cols: s.batch, row_stride: 1, col_stride: s.inputs };
        matmul(x_t, dy_m, 0.0, dw, s.outputs);
    });
    db.fill(0.0);
    for dy in dy.chunks_exact(s.outputs) {
        db.iter_mut().zip(dy).for_each(|(d, &g)| *d += g);
    }
}

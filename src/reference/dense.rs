//! Dense (fully connected) layers, `y = x @ w + b` in Keras's layout: `x` [batch, inputs],
//! `w` [inputs, outputs], `b` \[outputs\], `y` [batch, outputs], all row-major.
//!
//! Every output is a sum taken in ascending order of the reduced index, as the GPU kernel does.
//! The functions panic if a slice's length does not match `shape` (a bug of the caller).

use super::Real;
use crate::shape::DenseShape;

fn check_len<T>(what: &str, v: &[T], len: usize) {
    assert_eq!(v.len(), len, "dense {what}: expected {len} elements");
}

/// `y = x @ w + b`, then `max(y, 0)` if `relu`.
pub fn forward<T: Real>(shape: &DenseShape, x: &[T], w: &[T], b: &[T], relu: bool) -> Vec<T> {
    let DenseShape { batch, inputs, outputs } = *shape;
    check_len("x", x, batch * inputs);
    check_len("w", w, inputs * outputs);
    check_len("b", b, outputs);
    let mut y = vec![T::zero(); batch * outputs];
    for n in 0..batch {
        let y_row = &mut y[n * outputs..(n + 1) * outputs];
        for i in 0..inputs {
            let x_ni = x[n * inputs + i];
            for o in 0..outputs {
                y_row[o] = y_row[o] + x_ni * w[i * outputs + o];
            }
        }
        for o in 0..outputs {
            y_row[o] = y_row[o] + b[o];
            if relu {
                y_row[o] = y_row[o].max(T::zero());
            }
        }
    }
    y
}

/// `dx = dy @ w^T`: `dx[n][i] = sum_o dy[n][o] * w[i][o]`.
pub fn backward_input<T: Real>(shape: &DenseShape, dy: &[T], w: &[T]) -> Vec<T> {
    let DenseShape { batch, inputs, outputs } = *shape;
    check_len("dy", dy, batch * outputs);
    check_len("w", w, inputs * outputs);
    let mut dx = vec![T::zero(); batch * inputs];
    for n in 0..batch {
        for i in 0..inputs {
            let mut sum = T::zero();
            for o in 0..outputs {
                sum = sum + dy[n * outputs + o] * w[i * outputs + o];
            }
            dx[n * inputs + i] = sum;
        }
    }
    dx
}

/// `dw = x^T @ dy`: `dw[i][o] = sum_n x[n][i] * dy[n][o]`.
pub fn backward_weight<T: Real>(shape: &DenseShape, x: &[T], dy: &[T]) -> Vec<T> {
    let DenseShape { batch, inputs, outputs } = *shape;
    check_len("x", x, batch * inputs);
    check_len("dy", dy, batch * outputs);
    let mut dw = vec![T::zero(); inputs * outputs];
    for n in 0..batch {
        for i in 0..inputs {
            let x_ni = x[n * inputs + i];
            for o in 0..outputs {
                dw[i * outputs + o] = dw[i * outputs + o] + x_ni * dy[n * outputs + o];
            }
        }
    }
    dw
}

/// `db[o] = sum_n dy[n][o]`.
pub fn backward_bias<T: Real>(shape: &DenseShape, dy: &[T]) -> Vec<T> {
    let DenseShape { batch, outputs, .. } = *shape;
    check_len("dy", dy, batch * outputs);
    let mut db = vec![T::zero(); outputs];
    for n in 0..batch {
        for o in 0..outputs {
            db[o] = db[o] + dy[n * outputs + o];
        }
    }
    db
}

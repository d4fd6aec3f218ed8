//! Max-pooling 2-D (valid padding), with the argmax the backward pass gathers through.
//!
//! The argmax of an output is the flat index of the chosen element in the whole input tensor
//! (`((n * channels + c) * in_h + h) * in_w + w`). Which element a window chooses:
//! - the first maximum in row-major window order (a later element must be strictly greater to
//!   replace it), so a window of equal values chooses its top-left element;
//! - a NaN propagates: the first NaN in window order is chosen, so a diverged network shows NaN
//!   instead of having it silently pooled away.

use super::Real;
use crate::Result;
use crate::error::Error;
use crate::shape::Pool2dShape;

/// Whether `candidate` replaces `best` as the window's choice (see the module doc).
fn replaces<T: Real>(candidate: T, best: T) -> bool {
    !best.is_nan() && (candidate.is_nan() || candidate > best)
}

/// `y[n, c, oy, ox] = max of x over the window at (oy * stride, ox * stride)`, and the flat index
/// into `x` of the element chosen. Both are [batch, channels, out_h, out_w].
pub fn forward<T: Real>(shape: &Pool2dShape, x: &[T]) -> Result<(Vec<T>, Vec<u32>)> {
    shape.validate()?;
    check_len("max_pool2d x", &shape.input_dims(), x.len())?;
    let (in_h, in_w, out_h, out_w) = (shape.in_h, shape.in_w, shape.out_h(), shape.out_w());
    let mut y = Vec::new();
    let mut argmax = Vec::new();
    for plane in 0..shape.batch * shape.channels {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let top_left = (plane * in_h + oy * shape.stride) * in_w + ox * shape.stride;
                let mut best_at = top_left;
                for ky in 0..shape.pool {
                    for kx in 0..shape.pool {
                        let at = top_left + ky * in_w + kx;
                        if replaces(x[at], x[best_at]) {
                            best_at = at;
                        }
                    }
                }
                y.push(x[best_at]);
                argmax.push(best_at as u32);
            }
        }
    }
    Ok((y, argmax))
}

/// `dx[i] = sum of dy over the outputs whose argmax is i`, added in output order (the order the
/// GPU gather adds them in, so f32 results agree bit for bit).
pub fn backward<T: Real>(shape: &Pool2dShape, argmax: &[u32], dy: &[T]) -> Result<Vec<T>> {
    shape.validate()?;
    check_len("max_pool2d argmax", &shape.output_dims(), argmax.len())?;
    check_len("max_pool2d dy", &shape.output_dims(), dy.len())?;
    let mut dx = vec![T::zero(); shape.input_dims().iter().product()];
    for (&at, &g) in argmax.iter().zip(dy) {
        let slot = dx.get_mut(at as usize).ok_or_else(|| {
            Error::Invalid(format!("max_pool2d argmax {at} is outside the input of shape {:?}", shape.input_dims()))
        })?;
        *slot = *slot + g;
    }
    Ok(dx)
}

/// [`backward`] after the backward pass of a ReLU before the pool: a window passes its
/// gradient only where its maximum `y` (the ReLU output it chose) is positive.
pub fn backward_relu<T: Real>(shape: &Pool2dShape, argmax: &[u32], y: &[T], dy: &[T]) -> Result<Vec<T>> {
    check_len("max_pool2d y", &shape.output_dims(), y.len())?;
    backward(shape, argmax, &super::activation::relu_backward(y, dy))
}

fn check_len(what: &str, dims: &[usize; 4], len: usize) -> Result<()> {
    if dims.iter().product::<usize>() != len {
        return Err(Error::shape(what, dims, format!("{len} elements")));
    }
    Ok(())
}

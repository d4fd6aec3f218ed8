//! Inverted dropout, as Keras: in training each element is zeroed with probability `rate` and the
//! kept ones are scaled by `1 / (1 - rate)`; at inference dropout is the identity and no kernel runs.
//!
//! The mask is not stored. Element `i` of the mask of (`seed`, `step`) comes from a stateless hash
//! of (i, step, seed) that the GPU kernel computes identically, so both backends drop the same
//! elements bit for bit and the backward pass recomputes the mask of its forward pass.

use super::{Real, real};
use crate::Result;
use crate::shape::DropoutConfig;

/// The keep mask of `len` elements.
pub fn mask(config: &DropoutConfig, len: usize) -> Result<Vec<bool>> {
    let len = config.validate(len)?;
    Ok((0..len).map(|i| config.keeps(i)).collect())
}

/// `y = x * keep * scale`.
pub fn forward<T: Real>(config: &DropoutConfig, x: &[T]) -> Result<Vec<T>> {
    apply_mask(config, x)
}

/// `dx = dy * keep * scale`, with the mask of the forward pass recomputed from (`seed`, `step`).
pub fn backward<T: Real>(config: &DropoutConfig, dy: &[T]) -> Result<Vec<T>> {
    apply_mask(config, dy)
}

/// Dropout is linear in its input, so forward and backward apply the same masked scaling.
fn apply_mask<T: Real>(config: &DropoutConfig, v: &[T]) -> Result<Vec<T>> {
    let mask = mask(config, v.len())?;
    let scale: T = real(f64::from(config.scale()));
    Ok(v.iter().zip(mask).map(|(&v, keep)| if keep { v * scale } else { T::zero() }).collect())
}

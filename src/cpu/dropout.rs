//! Inverted dropout, as Keras: in training each element is zeroed with probability `rate` and the
//! kept ones are scaled by `1 / (1 - rate)`; at inference dropout is the identity and no kernel runs.
//!
//! The mask is not stored. Element `i` of the mask of (`seed`, `step`) comes from a stateless hash
//! of (i, step, seed) that the GPU kernel computes identically, so both backends drop the same
//! elements bit for bit and the backward pass recomputes the mask of its forward pass.

use super::{Real, real};
use crate::Result;
use crate::error::Error;

/// Dropout's rate and the key of one mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutConfig {
    /// Probability that an element is zeroed, in [0, 1).
    pub rate: f32,
    /// Seed of the run.
    pub seed: u64,
    /// Training step (or any counter): each step draws a new mask from the same seed.
    pub step: u32,
}

impl DropoutConfig {
    /// Checks the rate and that `len` elements can be indexed by the u32 the hash takes, and
    /// returns `len` as that u32.
    pub fn validate(&self, len: usize) -> Result<u32> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::Invalid(format!("dropout: the rate must be in [0, 1), got {}", self.rate)));
        }
        u32::try_from(len)
            .map_err(|_| Error::Invalid(format!("dropout: {len} elements, over the 2^32 the mask indexes")))
    }

    /// Elements whose hash is below this are dropped: `round(rate * 2^32)`, so the test is done in
    /// integers and the CPU and GPU cannot round it differently.
    pub fn threshold(&self) -> u32 {
        // Exact in f64; below 2^32 for any f32 rate < 1 (at most 1 - 2^-24).
        (f64::from(self.rate) * 4294967296.0).round() as u32
    }

    /// `1 / (1 - rate)` in f32, the factor both backends multiply kept elements by.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.rate)
    }

    /// Whether element `index` is kept.
    pub fn keeps(&self, index: u32) -> bool {
        dropout_hash(self.seed, self.step, index) >= self.threshold()
    }
}

/// A uniform u32 for element `index` of the mask of (`seed`, `step`): the first word of pcg4d
/// (Jarzynski and Olano, "Hash Functions for GPU Rendering", JCGT 2020) of
/// (index, step, seed low word, seed high word). `shaders/dropout.wgsl` computes the same.
pub fn dropout_hash(seed: u64, step: u32, index: u32) -> u32 {
    let mut v =
        [index, step, seed as u32, (seed >> 32) as u32].map(|c| c.wrapping_mul(1664525).wrapping_add(1013904223));
    let mix = |v: &mut [u32; 4]| {
        v[0] = v[0].wrapping_add(v[1].wrapping_mul(v[3]));
        v[1] = v[1].wrapping_add(v[2].wrapping_mul(v[0]));
        v[2] = v[2].wrapping_add(v[0].wrapping_mul(v[1]));
        v[3] = v[3].wrapping_add(v[1].wrapping_mul(v[2]));
    };
    mix(&mut v);
    v = v.map(|c| c ^ (c >> 16));
    mix(&mut v);
    v[0]
}

/// The keep mask of `len` elements.
pub fn dropout_mask(config: &DropoutConfig, len: usize) -> Result<Vec<bool>> {
    let len = config.validate(len)?;
    Ok((0..len).map(|i| config.keeps(i)).collect())
}

/// `y = x * keep * scale`.
pub fn dropout_forward<T: Real>(config: &DropoutConfig, x: &[T]) -> Result<Vec<T>> {
    apply_mask(config, x)
}

/// `dx = dy * keep * scale`, with the mask of the forward pass recomputed from (`seed`, `step`).
pub fn dropout_backward<T: Real>(config: &DropoutConfig, dy: &[T]) -> Result<Vec<T>> {
    apply_mask(config, dy)
}

/// Dropout is linear in its input, so forward and backward apply the same masked scaling.
fn apply_mask<T: Real>(config: &DropoutConfig, v: &[T]) -> Result<Vec<T>> {
    let mask = dropout_mask(config, v.len())?;
    let scale: T = real(f64::from(config.scale()));
    Ok(v.iter().zip(mask).map(|(&v, keep)| if keep { v * scale } else { T::zero() }).collect())
}

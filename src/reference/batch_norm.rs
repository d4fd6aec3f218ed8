//! Batch normalisation over the channels of [batch, channels, spatial] (Keras's
//! `BatchNormalization` on NCHW data): statistics per channel over the batch and spatial positions.
//!
//! Training mode normalises with the batch mean and biased variance (as `tf.nn.moments` gives them)
//! and moves the running statistics towards them; inference mode normalises with the running
//! statistics. Indexing: element (n, c, s) is at `(n * channels + c) * spatial + s`.

use super::{Real, real};
use crate::error::Result;
use crate::shape::{BatchNormConfig, BatchNormShape};

/// The batch statistics training mode saves for the backward pass, one value per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedStats<T> {
    pub mean: Vec<T>,
    /// `1 / sqrt(biased batch variance + epsilon)`.
    pub inv_std: Vec<T>,
}

/// The gradients of the training-mode forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads<T> {
    pub dx: Vec<T>,
    pub dgamma: Vec<T>,
    pub dbeta: Vec<T>,
}

/// The `batch * spatial` values of channel `c`, batch-major.
fn channel_values<'a, T: Real>(shape: &BatchNormShape, x: &'a [T], c: usize) -> impl Iterator<Item = T> + 'a {
    let BatchNormShape { channels, spatial, .. } = *shape;
    (0..shape.batch).flat_map(move |n| {
        let start = (n * channels + c) * spatial;
        x[start..start + spatial].iter().copied()
    })
}

/// Training-mode forward: normalises each channel of `x` with its batch mean and biased variance,
/// then scales by `gamma` and shifts by `beta`. Returns `y` and the saved statistics, and updates
/// `running_mean`, `running_var` as `running = momentum * running + (1 - momentum) * batch_stat`.
/// The variance is a second pass, `mean((x - mean)^2)`.
pub fn forward_train<T: Real>(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &mut [T],
    running_var: &mut [T],
) -> Result<(Vec<T>, SavedStats<T>)> {
    shape.check_forward(config, &[("x", x.len())], [gamma.len(), beta.len(), running_mean.len(), running_var.len()])?;
    let count = real::<T>((shape.batch * shape.spatial) as f64);
    let epsilon = real::<T>(config.epsilon.into());
    let momentum = real::<T>(config.momentum.into());
    let mut saved =
        SavedStats { mean: Vec::with_capacity(shape.channels), inv_std: Vec::with_capacity(shape.channels) };
    for c in 0..shape.channels {
        let mean = channel_values(shape, x, c).sum::<T>() / count;
        let variance = channel_values(shape, x, c).map(|v| (v - mean) * (v - mean)).sum::<T>() / count;
        saved.mean.push(mean);
        saved.inv_std.push(T::one() / (variance + epsilon).sqrt());
        running_mean[c] = momentum * running_mean[c] + (T::one() - momentum) * mean;
        running_var[c] = momentum * running_var[c] + (T::one() - momentum) * variance;
    }
    let y = normalize(shape, x, gamma, beta, &saved.mean, &saved.inv_std);
    Ok((y, saved))
}

/// Inference-mode forward: `y = gamma * (x - running_mean) / sqrt(running_var + epsilon) + beta`.
pub fn forward_inference<T: Real>(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
) -> Result<Vec<T>> {
    shape.check_forward(config, &[("x", x.len())], [gamma.len(), beta.len(), running_mean.len(), running_var.len()])?;
    let epsilon = real::<T>(config.epsilon.into());
    let inv_std: Vec<T> = running_var.iter().map(|&v| T::one() / (v + epsilon).sqrt()).collect();
    Ok(normalize(shape, x, gamma, beta, running_mean, &inv_std))
}

/// Inference-mode backward (the gradient w.r.t. the input; explaining a prediction needs it). On
/// its running statistics batch norm is a per-channel affine map, so
/// `dx = dy * gamma / sqrt(running_var + epsilon)`: [`forward_inference`] of `dy` with a zero mean
/// and a zero beta, which is how the GPU computes it.
pub fn backward_inference<T: Real>(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    gamma: &[T],
    running_var: &[T],
    dy: &[T],
) -> Result<Vec<T>> {
    config.validate()?;
    shape.check(&[("dy", dy.len())], &[("gamma", gamma.len()), ("running_var", running_var.len())])?;
    let zeros = vec![T::zero(); shape.channels];
    forward_inference(shape, config, dy, gamma, &zeros, &zeros, running_var)
}

/// `y = gamma * (x - mean) * inv_std + beta`, channel by channel.
fn normalize<T: Real>(shape: &BatchNormShape, x: &[T], gamma: &[T], beta: &[T], mean: &[T], inv_std: &[T]) -> Vec<T> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / shape.spatial) % shape.channels;
            gamma[c] * (v - mean[c]) * inv_std[c] + beta[c]
        })
        .collect()
}

/// Training-mode backward, from the forward input `x`, `gamma`, the saved statistics and the output
/// gradient `dy`, with `xhat = (x - mean) * inv_std` recomputed and `M = batch * spatial`:
/// `dbeta[c] = sum(dy)`, `dgamma[c] = sum(dy * xhat)` over channel c, and
/// `dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma)`.
pub fn backward<T: Real>(
    shape: &BatchNormShape,
    x: &[T],
    gamma: &[T],
    saved: &SavedStats<T>,
    dy: &[T],
) -> Result<Grads<T>> {
    shape.check(
        &[("x", x.len()), ("dy", dy.len())],
        &[("gamma", gamma.len()), ("saved mean", saved.mean.len()), ("saved inv_std", saved.inv_std.len())],
    )?;
    let SavedStats { mean, inv_std } = saved;
    let xhat = |i: usize, c: usize| (x[i] - mean[c]) * inv_std[c];
    let mut dgamma = vec![T::zero(); shape.channels];
    let mut dbeta = vec![T::zero(); shape.channels];
    for c in 0..shape.channels {
        for n in 0..shape.batch {
            for s in 0..shape.spatial {
                let i = (n * shape.channels + c) * shape.spatial + s;
                dbeta[c] = dbeta[c] + dy[i];
                dgamma[c] = dgamma[c] + dy[i] * xhat(i, c);
            }
        }
    }
    let count = real::<T>((shape.batch * shape.spatial) as f64);
    let dx = (0..x.len())
        .map(|i| {
            let c = (i / shape.spatial) % shape.channels;
            gamma[c] * inv_std[c] / count * (count * dy[i] - dbeta[c] - xhat(i, c) * dgamma[c])
        })
        .collect();
    Ok(Grads { dx, dgamma, dbeta })
}

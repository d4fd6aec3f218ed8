//! Batch normalisation over the channels of [batch, channels, spatial] (Keras's
//! `BatchNormalization` on NCHW data): statistics per channel over the batch and spatial positions.
//!
//! Training mode normalises with the batch mean and biased variance (as `tf.nn.moments` gives them)
//! and moves the running statistics towards them; inference mode normalises with the running
//! statistics. Indexing: element (n, c, s) is at `(n * channels + c) * spatial + s`.

use super::{Real, real};
use crate::error::{Error, Result};
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

/// Fails unless every size of `shape` is positive, its element count fits the kernels' 32-bit
/// indices, each of the `full` tensors (name, length) holds `shape.len()` elements and each of the
/// `per_channel` ones `shape.channels`.
pub fn check_shape(shape: &BatchNormShape, full: &[(&str, usize)], per_channel: &[(&str, usize)]) -> Result<()> {
    if shape.batch == 0 || shape.channels == 0 || shape.spatial == 0 {
        return Err(Error::Invalid(format!("batch_norm: every size must be positive, got {shape:?}")));
    }
    if u32::try_from(shape.len()).is_err() {
        return Err(Error::Invalid(format!("batch_norm: {shape:?} has more elements than 32-bit indices reach")));
    }
    let expected = full
        .iter()
        .map(|&(what, len)| (what, len, shape.len()))
        .chain(per_channel.iter().map(|&(what, len)| (what, len, shape.channels)));
    for (what, len, expected) in expected {
        if len != expected {
            return Err(Error::shape(
                format!("batch_norm {what} for {shape:?}"),
                format!("{expected} elements"),
                format!("{len} elements"),
            ));
        }
    }
    Ok(())
}

/// Fails unless the momentum lies in [0, 1] and epsilon is positive (so that a channel of zero
/// variance still normalises to finite values).
pub fn check_config(config: &BatchNormConfig) -> Result<()> {
    if !(0.0..=1.0).contains(&config.momentum) || config.epsilon.is_nan() || config.epsilon <= 0.0 {
        return Err(Error::Invalid(format!(
            "batch_norm: momentum must lie in [0, 1] and epsilon be positive, got {config:?}"
        )));
    }
    Ok(())
}

/// The checks of a forward pass: `config`, then `shape` against the `full` tensors (name, length:
/// x, and y where the caller allocated it) and the lengths of gamma, beta, running mean and
/// running variance.
pub fn check_forward(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    full: &[(&str, usize)],
    [gamma, beta, running_mean, running_var]: [usize; 4],
) -> Result<()> {
    check_config(config)?;
    check_shape(
        shape,
        full,
        &[("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)],
    )
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
    check_forward(shape, config, &[("x", x.len())], [gamma.len(), beta.len(), running_mean.len(), running_var.len()])?;
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
    check_forward(shape, config, &[("x", x.len())], [gamma.len(), beta.len(), running_mean.len(), running_var.len()])?;
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
    check_config(config)?;
    check_shape(shape, &[("dy", dy.len())], &[("gamma", gamma.len()), ("running_var", running_var.len())])?;
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
    check_shape(
        shape,
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

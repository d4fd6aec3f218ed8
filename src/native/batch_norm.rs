//! Batch normalisation across cores: each channel's statistics and parameter gradients by one
//! task (summed image by image, each plane in interleaved lanes, `sum.rs`), the element-wise maps
//! plane by plane. Semantics of [`crate::reference::batch_norm`].

use rayon::prelude::*;

use super::sum::{sum, sum_pairs};
use crate::error::Result;
use crate::shape::{BatchNormConfig, BatchNormShape};

/// What the training forward pass keeps per channel for the backward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
}

/// A channel's values over the batch, image by image.
fn channel<'a>(s: &BatchNormShape, x: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
    let (channels, spatial) = (s.channels, s.spatial);
    x.chunks_exact(spatial).skip(c).step_by(channels)
}

/// `y = gamma * (x - mean) * inv_std + beta` per channel; every element of `y` is written.
fn normalize(s: &BatchNormShape, x: &[f32], gamma: &[f32], beta: &[f32], mean: &[f32], inv_std: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(s.spatial).zip(x.par_chunks(s.spatial)).enumerate().for_each(|(plane, (y, x))| {
        let c = plane % s.channels;
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = gamma[c] * (x - mean[c]) * inv_std[c] + beta[c]);
    });
}

/// Training mode: normalises `x` into `y` with the batch's statistics, moves the running ones
/// towards them, and returns the batch's.
#[allow(clippy::too_many_arguments)] // the op's tensors
pub fn forward_train(
    s: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
) -> Result<BatchStats> {
    s.check_forward(
        config,
        &[("x", x.len()), ("y", y.len())],
        [gamma.len(), beta.len(), running_mean.len(), running_var.len()],
    )?;
    let count = (s.batch * s.spatial) as f32;
    let stats: Vec<(f32, f32)> = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let mean = channel(s, x, c).map(sum).sum::<f32>() / count;
            let variance =
                channel(s, x, c).map(|x| sum_pairs(x, x, |v, _| (v - mean) * (v - mean))).sum::<f32>() / count;
            (mean, variance)
        })
        .collect();
    let mut saved = BatchStats { mean: Vec::with_capacity(s.channels), inv_std: Vec::with_capacity(s.channels) };
    let momentum = config.momentum;
    for (c, &(mean, variance)) in stats.iter().enumerate() {
        saved.mean.push(mean);
        saved.inv_std.push(1.0 / (variance + config.epsilon).sqrt());
        running_mean[c] = momentum * running_mean[c] + (1.0 - momentum) * mean;
        running_var[c] = momentum * running_var[c] + (1.0 - momentum) * variance;
    }
    normalize(s, x, gamma, beta, &saved.mean, &saved.inv_std, y);
    Ok(saved)
}

/// Inference mode: normalises `x` into `y` with the running statistics.
#[allow(clippy::too_many_arguments)] // the op's tensors
pub fn forward_inference(
    s: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) -> Result<()> {
    s.check_forward(
        config,
        &[("x", x.len()), ("y", y.len())],
        [gamma.len(), beta.len(), running_mean.len(), running_var.len()],
    )?;
    let inv_std: Vec<f32> = running_var.iter().map(|&v| 1.0 / (v + config.epsilon).sqrt()).collect();
    normalize(s, x, gamma, beta, running_mean, &inv_std, y);
    Ok(())
}

/// Inference mode's backward pass: the affine map's slope, `dx = gamma * inv_std * dy`.
pub fn backward_inference(
    s: &BatchNormShape,
    config: &BatchNormConfig,
    gamma: &[f32],
    running_var: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let zeros = vec![0.0; s.channels];
    forward_inference(s, config, dy, gamma, &zeros, &zeros, running_var, dx)
}

/// Training mode's backward pass: the input gradient into `dx`, and gamma's and beta's gradients
/// into `dgamma` and `dbeta`.
#[allow(clippy::too_many_arguments)] // the op's tensors
pub fn backward(
    s: &BatchNormShape,
    x: &[f32],
    gamma: &[f32],
    saved: &BatchStats,
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Result<()> {
    s.check(
        &[("x", x.len()), ("dy", dy.len()), ("dx", dx.len())],
        &[("gamma", gamma.len()), ("dgamma", dgamma.len()), ("dbeta", dbeta.len()), ("saved mean", saved.mean.len())],
    )?;
    let BatchStats { mean, inv_std } = saved;
    let sums: Vec<(f32, f32)> = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let (mut dbeta, mut dgamma) = (0.0f32, 0.0f32);
            for (x, dy) in channel(s, x, c).zip(channel(s, dy, c)) {
                dbeta += sum(dy);
                dgamma += sum_pairs(x, dy, |x, g| g * ((x - mean[c]) * inv_std[c]));
            }
            (dgamma, dbeta)
        })
        .collect();
    for (c, &(g, b)) in sums.iter().enumerate() {
        dgamma[c] = g;
        dbeta[c] = b;
    }
    let count = (s.batch * s.spatial) as f32;
    dx.par_chunks_mut(s.spatial).zip(x.par_chunks(s.spatial).zip(dy.par_chunks(s.spatial))).enumerate().for_each(
        |(plane, (dx, (x, dy)))| {
            let c = plane % s.channels;
            let scale = gamma[c] * inv_std[c] / count;
            for (dx, (&x, &g)) in dx.iter_mut().zip(x.iter().zip(dy)) {
                let xhat = (x - mean[c]) * inv_std[c];
                *dx = scale * (count * g - dbeta[c] - xhat * dgamma[c]);
            }
        },
    );
    Ok(())
}

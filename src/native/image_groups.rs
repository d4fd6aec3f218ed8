//! Backward passes split by groups of images, the same bits for any thread count: each group of
//! [`IMAGES_PER_TASK`] images sums its own weight-gradient partial, and the partials are then
//! added in group order. Shared by the im2col and the Winograd convolutions, as is where they read
//! each image's output gradient ([`OutputGradient`]).

use std::ops::Range;

use rayon::prelude::*;

use super::buffers::with_output_scratch;
use super::max_pool2d;
use super::sum::sum;
use crate::error::Result;
use crate::shape::Pool2dShape;

/// Where a convolution's backward pass reads its output gradient (after its ReLU's backward pass).
#[derive(Clone, Copy)]
pub enum OutputGradient<'a> {
    /// The whole batch's, [batch, out_channels, out_h, out_w].
    Given(&'a [f32]),
    /// Spread back from the 2x2 max-pool after the convolution's ReLU, one image at a time into
    /// this thread's output scratch, so the full-size gradient is never written to memory: the
    /// pool's `argmax`, its output `y` (the ReLU's mask) and its output gradient `dy`.
    Pooled { pool: &'a Pool2dShape, argmax: &'a [u32], y: &'a [f32], dy: &'a [f32] },
}

impl OutputGradient<'_> {
    /// Calls `f` with image `n`'s gradient, `len` values ([out_channels, out_h, out_w]).
    pub(super) fn image<R>(&self, n: usize, len: usize, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
        match *self {
            OutputGradient::Given(dy) => Ok(f(&dy[n * len..(n + 1) * len])),
            OutputGradient::Pooled { pool, argmax, y, dy } => with_output_scratch(len, |image| {
                max_pool2d::backward_image(pool, n, argmax, Some(y), dy, image)?;
                Ok(f(image))
            }),
        }
    }
}

/// Images whose weight gradients one task sums before the tasks' sums are added in order: few
/// enough partial sums to keep, enough tasks to keep every core busy.
const IMAGES_PER_TASK: usize = 4;

/// One task's share of a backward pass.
pub(super) struct Task<'a> {
    /// The batch indices of its images.
    pub images: Range<usize>,
    /// Its weight-gradient partial sum, zeroed, when weight gradients are wanted.
    pub partial: Option<&'a mut [f32]>,
    /// Its images' part of the input gradient, zeroed, when that is wanted.
    pub dx: Option<&'a mut [f32]>,
}

/// Runs `work` for each group of images of a batch across cores. `dx` (`image_len` values an
/// image) is split among the groups; when `partial_len` is `Some`, each group gets a partial of
/// that many values, and their sum, added in group order, is returned (else an empty vector).
/// The first error of `work` is returned instead.
pub(super) fn backward_by_image_groups(
    batch: usize,
    image_len: usize,
    dx: Option<&mut [f32]>,
    partial_len: Option<usize>,
    work: impl Fn(Task) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let tasks = batch.div_ceil(IMAGES_PER_TASK);
    let per_task = partial_len.unwrap_or(0);
    let mut partials = vec![0.0f32; tasks * per_task];
    let mut partial_chunks: Vec<Option<&mut [f32]>> = match partial_len {
        Some(len) => partials.chunks_mut(len.max(1)).map(Some).collect(),
        None => Vec::new(),
    };
    partial_chunks.resize_with(tasks, || None);
    let mut dx_chunks: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => dx.chunks_mut((IMAGES_PER_TASK * image_len).max(1)).map(Some).collect(),
        None => Vec::new(),
    };
    dx_chunks.resize_with(tasks, || None);
    partial_chunks.into_par_iter().zip(dx_chunks.into_par_iter()).enumerate().try_for_each(
        |(task, (mut partial, mut dx))| {
            let images = task * IMAGES_PER_TASK..((task + 1) * IMAGES_PER_TASK).min(batch);
            if let Some(dx) = dx.as_deref_mut() {
                dx.fill(0.0);
            }
            if let Some(partial) = partial.as_deref_mut() {
                partial.fill(0.0);
            }
            work(Task { images, partial, dx })
        },
    )?;
    let mut sum = vec![0.0f32; per_task];
    sum_in_order(&partials, per_task, &mut sum);
    Ok(sum)
}

/// Adds each channel's sum of one image's `dy` (planes of `plane` values) into the bias gradient.
pub(super) fn add_bias_gradient(db: &mut [f32], dy: &[f32], plane: usize) {
    for (db, dy) in db.iter_mut().zip(dy.chunks_exact(plane)) {
        *db += sum(dy);
    }
}

/// `out[i] = sum over parts p (in order) of parts[p * len + i]`, split across cores by position,
/// so every element is summed in the same order whatever the thread count.
fn sum_in_order(parts: &[f32], len: usize, out: &mut [f32]) {
    const CHUNK: usize = 4096;
    if len == 0 {
        return;
    }
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
        let start = c * CHUNK;
        let end = start + out.len();
        out.fill(0.0);
        for part in parts.chunks_exact(len) {
            out.iter_mut().zip(&part[start..end]).for_each(|(o, &v)| *o += v);
        }
    });
}

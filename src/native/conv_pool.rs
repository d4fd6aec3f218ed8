//! A convolution with its ReLU, then a max-pool, as one op image by image: each image's
//! convolution output goes into this thread's output scratch and is pooled from there while it is
//! still in cache, so the convolution's full-size output (four times the pool's for a 2x2 pool) is
//! never written to memory nor kept. Training needs nothing of it: the pool's backward pass reads
//! the argmax and the pooled values, and the ReLU's backward pass is fused into it.
//!
//! The pooled values and the argmax (flat indices into the convolution output, which is not kept)
//! are those of [`super::conv2d::forward`] then [`super::max_pool2d::forward`], bit for bit.

use rayon::prelude::*;

use super::buffers::with_output_scratch;
use super::conv2d::ImageForward;
use super::max_pool2d::forward_plane;
use crate::shape::{Conv2dShape, Pool2dShape};

/// `y` and `argmax` ([batch, channels, out_h, out_w] of `pool`) of `max_pool2d(max(conv(x, w) + b,
/// 0))`; `pool`'s input is `conv`'s output. Every element of both is written.
pub fn forward(
    conv: &Conv2dShape,
    pool: &Pool2dShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let image = ImageForward::new(conv, w, b, true);
    let conv_plane = pool.in_h * pool.in_w;
    let pooled = pool.channels * pool.out_h() * pool.out_w();
    let images = y.par_chunks_mut(pooled).zip(argmax.par_chunks_mut(pooled)).zip(x.par_chunks(image.input_len()));
    images.enumerate().for_each(|(n, ((y, argmax), x))| {
        with_output_scratch(image.output_len(), |conv_out| {
            image.image(x, conv_out);
            let planes = conv_out.chunks_exact(conv_plane).zip(y.chunks_exact_mut(pooled / pool.channels));
            for (c, ((plane, y), argmax)) in planes.zip(argmax.chunks_exact_mut(pooled / pool.channels)).enumerate() {
                forward_plane(pool, plane, (n * pool.channels + c) * conv_plane, y, argmax);
            }
        });
    });
}

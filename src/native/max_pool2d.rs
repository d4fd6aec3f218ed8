//! Max-pooling (valid padding) plane by plane across cores, with the argmax as flat input indices
//! and the choice of element (ties, NaN) of [`crate::reference::max_pool2d`].

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::shape::Pool2dShape;

/// Whether `candidate` replaces `best` as the window's choice: the first maximum in window order
/// wins, and a NaN propagates.
fn replaces(candidate: f32, best: f32) -> bool {
    !best.is_nan() && (candidate.is_nan() || candidate > best)
}

/// `y` and `argmax` ([batch, channels, out_h, out_w]) of `x`. Every element of both is written.
pub fn forward(s: &Pool2dShape, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let (in_plane, out_plane) = (s.in_h * s.in_w, s.out_h() * s.out_w());
    y.par_chunks_mut(out_plane).zip(argmax.par_chunks_mut(out_plane)).enumerate().for_each(|(plane, (y, argmax))| {
        let base = plane * in_plane;
        forward_plane(s, &x[base..base + in_plane], base, y, argmax);
    });
}

/// One plane `x` ([in_h, in_w]) into `y` and `argmax` ([out_h, out_w]); `base` is the plane's first
/// flat index in the whole input, which the argmax counts from.
pub(super) fn forward_plane(s: &Pool2dShape, x: &[f32], base: usize, y: &mut [f32], argmax: &mut [u32]) {
    let out_w = s.out_w();
    let rows = y.chunks_exact_mut(out_w).zip(argmax.chunks_exact_mut(out_w));
    for (oy, (y, argmax)) in rows.enumerate() {
        let top = oy * s.stride * s.in_w;
        if s.pool == 2 && s.stride == 2 {
            pool_row_2x2(&x[top..], s.in_w, (base + top) as u32, y, argmax);
            continue;
        }
        for (ox, (y, argmax)) in y.iter_mut().zip(argmax.iter_mut()).enumerate() {
            let top_left = top + ox * s.stride;
            let (mut best, mut best_at) = (x[top_left], top_left);
            for row in (top_left..).step_by(s.in_w).take(s.pool) {
                for (at, &v) in (row..).zip(&x[row..row + s.pool]) {
                    // Selects rather than branches: on real activations the branch is a coin toss.
                    let take = replaces(v, best);
                    best = if take { v } else { best };
                    best_at = if take { at } else { best_at };
                }
            }
            *y = best;
            *argmax = (base + best_at) as u32;
        }
    }
}

/// One output row of a 2x2 pool of stride 2 (the layers' usual pool). A window without NaN takes
/// its first strict maximum with three compares the compiler can turn into selects; a window
/// with a NaN (its sum is NaN) goes the general way, so the choice is the reference's.
fn pool_row_2x2(x: &[f32], in_w: usize, first: u32, y: &mut [f32], argmax: &mut [u32]) {
    let (top, bottom) = (&x[..in_w], &x[in_w..2 * in_w]);
    let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
    let below = in_w as u32;
    for (ox, ((y, argmax), (t, b))) in y.iter_mut().zip(argmax.iter_mut()).zip(windows).enumerate() {
        let window = [(t[0], 0), (t[1], 1), (b[0], below), (b[1], below + 1)];
        let (mut best, mut at) = window[0];
        if (t[0] + t[1] + b[0] + b[1]).is_nan() {
            for &(v, offset) in &window[1..] {
                if replaces(v, best) {
                    (best, at) = (v, offset);
                }
            }
        } else {
            for &(v, offset) in &window[1..] {
                let take = v > best;
                best = if take { v } else { best };
                at = if take { offset } else { at };
            }
        }
        *y = best;
        *argmax = first + 2 * ox as u32 + at;
    }
}

/// `dx[i] = sum of dy over the outputs whose argmax is i`, in output order. With `relu_y` (the
/// pooled ReLU output), only where that is positive: the backward pass of a ReLU before the pool.
/// Every element of `dx` is written; an argmax outside its own plane is an error.
pub fn backward(s: &Pool2dShape, argmax: &[u32], relu_y: Option<&[f32]>, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    let in_plane = s.in_h * s.in_w;
    dx.par_chunks_mut(in_plane).enumerate().try_for_each(|(plane, dx)| backward_plane(s, plane, argmax, relu_y, dy, dx))
}

/// [`backward`] of image `n` alone into `dx` ([channels, in_h, in_w]), on the calling thread:
/// `argmax`, `relu_y` and `dy` are the whole batch's.
pub(super) fn backward_image(
    s: &Pool2dShape,
    n: usize,
    argmax: &[u32],
    relu_y: Option<&[f32]>,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let mut planes = dx.chunks_exact_mut(s.in_h * s.in_w).enumerate();
    planes.try_for_each(|(c, dx)| backward_plane(s, n * s.channels + c, argmax, relu_y, dy, dx))
}

/// [`backward`] of one plane (`plane` counting over the batch's images and channels) into `dx`
/// ([in_h, in_w]).
fn backward_plane(
    s: &Pool2dShape,
    plane: usize,
    argmax: &[u32],
    relu_y: Option<&[f32]>,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let (in_plane, out_plane) = (s.in_h * s.in_w, s.out_h() * s.out_w());
    let outputs = plane * out_plane..(plane + 1) * out_plane;
    let base = plane * in_plane;
    // As the ReLU's backward pass: only a positive output passes (not a NaN one).
    let gradient = |o: usize| if relu_y.is_none_or(|y| y[o] > 0.0) { dy[o] } else { 0.0 };
    let outside = |o: usize| {
        Error::Invalid(format!("max_pool2d argmax {} is outside its plane {plane} of {:?}", argmax[o], s.input_dims()))
    };
    if s.pool == 2 && s.stride == 2 {
        // Windows do not overlap: each writes its four elements, the gradient at its argmax.
        let (in_w, out_w) = (s.in_w, s.out_w());
        for (oy, first) in (0..s.out_h()).zip(outputs.clone().step_by(out_w)) {
            let top = 2 * oy * in_w;
            let (top_row, rest) = dx[top..].split_at_mut(in_w);
            let bottom_row = &mut rest[..in_w];
            let windows = top_row.chunks_exact_mut(2).zip(bottom_row.chunks_exact_mut(2));
            for (ox, (t, b)) in windows.enumerate() {
                let o = first + ox;
                // The argmax as (row, column) inside its window.
                let d = (argmax[o] as usize).wrapping_sub(base + top + 2 * ox);
                let (row, col) = if d < 2 { (0, d) } else { (1, d.wrapping_sub(in_w)) };
                if col >= 2 {
                    return Err(outside(o));
                }
                let g = gradient(o);
                let at = |r: usize, c: usize| if (r, c) == (row, col) { g } else { 0.0 };
                (t[0], t[1], b[0], b[1]) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
            }
            // An odd width leaves a column no window covers.
            top_row[2 * out_w..].fill(0.0);
            bottom_row[2 * out_w..].fill(0.0);
        }
        // An odd height leaves a row no window covers.
        dx[2 * s.out_h() * in_w..].fill(0.0);
        return Ok(());
    }
    dx.fill(0.0);
    for o in outputs {
        let at = (argmax[o] as usize).wrapping_sub(base);
        let slot = dx.get_mut(at).ok_or_else(|| outside(o))?;
        *slot += gradient(o);
    }
    Ok(())
}

//! 2-D convolution as im2col and GEMM, image by image across cores, NCHW as everywhere else.
//!
//! Each image's output pixels are cut into tiles of at most `TILE_VALUES` im2col values, so a
//! tile's columns (`in_channels * kernel_h * kernel_w` rows of its pixels) stay in the core's
//! cache between being written and being packed by the GEMM. Per image:
//! - forward: `y[co, p] = b[co] + sum_k w[co, k] * col[k, p]`, then the ReLU;
//! - weight gradient: `dw[co, k] = sum_p dy[co, p] * col[k, p]` (a GEMM reducing over pixels);
//! - input gradient: `dcol[k, p] = sum_co w[co, k] * dy[co, p]`, scattered back by col2im.
//!
//! Work is split by image (the backward pass: by groups of images whose gradient sums are then
//! added in group order, `image_groups.rs`), never by thread, so results are the same bits
//! for any number of threads.
//!
//! 3x3 kernels of stride 1 may run as Winograd F(2x2, 3x3) instead (`winograd.rs`):
//! [`ConvAlgorithm::chosen`] picks per shape and pass, [`forward_with`] and [`backward_with`] force either.

use rayon::prelude::*;

use super::buffers::with_scratch;
use super::first_layer;
use super::gemm::{CpuKernels, Matrix, matmul};
pub use super::image_groups::OutputGradient;
use super::image_groups::{Task, add_bias_gradient, backward_by_image_groups};
use super::winograd;
pub use super::winograd::{CONV_ALGORITHM_ENV, ConvAlgorithm, ConvPass};
use crate::error::Result;
use crate::shape::Conv2dShape;

/// The most im2col values a tile holds (1 MiB of f32: of 16K, 64K, 256K and 1M values, the
/// fastest for Model A's training step on a 2-core EPYC).
const TILE_VALUES: usize = 256 * 1024;

/// The geometry shared by the passes.
struct Geometry {
    /// im2col rows: one per (input channel, kernel row, kernel column).
    taps: usize,
    /// Output pixels per image.
    pixels: usize,
    /// Output pixels per tile.
    tile: usize,
    /// A 1x1 kernel, stride 1, no padding: the input already is its own im2col matrix.
    pointwise: bool,
}

impl Geometry {
    fn new(s: &Conv2dShape) -> Self {
        let taps = s.in_channels * s.kernel_h * s.kernel_w;
        let pixels = s.out_h() * s.out_w();
        let pointwise = s.kernel_h == 1 && s.kernel_w == 1 && s.stride == 1 && s.pad_top() == 0 && s.pad_left() == 0;
        Self { taps, pixels, tile: (TILE_VALUES / taps).max(16).min(pixels.max(1)), pointwise }
    }

    /// The first pixel and pixel count of each tile.
    fn tiles(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.pixels).step_by(self.tile).map(|p0| (p0, self.tile.min(self.pixels - p0)))
    }
}

/// For one kernel tap: the range of output columns whose input column lies inside the image, and
/// the input column of output column 0 (before the range's start) as an offset.
fn valid_columns(s: &Conv2dShape, out_w: usize, kx: usize) -> (usize, usize) {
    let (pad, stride) = (s.pad_left(), s.stride);
    // Output column ox reads input column ox * stride + kx - pad.
    let first = pad.saturating_sub(kx).div_ceil(stride);
    let end = (s.in_w + pad).saturating_sub(kx).div_ceil(stride).min(out_w);
    (first.min(end), end)
}

/// Visits, for kernel tap (ci, ky, kx) and each output row crossing the tile `p0..p0 + len`, the
/// tile positions `t0..t0 + run` and where they read: `None` (a padding row) or the input row's
/// start and the valid output columns. `visit(t0, ox0, run, source)`.
fn for_each_row_run(
    s: &Conv2dShape,
    (p0, len): (usize, usize),
    ky: usize,
    mut visit: impl FnMut(usize, usize, usize, Option<usize>),
) {
    let out_w = s.out_w();
    let (mut t, mut oy, mut ox) = (0, p0 / out_w, p0 % out_w);
    while t < len {
        let run = (out_w - ox).min(len - t);
        let iy = (oy * s.stride + ky).checked_sub(s.pad_top()).filter(|&iy| iy < s.in_h);
        visit(t, ox, run, iy.map(|iy| iy * s.in_w));
        t += run;
        oy += 1;
        ox = 0;
    }
}

/// Writes the im2col matrix of pixels `p0..p0 + len` of one image `x` ([in_channels, in_h, in_w])
/// into `col` ([taps, len]).
fn im2col(s: &Conv2dShape, x: &[f32], tile: (usize, usize), col: &mut [f32]) {
    let len = tile.1;
    let out_w = s.out_w();
    let plane = s.in_h * s.in_w;
    for ci in 0..s.in_channels {
        let x = &x[ci * plane..(ci + 1) * plane];
        for ky in 0..s.kernel_h {
            for kx in 0..s.kernel_w {
                let row = ((ci * s.kernel_h + ky) * s.kernel_w + kx) * len;
                let row = &mut col[row..row + len];
                let (first, end) = valid_columns(s, out_w, kx);
                for_each_row_run(s, tile, ky, |t, ox0, run, source| {
                    let out = &mut row[t..t + run];
                    let Some(start) = source else { return out.fill(0.0) };
                    // The run's output columns ox0..ox0 + run, split into padding | inside | padding.
                    let lo = first.clamp(ox0, ox0 + run);
                    let hi = end.clamp(lo, ox0 + run);
                    out[..lo - ox0].fill(0.0);
                    out[hi - ox0..].fill(0.0);
                    if lo == hi {
                        // Only padding (a run cut short by the tile before the first column inside).
                        return;
                    }
                    let inside = &mut out[lo - ox0..hi - ox0];
                    let ix0 = start + lo * s.stride + kx - s.pad_left();
                    if s.stride == 1 {
                        inside.copy_from_slice(&x[ix0..ix0 + inside.len()]);
                    } else {
                        inside.iter_mut().zip(x[ix0..].iter().step_by(s.stride)).for_each(|(o, &v)| *o = v);
                    }
                });
            }
        }
    }
}

/// Adds the im2col-shaped gradient `col` ([taps, len], pixels `p0..p0 + len`) into one image's
/// input gradient `dx` ([in_channels, in_h, in_w]): the transpose of [`im2col`].
fn col2im_add(s: &Conv2dShape, col: &[f32], tile: (usize, usize), dx: &mut [f32]) {
    let len = tile.1;
    let out_w = s.out_w();
    let plane = s.in_h * s.in_w;
    for ci in 0..s.in_channels {
        let dx = &mut dx[ci * plane..(ci + 1) * plane];
        for ky in 0..s.kernel_h {
            for kx in 0..s.kernel_w {
                let row = ((ci * s.kernel_h + ky) * s.kernel_w + kx) * len;
                let row = &col[row..row + len];
                let (first, end) = valid_columns(s, out_w, kx);
                for_each_row_run(s, tile, ky, |t, ox0, run, source| {
                    let Some(start) = source else { return };
                    let lo = first.clamp(ox0, ox0 + run);
                    let hi = end.clamp(lo, ox0 + run);
                    if lo == hi {
                        return;
                    }
                    let inside = &row[t + lo - ox0..t + hi - ox0];
                    let ix0 = start + lo * s.stride + kx - s.pad_left();
                    if s.stride == 1 {
                        dx[ix0..ix0 + inside.len()].iter_mut().zip(inside).for_each(|(d, &g)| *d += g);
                    } else {
                        dx[ix0..].iter_mut().step_by(s.stride).zip(inside).for_each(|(d, &g)| *d += g);
                    }
                });
            }
        }
    }
}

/// `y` ([batch, out_channels, out_h, out_w]) = conv(x, w) + b, then max(y, 0) if `relu`, as
/// [`crate::reference::conv2d::forward`]. Every element of `y` is written.
pub fn forward(s: &Conv2dShape, x: &[f32], w: &[f32], b: &[f32], relu: bool, y: &mut [f32]) {
    forward_with(ConvAlgorithm::chosen(s, ConvPass::Forward), s, x, w, b, relu, y)
}

/// [`forward`] by `algorithm` where it fits the shape ([`ConvAlgorithm::for_shape`]), else im2col.
pub fn forward_with(
    algorithm: ConvAlgorithm,
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    relu: bool,
    y: &mut [f32],
) {
    let conv = ImageForward::with_algorithm(algorithm, s, w, b, relu);
    y.par_chunks_mut(conv.output_len()).zip(x.par_chunks(conv.input_len())).for_each(|(y, x)| conv.image(x, y));
}

/// A forward convolution ready for its images one at a time, on the calling thread.
pub(super) struct ImageForward<'a> {
    s: &'a Conv2dShape,
    g: Geometry,
    weights: Matrix<'a>,
    bias: &'a [f32],
    relu: bool,
    /// The Winograd convolution, its weights transformed, when that algorithm was chosen.
    winograd: Option<winograd::Forward<'a>>,
}

impl<'a> ImageForward<'a> {
    /// By the algorithm [`ConvAlgorithm::chosen`] for the shape.
    pub(super) fn new(s: &'a Conv2dShape, w: &'a [f32], bias: &'a [f32], relu: bool) -> Self {
        Self::with_algorithm(ConvAlgorithm::chosen(s, ConvPass::Forward), s, w, bias, relu)
    }

    /// By `algorithm` where it fits the shape, else im2col.
    pub(super) fn with_algorithm(
        algorithm: ConvAlgorithm,
        s: &'a Conv2dShape,
        w: &'a [f32],
        bias: &'a [f32],
        relu: bool,
    ) -> Self {
        let g = Geometry::new(s);
        let weights = Matrix::rows(w, s.out_channels, g.taps, g.taps);
        let winograd = match algorithm.for_shape(s) {
            ConvAlgorithm::Winograd => Some(winograd::Forward::new(s, w, bias, relu)),
            ConvAlgorithm::Im2col => None,
        };
        Self { s, g, weights, bias, relu, winograd }
    }

    /// Values of one input image, [in_channels, in_h, in_w].
    pub(super) fn input_len(&self) -> usize {
        self.s.in_channels * self.s.in_h * self.s.in_w
    }

    /// Values of one output image, [out_channels, out_h, out_w].
    pub(super) fn output_len(&self) -> usize {
        self.s.out_channels * self.g.pixels
    }

    /// One image `x` into `y`, every element written. Uses this thread's scratch buffer.
    pub(super) fn image(&self, x: &[f32], y: &mut [f32]) {
        if let Some(winograd) = &self.winograd {
            return winograd.image(x, y);
        }
        let (s, g) = (self.s, &self.g);
        with_scratch(g.taps * g.tile, |col| {
            for tile in g.tiles() {
                let col: &[f32] = if g.pointwise {
                    &x[tile.0..]
                } else {
                    let col = &mut col[..g.taps * tile.1];
                    im2col(s, x, tile, col);
                    col
                };
                let col_stride = if g.pointwise { g.pixels } else { tile.1 };
                matmul(self.weights, Matrix::rows(col, g.taps, tile.1, col_stride), 0.0, &mut y[tile.0..], g.pixels);
                // Bias and ReLU while the tile's outputs are still in cache.
                for (co, &b) in self.bias.iter().enumerate() {
                    let row = &mut y[co * g.pixels + tile.0..][..tile.1];
                    if self.relu {
                        row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
                    } else {
                        row.iter_mut().for_each(|v| *v += b);
                    }
                }
            }
        });
    }
}

/// Whether the weight gradient of `s` runs the direct kernel for first layers (`first_layer.rs`:
/// stride 1, kernels 3 wide, at most 4 input channels) whatever the algorithm, and not a GEMM.
pub fn weight_gradient_is_direct(s: &Conv2dShape) -> bool {
    first_layer::fits(s)
}

/// The backward pass from `dy` (the gradient before any ReLU), as
/// [`crate::reference::conv2d::backward`]: the input gradient into `dx` when given, and the
/// weight and bias gradients into `dw_db` when given. Every element of each is written. Fails only
/// where `dy` comes from a pool whose argmax lies outside its window's plane.
pub fn backward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: OutputGradient,
    dx: Option<&mut [f32]>,
    dw_db: Option<(&mut [f32], &mut [f32])>,
) -> Result<()> {
    backward_with(ConvAlgorithm::chosen(s, ConvPass::Backward), s, x, w, dy, dx, dw_db)
}

/// [`backward`] by `algorithm` where it fits the shape ([`ConvAlgorithm::for_shape`]), else im2col.
pub fn backward_with(
    algorithm: ConvAlgorithm,
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: OutputGradient,
    dx: Option<&mut [f32]>,
    mut dw_db: Option<(&mut [f32], &mut [f32])>,
) -> Result<()> {
    if algorithm.for_shape(s) == ConvAlgorithm::Winograd {
        return winograd::backward(s, x, w, dy, dx, dw_db);
    }
    // A first layer's weight gradient, which im2col's small GEMM computes slowly, is direct; then
    // only the input gradient (rarely wanted there) is left for im2col.
    if let Some((dw, db)) = dw_db.take_if(|_| weight_gradient_is_direct(s)) {
        first_layer::weight_gradient(CpuKernels::in_use(), s, x, dy, dw, db)?;
        if dx.is_none() {
            return Ok(());
        }
    }
    let g = Geometry::new(s);
    let image = s.in_channels * s.in_h * s.in_w;
    let out_image = s.out_channels * g.pixels;
    let dw_len = s.out_channels * g.taps;
    let weights = Matrix::rows(w, s.out_channels, g.taps, g.taps);
    // Each group's weight gradients, then its bias gradients.
    let partial_len = dw_db.is_some().then_some(dw_len + s.out_channels);
    let sums = backward_by_image_groups(s.batch, image, dx, partial_len, |task| {
        let Task { images, mut partial, mut dx } = task;
        with_scratch(2 * g.taps * g.tile, |scratch| {
            let (col, dcol) = scratch.split_at_mut(g.taps * g.tile);
            for (i, n) in images.enumerate() {
                let x = &x[n * image..(n + 1) * image];
                dy.image(n, out_image, |dy| {
                    for tile in g.tiles() {
                        let dy_tile = Matrix::rows(&dy[tile.0..], s.out_channels, tile.1, g.pixels);
                        if let Some(partial) = partial.as_deref_mut() {
                            let (col, col_stride): (&[f32], usize) = if g.pointwise {
                                (&x[tile.0..], g.pixels)
                            } else {
                                let col = &mut col[..g.taps * tile.1];
                                im2col(s, x, tile, col);
                                (col, tile.1)
                            };
                            // dw[co, k] += sum over the tile's pixels of dy[co, p] * col[k, p].
                            let col_t = Matrix::rows(col, g.taps, tile.1, col_stride).t();
                            matmul(dy_tile, col_t, 1.0, partial, g.taps);
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            let dcol = &mut dcol[..g.taps * tile.1];
                            matmul(weights.t(), dy_tile, 0.0, dcol, tile.1);
                            col2im_add(s, dcol, tile, &mut dx[i * image..(i + 1) * image]);
                        }
                    }
                    if let Some(partial) = partial.as_deref_mut() {
                        add_bias_gradient(&mut partial[dw_len..], dy, g.pixels);
                    }
                })?;
            }
            Ok(())
        })
    })?;
    if let Some((dw, db)) = dw_db {
        let (sum_dw, sum_db) = sums.split_at(dw_len);
        dw.copy_from_slice(sum_dw);
        db.copy_from_slice(sum_db);
    }
    Ok(())
}

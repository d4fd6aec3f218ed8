//! 3x3 stride-1 convolutions as Winograd F(2x2, 3x3) (Lavin & Gray 2015, as NNPACK, ncnn and
//! XNNPACK do on CPUs): 16 multiplies for each 2x2 output tile where direct convolution does 36.
//!
//! Each image's output is cut into 2x2 tiles (the last row and column of tiles clipped when the
//! output is odd), each reading a 4x4 input window (stride 2, zero outside the input). With
//! `B^T`, `G` and `A^T` the F(2x2, 3x3) matrices below, and xi one of the 16 positions of a 4x4
//! transformed tile:
//! - forward: `V = B^T d B` per input window and channel, `U = G g G^T` per kernel (once per
//!   call), `M[xi] (out x tiles) = U[xi] (out x in) * V[xi] (in x tiles)` as 16 GEMMs, then
//!   `Y = A^T M A` per tile, with the bias and the ReLU;
//! - input gradient, the forward's exact transpose: `Yh = A dY A^T` per 2x2 tile of `dy` (zero past
//!   the output), `dV[xi] = U[xi]^T Yh[xi]` (16 GEMMs), `B dV B^T` added into each window of `dx`
//!   (windows overlap by 2; what falls on padding is dropped);
//! - weight gradient: `dU[xi] (out x in) = sum over tiles of Yh[xi] V[xi]^T` (16 GEMMs reducing
//!   over tiles), then `dW = G^T dU G` per kernel; the bias gradient is the plain sum of `dy`.
//!
//! Tiles go through in blocks of at most [`BLOCK_VALUES`] transformed values, laid out
//! [16][channels][tiles] so that each GEMM's operands are contiguous and stay in L2. Work is split
//! by image, as in [`super::conv2d`] (the backward pass by groups of images whose partial `dU`
//! are summed in group order), so the bits do not depend on the thread count.
//!
//! The transforms' additions (of up to 16 window values, with halves) cost accuracy: measured
//! errors and the tests' bounds are in `docs/native-cpu.md` and `tests/kernels/native.rs`.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::buffers::with_scratch;
use super::gemm::{Matrix, matmul};
use super::image_groups::{OutputGradient, Task, add_bias_gradient, backward_by_image_groups};
use crate::error::Result;
use crate::shape::Conv2dShape;

/// The environment variable that chooses the convolution algorithm: `im2col`, `winograd` or `auto`.
pub const CONV_ALGORITHM_ENV: &str = "WGCNN_CONV_ALGORITHM";

/// Transformed values (inputs and products, [16][channels][tiles]) one block of tiles holds:
/// 512 KiB of f32, half this machine's L2 per core.
const BLOCK_VALUES: usize = 128 * 1024;

/// A convolution's passes, for which [`ConvAlgorithm::auto`] may choose differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPass {
    Forward,
    /// The input and weight gradients.
    Backward,
}

/// How the native backend computes a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// im2col tiles and one GEMM per tile ([`super::conv2d`]): any kernel, stride and padding.
    Im2col,
    /// Winograd F(2x2, 3x3): 3x3 kernels of stride 1 only (any padding).
    Winograd,
}

impl ConvAlgorithm {
    /// Whether Winograd F(2x2, 3x3) computes this shape: a 3x3 kernel, stride 1.
    pub fn winograd_fits(s: &Conv2dShape) -> bool {
        s.kernel_h == 3 && s.kernel_w == 3 && s.stride == 1
    }

    /// The default for a pass of a shape, a fixed rule from the measurements in
    /// `docs/native-cpu.md`: Winograd only for the backward pass of 3x3 stride-1 kernels with at
    /// least 64 input and 128 output channels and 400 output pixels an image. Its 16 GEMMs have a
    /// depth of the input channels (forward) or output channels (input gradient) and are as wide
    /// as an image's 2x2 tiles: thinner or narrower, they and the transforms cost more than the
    /// multiplies Winograd saves, and the forward pass lost at every layer measured.
    pub fn auto(s: &Conv2dShape, pass: ConvPass) -> ConvAlgorithm {
        let large = s.in_channels >= 64 && s.out_channels >= 128 && s.out_h() * s.out_w() >= 400;
        if pass == ConvPass::Backward && Self::winograd_fits(s) && large {
            ConvAlgorithm::Winograd
        } else {
            ConvAlgorithm::Im2col
        }
    }

    /// This algorithm where it computes `s`, else im2col.
    pub fn for_shape(self, s: &Conv2dShape) -> ConvAlgorithm {
        match self {
            ConvAlgorithm::Winograd if Self::winograd_fits(s) => ConvAlgorithm::Winograd,
            _ => ConvAlgorithm::Im2col,
        }
    }

    /// `WGCNN_CONV_ALGORITHM`: `Some` algorithm forced for every shape it fits, `None` for the
    /// [`ConvAlgorithm::auto`] rule (unset, empty or `auto`); an unknown value is an error naming
    /// the variable.
    pub fn from_env() -> crate::Result<Option<ConvAlgorithm>> {
        let Ok(value) = std::env::var(CONV_ALGORITHM_ENV) else { return Ok(None) };
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "im2col" => Ok(Some(ConvAlgorithm::Im2col)),
            "winograd" => Ok(Some(ConvAlgorithm::Winograd)),
            _ => {
                Err(crate::Error::Invalid(format!("{CONV_ALGORITHM_ENV}={value:?}: expected im2col, winograd or auto")))
            }
        }
    }

    /// The algorithm the backend runs for `pass` of `s`: `WGCNN_CONV_ALGORITHM`'s, read once (the
    /// auto rule if it is unusable; the binary reports that error before any work), else the auto
    /// rule.
    pub fn chosen(s: &Conv2dShape, pass: ConvPass) -> ConvAlgorithm {
        static FORCED: OnceLock<Option<ConvAlgorithm>> = OnceLock::new();
        match *FORCED.get_or_init(|| Self::from_env().unwrap_or(None)) {
            Some(forced) => forced.for_shape(s),
            None => Self::auto(s, pass),
        }
    }
}

/// The tiles of one image and their blocks.
struct Tiles {
    in_channels: usize,
    out_channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    pad_top: usize,
    pad_left: usize,
    /// Tiles per column and per row of the output.
    tiles_h: usize,
    tiles_w: usize,
    /// Tiles per block.
    block: usize,
}

/// Where a tile lies: its output's top-left pixel and its input window's top-left corner (which
/// may lie in the padding, so signed).
#[derive(Clone, Copy)]
struct TilePlace {
    oy: usize,
    ox: usize,
    iy: isize,
    ix: isize,
}

/// Tiles side by side along one tile row of the output.
struct Run {
    /// The first tile's index within its block, and in the image.
    at: usize,
    first: usize,
    /// How many (at most [`RUN`]).
    tiles: usize,
}

impl Tiles {
    fn new(s: &Conv2dShape) -> Self {
        let (out_h, out_w) = (s.out_h(), s.out_w());
        let (tiles_h, tiles_w) = (out_h.div_ceil(2), out_w.div_ceil(2));
        let count = tiles_h * tiles_w;
        let block = (BLOCK_VALUES / (16 * (s.in_channels + s.out_channels))).max(16).min(count.max(1));
        Self {
            in_channels: s.in_channels,
            out_channels: s.out_channels,
            in_h: s.in_h,
            in_w: s.in_w,
            out_h,
            out_w,
            pad_top: s.pad_top(),
            pad_left: s.pad_left(),
            tiles_h,
            tiles_w,
            block,
        }
    }

    fn input_len(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }

    fn output_len(&self) -> usize {
        self.out_channels * self.out_h * self.out_w
    }

    /// The first tile and tile count of each block.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let count = self.tiles_h * self.tiles_w;
        (0..count).step_by(self.block).map(move |t0| (t0, self.block.min(count - t0)))
    }

    /// The block's tiles in runs of at most [`RUN`] along one tile row.
    fn runs(&self, (t0, len): (usize, usize)) -> impl Iterator<Item = Run> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < len).then(|| {
                let first = t0 + at;
                let tiles = (self.tiles_w - first % self.tiles_w).min(len - at).min(RUN);
                let run = Run { at, first, tiles };
                at += tiles;
                run
            })
        })
    }

    fn place(&self, tile: usize) -> TilePlace {
        let (oy, ox) = (2 * (tile / self.tiles_w), 2 * (tile % self.tiles_w));
        TilePlace { oy, ox, iy: oy as isize - self.pad_top as isize, ix: ox as isize - self.pad_left as isize }
    }

    /// Whether a tile's whole 4x4 input window lies inside the input.
    fn inside(&self, p: TilePlace) -> bool {
        p.iy >= 0 && p.ix >= 0 && p.iy as usize + 4 <= self.in_h && p.ix as usize + 4 <= self.in_w
    }
}

/// `U = G g G^T` for each (out, in) kernel `g` of `w` ([out, in, 3, 3]), as [16][out][in].
fn transform_weights(s: &Conv2dShape, w: &[f32]) -> Vec<f32> {
    let pairs = s.out_channels * s.in_channels;
    let mut u = vec![0.0; 16 * pairs];
    for (pair, g) in w.chunks_exact(9).enumerate() {
        // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2 of each column.
        let mut a = [[0.0f32; 3]; 4];
        for c in 0..3 {
            let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
            a[0][c] = g0;
            a[1][c] = 0.5 * (g0 + g1 + g2);
            a[2][c] = 0.5 * (g0 - g1 + g2);
            a[3][c] = g2;
        }
        for (r, a) in a.iter().enumerate() {
            let row = [a[0], 0.5 * (a[0] + a[1] + a[2]), 0.5 * (a[0] - a[1] + a[2]), a[2]];
            for (c, v) in row.into_iter().enumerate() {
                u[(4 * r + c) * pairs + pair] = v;
            }
        }
    }
    u
}

/// `G^T dU G`: the 3x3 kernel gradient of one transformed kernel gradient `du` (4x4, row major).
fn kernel_gradient(du: &[f32; 16]) -> [f32; 9] {
    // G^T X: rows x0 + (x1 + x2) / 2, (x1 - x2) / 2, (x1 + x2) / 2 + x3 of each column.
    let mut a = [[0.0f32; 4]; 3];
    for c in 0..4 {
        let (x0, x1, x2, x3) = (du[c], du[4 + c], du[8 + c], du[12 + c]);
        a[0][c] = x0 + 0.5 * (x1 + x2);
        a[1][c] = 0.5 * (x1 - x2);
        a[2][c] = 0.5 * (x1 + x2) + x3;
    }
    let mut g = [0.0; 9];
    for (r, a) in a.iter().enumerate() {
        g[3 * r] = a[0] + 0.5 * (a[1] + a[2]);
        g[3 * r + 1] = 0.5 * (a[1] - a[2]);
        g[3 * r + 2] = 0.5 * (a[1] + a[2]) + a[3];
    }
    g
}

/// `B^T d B` of one 4x4 window `d`, row major: along each row first, then down each column, in
/// the order [`transform_windows`] computes it, so both give the same bits.
#[inline(always)]
fn input_transform(d: &[[f32; 4]; 4]) -> [f32; 16] {
    // d B: d0 - d2, d1 + d2, d2 - d1, d1 - d3 of each row.
    let h = d.map(|d| [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]);
    let mut v = [0.0; 16];
    for c in 0..4 {
        v[c] = h[0][c] - h[2][c];
        v[4 + c] = h[1][c] + h[2][c];
        v[8 + c] = h[2][c] - h[1][c];
        v[12 + c] = h[1][c] - h[3][c];
    }
    v
}

/// Tiles one pass of a transform takes ([`transform_windows`], [`output_transforms`] and their
/// transposes): the staging arrays (16 rows of it) stay on the stack, and each loop over them is
/// long enough to vectorise.
const RUN: usize = 32;

/// [`input_transform`] of `n` (at most [`RUN`]) windows side by side along a tile row, wholly
/// inside the input: `rows` are the 4 input rows from the first window's left edge, each of at
/// least `2n + 2` values. Returns `V[xi][tile]`. Each step runs over all tiles at once (the rows
/// split into even and odd columns first), so the compiler vectorises it.
fn transform_windows(rows: [&[f32]; 4], n: usize) -> [[f32; RUN]; 16] {
    let mut h = [[[0.0f32; RUN]; 4]; 4];
    for (row, h) in rows.iter().zip(&mut h) {
        let (mut even, mut odd) = ([0.0f32; RUN + 1], [0.0f32; RUN + 1]);
        for ((pair, e), o) in row[..2 * n + 2].chunks_exact(2).zip(&mut even).zip(&mut odd) {
            (*e, *o) = (pair[0], pair[1]);
        }
        for k in 0..RUN {
            h[0][k] = even[k] - even[k + 1];
            h[1][k] = odd[k] + even[k + 1];
            h[2][k] = even[k + 1] - odd[k];
            h[3][k] = odd[k] - odd[k + 1];
        }
    }
    let mut v = [[0.0f32; RUN]; 16];
    for c in 0..4 {
        for k in 0..RUN {
            v[c][k] = h[0][c][k] - h[2][c][k];
            v[4 + c][k] = h[1][c][k] + h[2][c][k];
            v[8 + c][k] = h[2][c][k] - h[1][c][k];
            v[12 + c][k] = h[1][c][k] - h[3][c][k];
        }
    }
    v
}

/// `B X B^T` of `n` (at most [`RUN`]) 4x4 tiles at once, `x[xi]` holding each tile's value xi:
/// the transpose of [`input_transform`]. Returns `d[r][c][tile]`, row r and column c of each
/// tile's 4x4 window gradient; zero past `n`.
fn input_gradient_transforms(x: [&[f32]; 16], n: usize) -> [[[f32; RUN]; 4]; 4] {
    let x = stage(x, n);
    // B X: rows x0, x1 - x2 + x3, x1 + x2 - x0, -x3 of each column.
    let mut t = [[[0.0f32; RUN]; 4]; 4];
    for c in 0..4 {
        for k in 0..RUN {
            let (x0, x1, x2, x3) = (x[c][k], x[4 + c][k], x[8 + c][k], x[12 + c][k]);
            t[0][c][k] = x0;
            t[1][c][k] = x1 - x2 + x3;
            t[2][c][k] = x1 + x2 - x0;
            t[3][c][k] = -x3;
        }
    }
    // Then the same along each row.
    let mut d = [[[0.0f32; RUN]; 4]; 4];
    for (d, t) in d.iter_mut().zip(&t) {
        for k in 0..RUN {
            d[0][k] = t[0][k];
            d[1][k] = t[1][k] - t[2][k] + t[3][k];
            d[2][k] = t[1][k] + t[2][k] - t[0][k];
            d[3][k] = -t[3][k];
        }
    }
    d
}

/// The first `n` values of each of 16 slices, zero after: fixed-length rows the transforms' loops
/// run over in full.
#[inline(always)]
fn stage(slices: [&[f32]; 16], n: usize) -> [[f32; RUN]; 16] {
    let mut staged = [[0.0f32; RUN]; 16];
    for (staged, values) in staged.iter_mut().zip(slices) {
        staged[..n].copy_from_slice(&values[..n]);
    }
    staged
}

/// `A^T m A` of `n` (at most [`RUN`]) 4x4 tiles at once, `m[xi]` holding each tile's value xi:
/// returns `out[i][tile]`, i the tile's 4 pixels of its 2x2 output, row major.
fn output_transforms(m: [&[f32]; 16], n: usize) -> [[f32; RUN]; 4] {
    let m = &stage(m, n);
    let mut s = [[[0.0f32; RUN]; 4]; 2];
    for c in 0..4 {
        for k in 0..RUN {
            s[0][c][k] = m[c][k] + m[4 + c][k] + m[8 + c][k];
            s[1][c][k] = m[4 + c][k] - m[8 + c][k] - m[12 + c][k];
        }
    }
    let mut out = [[0.0f32; RUN]; 4];
    for k in 0..RUN {
        out[0][k] = s[0][0][k] + s[0][1][k] + s[0][2][k];
        out[1][k] = s[0][1][k] - s[0][2][k] - s[0][3][k];
        out[2][k] = s[1][0][k] + s[1][1][k] + s[1][2][k];
        out[3][k] = s[1][1][k] - s[1][2][k] - s[1][3][k];
    }
    out
}

/// `A y A^T` of 2x2 tiles side by side, `y[i][tile]` holding pixel i (row major) of each: the
/// transpose of [`output_transforms`]' `A^T m A`. Returns `out[xi][tile]`.
fn output_gradient_transforms(y: &[[f32; RUN]; 4]) -> [[f32; RUN]; 16] {
    // A y: rows y0, y0 + y1, y0 - y1, -y1 of each column; then the same along each row.
    let mut z = [[[0.0f32; RUN]; 2]; 4];
    for c in 0..2 {
        for k in 0..RUN {
            let (top, bottom) = (y[c][k], y[2 + c][k]);
            z[0][c][k] = top;
            z[1][c][k] = top + bottom;
            z[2][c][k] = top - bottom;
            z[3][c][k] = -bottom;
        }
    }
    let mut out = [[0.0f32; RUN]; 16];
    for (r, z) in z.iter().enumerate() {
        for k in 0..RUN {
            out[4 * r][k] = z[0][k];
            out[4 * r + 1][k] = z[0][k] + z[1][k];
            out[4 * r + 2][k] = z[0][k] - z[1][k];
            out[4 * r + 3][k] = -z[1][k];
        }
    }
    out
}

/// The 4x4 window of plane `x` at `p` (zero outside the plane).
#[inline(always)]
fn window(t: &Tiles, x: &[f32], p: TilePlace, inside: bool) -> [[f32; 4]; 4] {
    let mut d = [[0.0f32; 4]; 4];
    if inside {
        let at = p.iy as usize * t.in_w + p.ix as usize;
        for (r, d) in d.iter_mut().enumerate() {
            d.copy_from_slice(&x[at + r * t.in_w..][..4]);
        }
    } else {
        for (r, d) in d.iter_mut().enumerate() {
            let iy = p.iy + r as isize;
            if iy < 0 || iy as usize >= t.in_h {
                continue;
            }
            for (c, d) in d.iter_mut().enumerate() {
                let ix = p.ix + c as isize;
                if ix >= 0 && (ix as usize) < t.in_w {
                    *d = x[iy as usize * t.in_w + ix as usize];
                }
            }
        }
    }
    d
}

/// `V` of the block `t0..t0 + len` of image `x`, into `v` ([16][in][len]): runs of windows
/// wholly inside the input by [`transform_windows`], the rest window by window.
fn transform_input(t: &Tiles, x: &[f32], block @ (_, len): (usize, usize), v: &mut [f32]) {
    let (cin, plane) = (t.in_channels, t.in_h * t.in_w);
    for run in t.runs(block) {
        let first = t.place(run.first);
        let inside = t.inside(first) && first.ix as usize + 2 * run.tiles + 2 <= t.in_w;
        for ci in 0..cin {
            let x = &x[ci * plane..(ci + 1) * plane];
            let at = |xi: usize| (xi * cin + ci) * len + run.at;
            if inside {
                let corner = first.iy as usize * t.in_w + first.ix as usize;
                let rows = std::array::from_fn(|r| &x[corner + r * t.in_w..]);
                for (xi, values) in transform_windows(rows, run.tiles).iter().enumerate() {
                    v[at(xi)..][..run.tiles].copy_from_slice(&values[..run.tiles]);
                }
            } else {
                for k in 0..run.tiles {
                    let p = t.place(run.first + k);
                    let d = window(t, x, p, t.inside(p));
                    for (xi, value) in input_transform(&d).into_iter().enumerate() {
                        v[at(xi) + k] = value;
                    }
                }
            }
        }
    }
}

/// `Yh = A dY A^T` of the block `t0..t0 + len` of one image's `dy`, into `yh` ([16][out][len]),
/// a run of tiles at a time ([`output_gradient_transforms`]); `dy` is zero past the output.
fn transform_output_gradient(t: &Tiles, dy: &[f32], block @ (_, len): (usize, usize), yh: &mut [f32]) {
    let (cout, plane) = (t.out_channels, t.out_h * t.out_w);
    for run in t.runs(block) {
        let first = t.place(run.first);
        let (cols, rows) = ((t.out_w - first.ox).min(2 * run.tiles), (t.out_h - first.oy).min(2));
        for co in 0..cout {
            let at = co * plane + first.oy * t.out_w + first.ox;
            // y[2r + c][k]: pixel (r, c) of tile k, split from the run's two rows of dy.
            let mut y = [[0.0f32; RUN]; 4];
            for r in 0..rows {
                for (j, &g) in dy[at + r * t.out_w..][..cols].iter().enumerate() {
                    y[2 * r + j % 2][j / 2] = g;
                }
            }
            for (xi, values) in output_gradient_transforms(&y).iter().enumerate() {
                yh[(xi * cout + co) * len + run.at..][..run.tiles].copy_from_slice(&values[..run.tiles]);
            }
        }
    }
}

/// The 16 GEMMs `c[xi] = a[xi] * b[xi]`, each operand given as the matrix of position xi.
fn gemms<'a, 'b>(a: impl Fn(usize) -> Matrix<'a>, b: impl Fn(usize) -> Matrix<'b>, beta: f32, c: &mut [f32]) {
    let (rows, cols) = (a(0).rows, b(0).cols);
    for (xi, c) in c.chunks_exact_mut(rows * cols).take(16).enumerate() {
        matmul(a(xi), b(xi), beta, c, cols);
    }
}

/// A forward Winograd convolution ready for its images: the transformed weights, computed once.
pub(super) struct Forward<'a> {
    t: Tiles,
    /// `U`, [16][out][in].
    u: Vec<f32>,
    bias: &'a [f32],
    relu: bool,
}

impl<'a> Forward<'a> {
    /// `s` must be a 3x3 kernel of stride 1 ([`ConvAlgorithm::winograd_fits`]).
    pub(super) fn new(s: &Conv2dShape, w: &[f32], bias: &'a [f32], relu: bool) -> Self {
        assert!(ConvAlgorithm::winograd_fits(s), "winograd: a 3x3 kernel of stride 1, not {s:?}");
        Self { t: Tiles::new(s), u: transform_weights(s, w), bias, relu }
    }

    /// One image `x` ([in, in_h, in_w]) into `y` ([out, out_h, out_w]), every element written.
    /// Uses this thread's scratch buffer.
    pub(super) fn image(&self, x: &[f32], y: &mut [f32]) {
        let t = &self.t;
        let (cin, cout) = (t.in_channels, t.out_channels);
        let plane = t.out_h * t.out_w;
        with_scratch(16 * (cin + cout) * t.block, |scratch| {
            for block @ (_, len) in t.blocks() {
                let (v, m) = scratch.split_at_mut(16 * cin * len);
                let m = &mut m[..16 * cout * len];
                transform_input(t, x, block, v);
                let v: &[f32] = v;
                let u = |xi: usize| Matrix::rows(&self.u[xi * cout * cin..], cout, cin, cin);
                gemms(u, |xi| Matrix::rows(&v[xi * cin * len..], cin, len, len), 0.0, m);
                // Y = A^T M A, the bias and the ReLU, each tile clipped to the output.
                for run in t.runs(block) {
                    let first = t.place(run.first);
                    let below = first.oy + 1 < t.out_h;
                    for (co, &b) in self.bias.iter().enumerate() {
                        let m = std::array::from_fn(|xi| &m[(xi * cout + co) * len + run.at..][..run.tiles]);
                        let mut out = output_transforms(m, run.tiles);
                        for out in &mut out {
                            for v in out.iter_mut() {
                                *v = if self.relu { (*v + b).max(0.0) } else { *v + b };
                            }
                        }
                        let y = &mut y[co * plane..(co + 1) * plane];
                        for (k, pixels) in (0..run.tiles).map(|k| out.map(|o| o[k])).enumerate() {
                            let at = first.oy * t.out_w + first.ox + 2 * k;
                            let right = first.ox + 2 * k + 1 < t.out_w;
                            y[at] = pixels[0];
                            if right {
                                y[at + 1] = pixels[1];
                            }
                            if below {
                                y[at + t.out_w] = pixels[2];
                                if right {
                                    y[at + t.out_w + 1] = pixels[3];
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The backward pass from `dy` (the gradient before any ReLU): [`super::conv2d::backward`] by
/// Winograd, the input gradient into `dx` and the weight and bias gradients into `dw_db` when
/// given, every element of each written. `s` must be a 3x3 kernel of stride 1.
pub(super) fn backward(
    s: &Conv2dShape,
    x: &[f32],
    w: &[f32],
    dy: OutputGradient,
    dx: Option<&mut [f32]>,
    dw_db: Option<(&mut [f32], &mut [f32])>,
) -> Result<()> {
    assert!(ConvAlgorithm::winograd_fits(s), "winograd: a 3x3 kernel of stride 1, not {s:?}");
    let t = Tiles::new(s);
    let (cin, cout) = (t.in_channels, t.out_channels);
    let (image, out_image, out_plane) = (t.input_len(), t.output_len(), t.out_h * t.out_w);
    let u = if dx.is_some() { transform_weights(s, w) } else { Vec::new() };
    // Each group's dU ([16][out][in]), then its bias gradient.
    let du_len = 16 * cout * cin;
    let partial_len = dw_db.is_some().then_some(du_len + cout);
    let sums = backward_by_image_groups(s.batch, image, dx, partial_len, |task| {
        let Task { images, mut partial, mut dx } = task;
        // Yh [16][out][block], then V or dV [16][in][block].
        with_scratch(16 * (cout + cin) * t.block, |scratch| {
            for (i, n) in images.enumerate() {
                let x = &x[n * image..(n + 1) * image];
                dy.image(n, out_image, |dy| {
                    for block @ (_, len) in t.blocks() {
                        let (yh, v) = scratch.split_at_mut(16 * cout * len);
                        let v = &mut v[..16 * cin * len];
                        transform_output_gradient(&t, dy, block, yh);
                        let yh: &[f32] = yh;
                        let yh_at = |xi: usize| Matrix::rows(&yh[xi * cout * len..], cout, len, len);
                        if let Some(partial) = partial.as_deref_mut() {
                            // dU[xi] += Yh[xi] V[xi]^T, reducing over the block's tiles.
                            transform_input(&t, x, block, v);
                            let v_read: &[f32] = v;
                            let v_t = |xi: usize| Matrix::rows(&v_read[xi * cin * len..], cin, len, len).t();
                            gemms(yh_at, v_t, 1.0, &mut partial[..du_len]);
                        }
                        if let Some(dx) = dx.as_deref_mut() {
                            // dV[xi] = U[xi]^T Yh[xi], then B dV B^T into each window.
                            let u_t = |xi: usize| Matrix::rows(&u[xi * cout * cin..], cout, cin, cin).t();
                            gemms(u_t, yh_at, 0.0, v);
                            add_input_gradient(&t, v, block, &mut dx[i * image..(i + 1) * image]);
                        }
                    }
                    if let Some(partial) = partial.as_deref_mut() {
                        add_bias_gradient(&mut partial[du_len..], dy, out_plane);
                    }
                })?;
            }
            Ok(())
        })
    })?;
    if let Some((dw, db)) = dw_db {
        let (du, sum_db) = sums.split_at(du_len);
        db.copy_from_slice(sum_db);
        let pairs = cout * cin;
        dw.par_chunks_mut(9 * cin).enumerate().for_each(|(co, dw)| {
            for (ci, dw) in dw.chunks_exact_mut(9).enumerate() {
                let pair = co * cin + ci;
                let tile: [f32; 16] = std::array::from_fn(|xi| du[xi * pairs + pair]);
                dw.copy_from_slice(&kernel_gradient(&tile));
            }
        });
    }
    Ok(())
}

/// Adds `B dV B^T` of each tile of the block (`dv` [16][in][len]) into its input window of one
/// image's `dx`, dropping what falls outside the input. A run of windows wholly inside adds row by
/// row, the columns where neighbours overlap summed first; the others value by value.
fn add_input_gradient(t: &Tiles, dv: &[f32], block @ (_, len): (usize, usize), dx: &mut [f32]) {
    let (cin, plane) = (t.in_channels, t.in_h * t.in_w);
    for run in t.runs(block) {
        let first = t.place(run.first);
        let inside = t.inside(first) && first.ix as usize + 2 * run.tiles + 2 <= t.in_w;
        for ci in 0..cin {
            let d = input_gradient_transforms(
                std::array::from_fn(|xi| &dv[(xi * cin + ci) * len + run.at..][..run.tiles]),
                run.tiles,
            );
            let dx = &mut dx[ci * plane..(ci + 1) * plane];
            if inside {
                let corner = first.iy as usize * t.in_w + first.ix as usize;
                for (r, d) in d.iter().enumerate() {
                    // Column 2k + c takes tile k's column c and tile k - 1's column c + 2.
                    let (mut even, mut odd) = ([0.0f32; RUN + 1], [0.0f32; RUN + 1]);
                    even[..RUN].copy_from_slice(&d[0]);
                    odd[..RUN].copy_from_slice(&d[1]);
                    for k in 0..RUN {
                        even[k + 1] += d[2][k];
                        odd[k + 1] += d[3][k];
                    }
                    let row = &mut dx[corner + r * t.in_w..][..2 * run.tiles + 2];
                    for ((pair, e), o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
                        pair[0] += e;
                        pair[1] += o;
                    }
                }
            } else {
                for k in 0..run.tiles {
                    let p = t.place(run.first + k);
                    for (r, d) in d.iter().enumerate() {
                        let iy = p.iy + r as isize;
                        if iy < 0 || iy as usize >= t.in_h {
                            continue;
                        }
                        for (c, d) in d.iter().enumerate() {
                            let ix = p.ix + c as isize;
                            if ix >= 0 && (ix as usize) < t.in_w {
                                dx[iy as usize * t.in_w + ix as usize] += d[k];
                            }
                        }
                    }
                }
            }
        }
    }
}

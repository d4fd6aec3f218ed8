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
//! Tiles go through in blocks of at most [`tiles::BLOCK_VALUES`] transformed values, laid out
//! [16][channels][tiles] so that each GEMM's operands are contiguous and stay in L2. Work is split
//! by image, as in [`super::conv2d`] (the backward pass by groups of images whose partial `dU`
//! are summed in group order), so the bits do not depend on the thread count.
//!
//! The transforms' additions (of up to 16 window values, with halves) cost accuracy: measured
//! errors and the tests' bounds are in `docs/native-cpu.md` and `tests/kernels/native.rs`.

mod tiles;
mod transforms;

use std::sync::OnceLock;

use rayon::prelude::*;

use super::buffers::with_scratch;
use super::gemm::{Matrix, matmul};
use super::image_groups::{OutputGradient, Task, add_bias_gradient, backward_by_image_groups};
use crate::error::Result;
use crate::shape::Conv2dShape;
use tiles::{Tiles, add_input_gradient, transform_input, transform_output_gradient};
use transforms::{kernel_gradient, output_transforms, transform_weights};

/// The environment variable that chooses the convolution algorithm: `im2col`, `winograd` or `auto`.
pub const CONV_ALGORITHM_ENV: &str = "WGCNN_CONV_ALGORITHM";

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

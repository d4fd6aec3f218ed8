//! One image's 2x2 output tiles, their blocks and runs, and the moves between an image and a
//! block of transformed tiles: gathering input windows and output gradients, scattering input
//! gradients back.

use super::transforms::{
    RUN, input_gradient_transforms, input_transform, output_gradient_transforms, transform_windows,
};
use crate::shape::Conv2dShape;

/// Transformed values (inputs and products, [16][channels][tiles]) one block of tiles holds:
/// 512 KiB of f32, half this machine's L2 per core.
const BLOCK_VALUES: usize = 128 * 1024;

/// The tiles of one image and their blocks.
pub(super) struct Tiles {
    pub(super) in_channels: usize,
    pub(super) out_channels: usize,
    pub(super) in_h: usize,
    pub(super) in_w: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
    pub(super) pad_top: usize,
    pub(super) pad_left: usize,
    /// Tiles per column and per row of the output.
    pub(super) tiles_h: usize,
    pub(super) tiles_w: usize,
    /// Tiles per block.
    pub(super) block: usize,
}

/// Where a tile lies: its output's top-left pixel and its input window's top-left corner (which
/// may lie in the padding, so signed).
#[derive(Clone, Copy)]
pub(super) struct TilePlace {
    pub(super) oy: usize,
    pub(super) ox: usize,
    pub(super) iy: isize,
    pub(super) ix: isize,
}

/// Tiles side by side along one tile row of the output.
pub(super) struct Run {
    /// The first tile's index within its block, and in the image.
    pub(super) at: usize,
    pub(super) first: usize,
    /// How many (at most [`RUN`]).
    pub(super) tiles: usize,
}

impl Tiles {
    pub(super) fn new(s: &Conv2dShape) -> Self {
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

    pub(super) fn input_len(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }

    pub(super) fn output_len(&self) -> usize {
        self.out_channels * self.out_h * self.out_w
    }

    /// The first tile and tile count of each block.
    pub(super) fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let count = self.tiles_h * self.tiles_w;
        (0..count).step_by(self.block).map(move |t0| (t0, self.block.min(count - t0)))
    }

    /// The block's tiles in runs of at most [`RUN`] along one tile row.
    pub(super) fn runs(&self, (t0, len): (usize, usize)) -> impl Iterator<Item = Run> + '_ {
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

    pub(super) fn place(&self, tile: usize) -> TilePlace {
        let (oy, ox) = (2 * (tile / self.tiles_w), 2 * (tile % self.tiles_w));
        TilePlace { oy, ox, iy: oy as isize - self.pad_top as isize, ix: ox as isize - self.pad_left as isize }
    }

    /// Whether a tile's whole 4x4 input window lies inside the input.
    pub(super) fn inside(&self, p: TilePlace) -> bool {
        p.iy >= 0 && p.ix >= 0 && p.iy as usize + 4 <= self.in_h && p.ix as usize + 4 <= self.in_w
    }
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
pub(super) fn transform_input(t: &Tiles, x: &[f32], block @ (_, len): (usize, usize), v: &mut [f32]) {
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
pub(super) fn transform_output_gradient(t: &Tiles, dy: &[f32], block @ (_, len): (usize, usize), yh: &mut [f32]) {
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

/// Adds `B dV B^T` of each tile of the block (`dv` [16][in][len]) into its input window of one
/// image's `dx`, dropping what falls outside the input. A run of windows wholly inside adds row by
/// row, the columns where neighbours overlap summed first; the others value by value.
pub(super) fn add_input_gradient(t: &Tiles, dv: &[f32], block @ (_, len): (usize, usize), dx: &mut [f32]) {
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

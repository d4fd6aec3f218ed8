//! The F(2x2, 3x3) transforms, `B^T`, `G` and `A^T` and their transposes, of one tile or a run
//! of tiles side by side.

use crate::shape::Conv2dShape;

/// `U = G g G^T` for each (out, in) kernel `g` of `w` ([out, in, 3, 3]), as [16][out][in].
pub(super) fn transform_weights(s: &Conv2dShape, w: &[f32]) -> Vec<f32> {
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
pub(super) fn kernel_gradient(du: &[f32; 16]) -> [f32; 9] {
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
pub(super) fn input_transform(d: &[[f32; 4]; 4]) -> [f32; 16] {
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
pub(super) const RUN: usize = 32;

/// [`input_transform`] of `n` (at most [`RUN`]) windows side by side along a tile row, wholly
/// inside the input: `rows` are the 4 input rows from the first window's left edge, each of at
/// least `2n + 2` values. Returns `V[xi][tile]`. Each step runs over all tiles at once (the rows
/// split into even and odd columns first), so the compiler vectorises it.
pub(super) fn transform_windows(rows: [&[f32]; 4], n: usize) -> [[f32; RUN]; 16] {
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
pub(super) fn input_gradient_transforms(x: [&[f32]; 16], n: usize) -> [[[f32; RUN]; 4]; 4] {
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
pub(super) fn output_transforms(m: [&[f32]; 16], n: usize) -> [[f32; RUN]; 4] {
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
pub(super) fn output_gradient_transforms(y: &[[f32; RUN]; 4]) -> [[f32; RUN]; 16] {
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

//! 2-D convolution: the definition, as loops.

use super::Real;
use crate::shape::Conv2dShape;

/// Index of `x[n][c][h][w]` in a row-major [_, channels, height, width] tensor.
fn at(n: usize, c: usize, h: usize, w: usize, channels: usize, height: usize, width: usize) -> usize {
    ((n * channels + c) * height + h) * width + w
}

/// Input position read by output position `o` through tap `k`, if inside the input.
fn source(o: usize, k: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
    (o * stride + k).checked_sub(pad).filter(|&i| i < size)
}

/// `y[n][co][oy][ox] = b[co] + sum_{ci,ky,kx} w[co][ci][ky][kx] * x[n][ci][oy*s+ky-pt][ox*s+kx-pl]`,
/// then `max(y, 0)` if `relu`. Taps outside the input read zero.
pub fn forward<T: Real>(s: &Conv2dShape, x: &[T], w: &[T], b: &[T], relu: bool) -> Vec<T> {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![T::zero(); s.batch * s.out_channels * oh * ow];
    for n in 0..s.batch {
        for co in 0..s.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = b[co];
                    for ci in 0..s.in_channels {
                        for ky in 0..s.kernel_h {
                            let Some(iy) = source(oy, ky, s.stride, s.pad_top(), s.in_h) else {
                                continue;
                            };
                            for kx in 0..s.kernel_w {
                                let Some(ix) = source(ox, kx, s.stride, s.pad_left(), s.in_w) else {
                                    continue;
                                };
                                sum = sum
                                    + w[at(co, ci, ky, kx, s.in_channels, s.kernel_h, s.kernel_w)]
                                        * x[at(n, ci, iy, ix, s.in_channels, s.in_h, s.in_w)];
                            }
                        }
                    }
                    y[at(n, co, oy, ox, s.out_channels, oh, ow)] = if relu { sum.max(T::zero()) } else { sum };
                }
            }
        }
    }
    y
}

/// Gradients of `sum(y * dy)` w.r.t. x, w and b, where `dy` is the gradient at the convolution's
/// output (before any ReLU: apply the ReLU backward first). Returns (dx, dw, db).
pub fn backward<T: Real>(s: &Conv2dShape, x: &[T], w: &[T], dy: &[T]) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut dx = vec![T::zero(); x.len()];
    let mut dw = vec![T::zero(); w.len()];
    let mut db = vec![T::zero(); s.out_channels];
    for n in 0..s.batch {
        for co in 0..s.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = dy[at(n, co, oy, ox, s.out_channels, oh, ow)];
                    db[co] = db[co] + g;
                    for ci in 0..s.in_channels {
                        for ky in 0..s.kernel_h {
                            let Some(iy) = source(oy, ky, s.stride, s.pad_top(), s.in_h) else {
                                continue;
                            };
                            for kx in 0..s.kernel_w {
                                let Some(ix) = source(ox, kx, s.stride, s.pad_left(), s.in_w) else {
                                    continue;
                                };
                                let wi = at(co, ci, ky, kx, s.in_channels, s.kernel_h, s.kernel_w);
                                let xi = at(n, ci, iy, ix, s.in_channels, s.in_h, s.in_w);
                                dw[wi] = dw[wi] + g * x[xi];
                                dx[xi] = dx[xi] + g * w[wi];
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

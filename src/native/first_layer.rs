//! The weight gradient of a convolution with few input channels (a network's first layer: 1 or 3),
//! computed directly instead of by im2col and GEMM. There the GEMM is `out_channels` x
//! `9 * in_channels` reduced over every pixel: too small an output for the GEMM crate's blocking,
//! and im2col writes nine copies of the input first (A.conv1: 35 GFLOP/s against the machine's
//! 110).
//!
//! Direct: for 3 output channels, one input channel and one kernel row at a time, 9 vector
//! accumulators (3 channels x 3 kernel columns, one lane of each per output column modulo the
//! vector width) run along every output row of a band, `acc[co][kx] += dy[co, oy, ox..] *
//! x[ci, oy + ky, ox + kx..]`. The band's rows are copied first into scratch with zero padding
//! (rows and columns outside the image, columns up to a whole vector), so the inner loop has no
//! edges. An image's lanes are summed in lane order into its group's partial, so the bits do not
//! depend on the thread count (they do on the vector width, as the GEMMs' do).
//!
//! The vector width is the kernel set's ([`CpuKernels::in_use`]): 16 lanes for AVX-512, 8 for
//! AVX2+FMA and the portable path; the same source is compiled for each (`#[target_feature]`).

use super::buffers::with_scratch;
use super::gemm::CpuKernels;
use super::image_groups::{OutputGradient, Task, add_bias_gradient, backward_by_image_groups};
use crate::error::Result;
use crate::shape::Conv2dShape;

/// Kernel columns of the shapes this path takes (the accumulators are unrolled over them).
const KW: usize = 3;
/// Output channels per pass over a band: 9 accumulators, 3 gradient vectors and 1 input vector
/// fit AVX2's 16 registers (4 channels spilled two accumulators, each then a store-to-load chain).
const CHANNELS: usize = 3;
/// The most values of a band's padded output gradient (128 KiB of f32, a quarter of L2).
const BAND_VALUES: usize = 32 * 1024;

/// Whether this path computes `s`'s weight gradient: stride 1, kernels 3 wide, few input channels.
pub(super) fn fits(s: &Conv2dShape) -> bool {
    s.stride == 1 && s.kernel_w == KW && s.in_channels <= 4
}

/// The padded band layout of one shape at a vector width of `lanes`.
struct Band {
    /// Output columns rounded up to whole vectors: the padded gradient's row length.
    dy_w: usize,
    /// Input row length in the band: every column a vector at `dy_w` plus `KW - 1` reads.
    x_w: usize,
    /// Output channels rounded up to whole groups of [`CHANNELS`] (the extra ones are zero).
    channels: usize,
    /// Output rows a band holds.
    rows: usize,
    lanes: usize,
}

impl Band {
    fn new(s: &Conv2dShape, lanes: usize) -> Self {
        let dy_w = s.out_w().div_ceil(lanes) * lanes;
        let channels = s.out_channels.div_ceil(CHANNELS) * CHANNELS;
        let rows = (BAND_VALUES / (channels * dy_w)).clamp(1, s.out_h().max(1));
        Self { dy_w, x_w: dy_w + KW - 1, channels, rows, lanes }
    }

    fn x_rows(&self, s: &Conv2dShape) -> usize {
        self.rows + s.kernel_h - 1
    }

    /// Scratch values: the band's gradient, its input rows, and the image's lane accumulators.
    fn scratch_len(&self, s: &Conv2dShape) -> usize {
        self.channels * self.rows * self.dy_w + s.in_channels * self.x_rows(s) * self.x_w + self.accumulators(s)
    }

    /// [channels, in_channels, kernel_h, KW, lanes].
    fn accumulators(&self, s: &Conv2dShape) -> usize {
        self.channels * s.in_channels * s.kernel_h * KW * self.lanes
    }
}

/// The weight and bias gradients of `s` (which [`fits`]) into `dw` and `db` by the kernel set
/// `kernels` (which the CPU must run: [`CpuKernels::in_use`] but in tests), every element written,
/// as the im2col path computes them. Fails only where `dy` comes from a pool whose argmax lies
/// outside its window's plane.
pub(super) fn weight_gradient(
    kernels: CpuKernels,
    s: &Conv2dShape,
    x: &[f32],
    dy: OutputGradient,
    dw: &mut [f32],
    db: &mut [f32],
) -> Result<()> {
    assert!(fits(s), "first_layer: stride 1, 3 columns, at most 4 input channels, not {s:?}");
    assert!(kernels <= CpuKernels::detected(), "first_layer: {kernels} kernels on a CPU without them");
    let band = Band::new(s, if kernels == CpuKernels::Avx512 { 16 } else { 8 });
    let image = s.in_channels * s.in_h * s.in_w;
    let out_image = s.out_channels * s.out_h() * s.out_w();
    let dw_len = s.out_channels * s.in_channels * s.kernel_h * KW;
    let sums = backward_by_image_groups(s.batch, image, None, Some(dw_len + s.out_channels), |task| {
        let Task { images, partial, .. } = task;
        let partial = partial.expect("a partial is asked for");
        with_scratch(band.scratch_len(s), |scratch| {
            for n in images {
                let x = &x[n * image..(n + 1) * image];
                dy.image(n, out_image, |dy| {
                    image_gradient(kernels, s, &band, x, dy, scratch, &mut partial[..dw_len]);
                    add_bias_gradient(&mut partial[dw_len..], dy, s.out_h() * s.out_w());
                })?;
            }
            Ok(())
        })
    })?;
    let (sum_dw, sum_db) = sums.split_at(dw_len);
    dw.copy_from_slice(sum_dw);
    db.copy_from_slice(sum_db);
    Ok(())
}

/// Adds one image's weight gradient into `dw`, by the kernel set's vector width.
fn image_gradient(
    kernels: CpuKernels,
    s: &Conv2dShape,
    band: &Band,
    x: &[f32],
    dy: &[f32],
    scratch: &mut [f32],
    dw: &mut [f32],
) {
    match kernels {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `weight_gradient` checked that the CPU runs this kernel set.
        CpuKernels::Avx512 => unsafe { image_avx512(s, band, x, dy, scratch, dw) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        CpuKernels::Avx2 => unsafe { image_avx2(s, band, x, dy, scratch, dw) },
        _ => image_body::<8>(s, band, x, dy, scratch, dw, |a, b, c| c + a * b),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn image_avx512(s: &Conv2dShape, band: &Band, x: &[f32], dy: &[f32], scratch: &mut [f32], dw: &mut [f32]) {
    image_body::<16>(s, band, x, dy, scratch, dw, f32::mul_add)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn image_avx2(s: &Conv2dShape, band: &Band, x: &[f32], dy: &[f32], scratch: &mut [f32], dw: &mut [f32]) {
    image_body::<8>(s, band, x, dy, scratch, dw, f32::mul_add)
}

/// `L` values of `v` from `at`.
#[inline(always)]
fn lanes<const L: usize>(v: &[f32], at: usize) -> [f32; L] {
    *<&[f32; L]>::try_from(&v[at..at + L]).expect("a slice of L values")
}

/// The body of every width: `madd(a, b, c)` is `c + a * b` (fused where the CPU has FMA).
#[inline(always)]
fn image_body<const L: usize>(
    s: &Conv2dShape,
    band: &Band,
    x: &[f32],
    dy: &[f32],
    scratch: &mut [f32],
    dw: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    debug_assert_eq!(band.lanes, L);
    let (out_h, out_w, plane) = (s.out_h(), s.out_w(), s.in_h * s.in_w);
    let (kh, cin) = (s.kernel_h, s.in_channels);
    let x_rows = band.x_rows(s);
    let (dy_band, rest) = scratch.split_at_mut(band.channels * band.rows * band.dy_w);
    let (x_band, acc) = rest.split_at_mut(cin * x_rows * band.x_w);
    let acc = &mut acc[..band.accumulators(s)];
    acc.fill(0.0);
    for oy0 in (0..out_h).step_by(band.rows) {
        let rows = band.rows.min(out_h - oy0);
        // The band's output gradient, [channels, rows, dy_w], zero past the image's channels and columns.
        for (co, dst) in dy_band.chunks_exact_mut(band.rows * band.dy_w).enumerate() {
            for (r, dst) in dst.chunks_exact_mut(band.dy_w).take(rows).enumerate() {
                let (inside, pad) = dst.split_at_mut(if co < s.out_channels { out_w } else { 0 });
                if co < s.out_channels {
                    inside.copy_from_slice(&dy[(co * out_h + oy0 + r) * out_w..][..out_w]);
                }
                pad.fill(0.0);
            }
        }
        // Its input rows oy0 - pad_top .. + x_rows, [in_channels, x_rows, x_w], zero outside the image.
        for (ci, dst) in x_band.chunks_exact_mut(x_rows * band.x_w).enumerate() {
            for (r, dst) in dst.chunks_exact_mut(band.x_w).take(rows + kh - 1).enumerate() {
                dst.fill(0.0);
                let Some(iy) = (oy0 + r).checked_sub(s.pad_top()).filter(|&iy| iy < s.in_h) else { continue };
                // Input column ix lands at ix + pad_left; columns past the last output's window are cut.
                let src = &x[ci * plane + iy * s.in_w..][..s.in_w];
                let skip = s.pad_left().min(band.x_w);
                let take = s.in_w.min(band.x_w - skip);
                dst[skip..skip + take].copy_from_slice(&src[..take]);
            }
        }
        for cg in (0..band.channels).step_by(CHANNELS) {
            for ci in 0..cin {
                for ky in 0..kh {
                    // acc[co][kx], CHANNELS x KW vectors, kept in registers along the band.
                    let mut a = [[[0.0f32; L]; KW]; CHANNELS];
                    for (j, a) in a.iter_mut().enumerate() {
                        for (kx, a) in a.iter_mut().enumerate() {
                            *a = lanes(acc, ((((cg + j) * cin + ci) * kh + ky) * KW + kx) * L);
                        }
                    }
                    for r in 0..rows {
                        let x_row = &x_band[(ci * x_rows + r + ky) * band.x_w..][..band.x_w];
                        let dy_row = |j: usize| &dy_band[((cg + j) * band.rows + r) * band.dy_w..][..band.dy_w];
                        let dy_rows: [&[f32]; CHANNELS] = std::array::from_fn(dy_row);
                        for o in (0..band.dy_w).step_by(L) {
                            let d: [[f32; L]; CHANNELS] = std::array::from_fn(|j| lanes(dy_rows[j], o));
                            // Indexed, so each (channel, column) accumulator stays one register.
                            #[allow(clippy::needless_range_loop)]
                            for kx in 0..KW {
                                let xv: [f32; L] = lanes(x_row, o + kx);
                                for j in 0..CHANNELS {
                                    for l in 0..L {
                                        a[j][kx][l] = madd(d[j][l], xv[l], a[j][kx][l]);
                                    }
                                }
                            }
                        }
                    }
                    for (j, a) in a.iter().enumerate() {
                        for (kx, a) in a.iter().enumerate() {
                            let at = ((((cg + j) * cin + ci) * kh + ky) * KW + kx) * L;
                            acc[at..at + L].copy_from_slice(a);
                        }
                    }
                }
            }
        }
    }
    // The lanes of each weight, in lane order, into dw ([out_channels, in_channels, kernel_h, KW]).
    for (dw, lanes) in dw.iter_mut().zip(acc.chunks_exact(L)) {
        *dw += lanes.iter().sum::<f32>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Padding;

    /// Values in [-0.5, 0.5) from splitmix64: a Weyl sequence's values would make every lane's
    /// running sum drift the same way, an error no real gradient has.
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (0..n).map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect()
    }

    /// `dw[co, ci, ky, kx]` and `db[co]` in f64, term by term.
    fn naive(s: &Conv2dShape, x: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut dw = vec![0.0; s.out_channels * s.in_channels * s.kernel_h * KW];
        let mut db = vec![0.0; s.out_channels];
        for n in 0..s.batch {
            for co in 0..s.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let d = f64::from(dy[((n * s.out_channels + co) * oh + oy) * ow + ox]);
                        db[co] += d;
                        for ci in 0..s.in_channels {
                            for ky in 0..s.kernel_h {
                                for kx in 0..KW {
                                    let iy = (oy + ky).checked_sub(s.pad_top()).filter(|&iy| iy < s.in_h);
                                    let ix = (ox + kx).checked_sub(s.pad_left()).filter(|&ix| ix < s.in_w);
                                    if let (Some(iy), Some(ix)) = (iy, ix) {
                                        let v = x[((n * s.in_channels + ci) * s.in_h + iy) * s.in_w + ix];
                                        dw[((co * s.in_channels + ci) * s.kernel_h + ky) * KW + kx] += d * f64::from(v);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (dw, db)
    }

    /// Every kernel set this CPU runs, on one thread and on two, gives the gradients within
    /// rounding, and the same bits on either thread count: `same` and `valid`, 1 to 4 input
    /// channels, output channels that are not whole groups of 3, ragged widths, several bands.
    #[test]
    fn every_kernel_set_this_cpu_runs_gives_the_weight_gradient() {
        let shape = |batch, in_channels, in_h, in_w, out_channels, kernel_h, padding| Conv2dShape {
            batch,
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h,
            kernel_w: 3,
            stride: 1,
            padding,
        };
        let shapes = [
            shape(1, 1, 3, 3, 1, 3, Padding::Valid),
            shape(3, 3, 7, 9, 5, 3, Padding::Same),
            shape(5, 3, 70, 37, 7, 3, Padding::Valid),
            shape(2, 1, 50, 23, 33, 3, Padding::Same),
            shape(6, 4, 11, 17, 4, 1, Padding::Same),
        ];
        let sets = [CpuKernels::Portable, CpuKernels::Avx2, CpuKernels::Avx512];
        for s in shapes {
            let x = values(1, s.input_dims().iter().product());
            let dy = values(2, s.output_dims().iter().product());
            let (want_dw, want_db) = naive(&s, &x, &dy);
            for set in sets.into_iter().filter(|set| *set <= CpuKernels::detected()) {
                let run = |threads| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
                    let (mut dw, mut db) = (vec![f32::NAN; want_dw.len()], vec![f32::NAN; want_db.len()]);
                    pool.install(|| weight_gradient(set, &s, &x, OutputGradient::Given(&dy), &mut dw, &mut db))
                        .expect("a given gradient");
                    (dw, db)
                };
                let (dw, db) = run(1);
                let terms = (s.batch * s.out_h() * s.out_w()) as f64;
                for (got, want) in dw.iter().zip(&want_dw).chain(db.iter().zip(&want_db)) {
                    let got = f64::from(*got);
                    assert!((got - want).abs() <= 1e-6 * terms.sqrt() + 1e-6, "{set} {s:?}: {got} vs {want}");
                }
                let (dw2, db2) = run(2);
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!((bits(&dw), bits(&db)), (bits(&dw2), bits(&db2)), "{set} {s:?}: one thread against two");
            }
        }
    }
}

//! Sums of long runs of f32 in an order that vectorises: [`LANES`] interleaved running sums, then
//! those in lane order. One running sum waits on each add (about 4 cycles an element, the
//! largest cost of a first layer's bias gradient); interleaved ones add a vector a cycle. The
//! order depends on the length alone, so the bits are the same for any thread count and any CPU.

/// Interleaved running sums.
const LANES: usize = 16;

/// The sum of `values`.
pub(super) fn sum(values: &[f32]) -> f32 {
    sum_pairs(values, values, |v, _| v)
}

/// The sum of `f(a[i], b[i])` over the shorter of `a` and `b`.
#[inline]
pub(super) fn sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut lanes = [0.0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(&a, &b)| f(a, b)).sum();
    for (a, b) in chunks_a.zip(chunks_b) {
        for ((lane, &a), &b) in lanes.iter_mut().zip(a).zip(b) {
            *lane += f(a, b);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the lane count and a long one, within rounding of the f64 sum.
    #[test]
    fn sums_match_f64_at_every_tail_length() {
        for len in [0usize, 1, 15, 16, 17, 33, 1000, 100_003] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 104_729) % 977) as f32 / 977.0).collect();
            let want: f64 = a.iter().map(|&v| f64::from(v)).sum();
            let want_products: f64 = a.iter().zip(&b).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
            let tolerance = 1e-6 * (len as f64).max(1.0);
            assert!((f64::from(sum(&a)) - want).abs() <= tolerance, "sum of {len}");
            assert!(
                (f64::from(sum_pairs(&a, &b, |a, b| a * b)) - want_products).abs() <= tolerance,
                "products of {len}"
            );
        }
    }
}

//! Train/validation/test splits by ratios, stratified by class (each split holds about the same
//! share of every class) and reproducible from a seed. Every sample is in exactly one split.

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::{Error, Result};

/// Shares of the samples for training, validation and test; they must sum to 1.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitRatios {
    /// Share for training.
    pub train: f64,
    /// Share for validation (0: no validation split).
    pub validation: f64,
    /// Share for the final test (0: no test split).
    pub test: f64,
}

impl SplitRatios {
    /// 70/20/10, as the happy-sad tutorial splits.
    pub const TUTORIAL: SplitRatios = SplitRatios { train: 0.7, validation: 0.2, test: 0.1 };
    /// 80/10/10.
    pub const EIGHTY_TEN_TEN: SplitRatios = SplitRatios { train: 0.8, validation: 0.1, test: 0.1 };

    /// Checks that each share is in [0, 1], that they sum to 1 and that training gets some.
    pub fn validate(&self) -> Result<()> {
        let shares = [self.train, self.validation, self.test];
        let sum: f64 = shares.iter().sum();
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || (sum - 1.0).abs() > 1e-6 || self.train == 0.0 {
            return Err(Error::Invalid(format!(
                "split ratios {}/{}/{}: expected shares in [0, 1] summing to 1, with a non-zero training share",
                self.train, self.validation, self.test
            )));
        }
        Ok(())
    }

    fn shares(&self) -> [f64; 3] {
        [self.train, self.validation, self.test]
    }
}

/// Three comma-separated shares, train,validation,test, e.g. `0.7,0.2,0.1`.
impl std::str::FromStr for SplitRatios {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let shares: Vec<f64> = s
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("split {s:?}: expected three numbers, train,validation,test, as 0.7,0.2,0.1"))?;
        let [train, validation, test] = shares[..] else {
            return Err(format!("split {s:?}: expected three shares, train,validation,test, as 0.7,0.2,0.1"));
        };
        let ratios = SplitRatios { train, validation, test };
        ratios.validate().map_err(|e| e.to_string())?;
        Ok(ratios)
    }
}

impl Default for SplitRatios {
    fn default() -> Self {
        SplitRatios::TUTORIAL
    }
}

/// Sample indices of each split, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Indices for training.
    pub train: Vec<usize>,
    /// Indices for validation.
    pub validation: Vec<usize>,
    /// Indices for the final test.
    pub test: Vec<usize>,
}

impl Split {
    /// The three splits by name, in order.
    pub fn parts(&self) -> [(&'static str, &[usize]); 3] {
        [("train", &self.train), ("validation", &self.validation), ("test", &self.test)]
    }

    /// Per split (train, validation, test), the number of samples of each of `classes` classes.
    pub fn class_counts(&self, labels: &[u32], classes: usize) -> [Vec<usize>; 3] {
        self.parts().map(|(_, indices)| {
            let mut counts = vec![0; classes];
            for &i in indices {
                counts[labels[i] as usize] += 1;
            }
            counts
        })
    }
}

/// Splits the samples with these `labels` by `ratios`, class by class: each class's samples are
/// shuffled by a generator keyed by the seed and the class, and cut by the ratios rounded to
/// whole samples (largest remainders first), so the same seed gives the same split. A class with
/// at least as many samples as there are non-zero shares gets one or more in each of those splits.
pub fn stratified_split(labels: &[u32], ratios: SplitRatios, seed: u64) -> Result<Split> {
    ratios.validate()?;
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut split = Split::default();
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == class).collect();
        let mut rng = StdRng::seed_from_u64(seed ^ (class as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        members.shuffle(&mut rng);
        let counts = split_counts(members.len(), &ratios.shares());
        let (train, rest) = members.split_at(counts[0]);
        let (validation, test) = rest.split_at(counts[1]);
        split.train.extend_from_slice(train);
        split.validation.extend_from_slice(validation);
        split.test.extend_from_slice(test);
    }
    for part in [&mut split.train, &mut split.validation, &mut split.test] {
        part.sort_unstable();
    }
    Ok(split)
}

/// `n` cut by `shares` into whole counts summing to `n`: floors, then the largest remainders get
/// one more; then each non-zero share left empty takes one from the largest count, while `n` allows.
fn split_counts(n: usize, shares: &[f64; 3]) -> [usize; 3] {
    let exact = shares.map(|s| s * n as f64);
    let mut counts = exact.map(|e| e.floor() as usize);
    let mut by_remainder = [0, 1, 2];
    by_remainder.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in by_remainder.iter().cycle().take(n.saturating_sub(counts.iter().sum::<usize>())) {
        counts[i] += 1;
    }
    for i in 0..3 {
        if shares[i] > 0.0 && counts[i] == 0 {
            let largest = (0..3).max_by_key(|&j| counts[j]).expect("three counts");
            if counts[largest] > 1 {
                counts[largest] -= 1;
                counts[i] += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_by_largest_remainder_and_fill_small_splits() {
        assert_eq!(split_counts(149, &[0.7, 0.2, 0.1]), [104, 30, 15]);
        assert_eq!(split_counts(10, &[0.8, 0.1, 0.1]), [8, 1, 1]);
        assert_eq!(split_counts(3, &[0.8, 0.1, 0.1]), [1, 1, 1]);
        assert_eq!(split_counts(2, &[0.8, 0.1, 0.1]), [1, 1, 0]);
        assert_eq!(split_counts(5, &[1.0, 0.0, 0.0]), [5, 0, 0]);
    }
}

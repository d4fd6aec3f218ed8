//! Training: the data a trainer reads and the loop that fits a model to it; the per-epoch
//! history it records is [`crate::model::history`], beside the model file that stores it.

pub mod callbacks;
pub mod fit;
pub mod throughput;

use crate::{Error, Result};

/// Where batches come from: `len` samples of `sample_len` f32 each (NCHW without the N), with
/// class labels. `Sync`, as the trainer prepares the next batch on another thread.
pub trait BatchSource: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn sample_len(&self) -> usize;
    /// Writes the samples at `indices` into the start of `images`/`labels`. `epoch` is the
    /// trainer's 1-based epoch for training batches, 0 for evaluation: a source that augments keys its random draws
    /// by it, so each epoch sees new variants and a run repeats exactly; others ignore it.
    fn fill(&self, indices: &[usize], epoch: usize, images: &mut [f32], labels: &mut [u32]) -> Result<()>;
}

/// Samples held in memory as f32 (tests, generated data).
#[derive(Clone, Debug)]
pub struct InMemoryDataset {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub sample_len: usize,
}

impl InMemoryDataset {
    pub fn new(images: Vec<f32>, labels: Vec<u32>, sample_len: usize) -> Result<Self> {
        if sample_len == 0 || images.len() != labels.len() * sample_len {
            return Err(Error::Invalid(format!(
                "dataset: {} image values for {} labels of {sample_len} values each",
                images.len(),
                labels.len()
            )));
        }
        Ok(Self { images, labels, sample_len })
    }
}

impl BatchSource for InMemoryDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_len(&self) -> usize {
        self.sample_len
    }
    fn fill(&self, indices: &[usize], _epoch: usize, images: &mut [f32], labels: &mut [u32]) -> Result<()> {
        for (slot, &i) in indices.iter().enumerate() {
            let src = self
                .images
                .get(i * self.sample_len..(i + 1) * self.sample_len)
                .ok_or_else(|| Error::Invalid(format!("dataset: sample {i} of {}", self.labels.len())))?;
            images[slot * self.sample_len..(slot + 1) * self.sample_len].copy_from_slice(src);
            labels[slot] = self.labels[i];
        }
        Ok(())
    }
}

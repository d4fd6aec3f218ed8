//! Batches for the trainer from a loaded [`Dataset`]: a subset of its images (a split), turned
//! from u8 to f32 in [0, 1] a batch at a time, augmented when asked (training only).

use crate::data::augment::{Augment, PlanarShape};
use crate::data::folder::Dataset;
use crate::data::image::to_f32_into;
use crate::train::BatchSource;
use crate::{Error, Result};

/// A [`BatchSource`] over some of a dataset's images; sample `k` is image `indices[k]`.
#[derive(Clone, Debug)]
pub struct ImageBatches<'a> {
    dataset: &'a Dataset,
    indices: Vec<usize>,
    augment: Option<(Augment, u64)>,
}

impl<'a> ImageBatches<'a> {
    /// The images at `indices` (a split's), unaugmented. Errors on an index past the dataset.
    pub fn new(dataset: &'a Dataset, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= dataset.len()) {
            return Err(Error::Invalid(format!("image batches: index {bad} in a dataset of {} images", dataset.len())));
        }
        Ok(Self { dataset, indices: indices.to_vec(), augment: None })
    }

    /// Augments every sample, drawing from (`seed`, epoch, image index).
    pub fn with_augment(mut self, augment: Augment, seed: u64) -> Result<Self> {
        augment.validate()?;
        self.augment = (!augment.is_off()).then_some((augment, seed));
        Ok(self)
    }

    /// The dataset image behind each sample.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl BatchSource for ImageBatches<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn sample_len(&self) -> usize {
        self.dataset.sample_len()
    }

    fn fill(&self, samples: &[usize], epoch: usize, images: &mut [f32], labels: &mut [u32]) -> Result<()> {
        let len = self.sample_len();
        let (height, width) = self.dataset.format.size;
        let shape =
            PlanarShape { channels: self.dataset.format.channels, height: height as usize, width: width as usize };
        for ((&sample, out), label) in samples.iter().zip(images.chunks_exact_mut(len)).zip(labels.iter_mut()) {
            let &image = self
                .indices
                .get(sample)
                .ok_or_else(|| Error::Invalid(format!("image batches: sample {sample} of {}", self.indices.len())))?;
            to_f32_into(self.dataset.image(image), out);
            if let Some((augment, seed)) = &self.augment {
                augment.apply(out, shape, &mut Augment::rng(*seed, epoch, image));
            }
            *label = self.dataset.labels[image];
        }
        Ok(())
    }
}

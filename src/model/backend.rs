//! A model on the backend a [`DeviceChoice`] names (a GPU adapter, the native CPU backend or the
//! CPU reference), and
//! [`Predictor`]: inference on any number of images with a fixed-batch model, for `predict`,
//! `eval` and the web server.

use std::sync::Arc;

use super::explain::Explain;
use super::spec::Architecture;
use super::test_time::TestTimeAugment;
use super::{NamedTensor, TrainOptions, Trainable};
use crate::gpu::GpuModel;
use crate::gpu::{DeviceChoice, Gpu};
use crate::native::NativeModel;
use crate::reference::ReferenceModel;
use crate::{Error, Result};

/// Where models run: one GPU context shared by every model made here, the native CPU backend, or
/// the CPU reference.
#[derive(Clone)]
pub enum Backend {
    Gpu(Arc<Gpu>),
    Native,
    Reference,
}

impl Backend {
    /// Opens the backend `choice` names (nothing to open for the CPU backends).
    pub fn new(choice: &DeviceChoice) -> Result<Self> {
        Ok(Self::choose(choice)?.0)
    }

    /// As [`Backend::new`], with why `auto` took what it took (None for any other choice): a
    /// hardware GPU when one opens, otherwise the native CPU backend, which runs these models
    /// faster than a software adapter does.
    pub fn choose(choice: &DeviceChoice) -> Result<(Self, Option<String>)> {
        Ok(match choice {
            DeviceChoice::Cpu => (Backend::Native, None),
            DeviceChoice::Reference => (Backend::Reference, None),
            DeviceChoice::Auto => match Gpu::new(&DeviceChoice::Gpu) {
                Ok(gpu) => (Backend::Gpu(gpu), Some("a hardware GPU opened".into())),
                Err(e) => (Backend::Native, Some(format!("no hardware GPU ({e})"))),
            },
            _ => (Backend::Gpu(Gpu::new(choice)?), None),
        })
    }

    /// The backend in words, as `wgcnn info` prints it.
    pub fn describe(&self) -> String {
        match self {
            Backend::Gpu(gpu) => format!("{}, {} kernels", gpu.describe(), gpu.kernels),
            Backend::Native => {
                format!(
                    "the native CPU backend ({} threads, GEMMs by the gemm crate's {} kernels)",
                    rayon::current_num_threads(),
                    crate::native::CpuKernels::in_use()
                )
            }
            Backend::Reference => "the CPU reference backend (plain loops, one core)".into(),
        }
    }

    /// A model of `architecture` for `batch` images per call, holding `weights`.
    pub fn model(
        &self,
        architecture: &Architecture,
        batch: usize,
        weights: &[NamedTensor],
        options: &TrainOptions,
    ) -> Result<Box<dyn Trainable + Send>> {
        Ok(self.build(architecture, batch, weights, options)?)
    }

    /// A model of `architecture` holding `weights` that explains its predictions ([`Explain`]),
    /// `batch` images per pass, with the same kernels as training.
    pub fn explainer(
        &self,
        architecture: &Architecture,
        batch: usize,
        weights: &[NamedTensor],
    ) -> Result<Box<dyn Explain + Send>> {
        Ok(self.build(architecture, batch, weights, &TrainOptions::default())?)
    }

    /// The model of this backend, which both trains and explains.
    fn build(
        &self,
        architecture: &Architecture,
        batch: usize,
        weights: &[NamedTensor],
        options: &TrainOptions,
    ) -> Result<Box<dyn TrainAndExplain + Send>> {
        Ok(match self {
            Backend::Gpu(gpu) => Box::new(GpuModel::new(gpu.clone(), architecture, batch, weights, options)?),
            Backend::Native => Box::new(NativeModel::new(architecture, batch, weights, options)?),
            Backend::Reference => Box::new(ReferenceModel::new(architecture, batch, weights, options)?),
        })
    }
}

/// What every backend's model is: [`Backend::model`] and [`Backend::explainer`] hand out one side
/// of it.
trait TrainAndExplain: Trainable + Explain {}

impl<M: Trainable + Explain> TrainAndExplain for M {}

/// Inference on any number of images: they go through a fixed-batch model a batch at a time,
/// the last batch padded (padding rows' outputs are dropped).
pub struct Predictor {
    model: Box<dyn Trainable + Send>,
    sample_len: usize,
    /// Values per image row, the span a mirror reverses.
    width: usize,
    outputs: usize,
    test_time: TestTimeAugment,
}

impl Predictor {
    /// A predictor of `architecture` with `weights`, running `batch` images per call.
    pub fn new(backend: &Backend, architecture: &Architecture, weights: &[NamedTensor], batch: usize) -> Result<Self> {
        let model = backend.model(architecture, batch, weights, &TrainOptions::default())?;
        Ok(Self::from_model(model, architecture))
    }

    /// A predictor over a model already built (e.g. the one just trained) of `architecture`.
    pub fn from_model(model: Box<dyn Trainable + Send>, architecture: &Architecture) -> Self {
        Self {
            model,
            sample_len: architecture.input.elements(),
            width: architecture.input.width,
            outputs: architecture.outputs(),
            test_time: TestTimeAugment::None,
        }
    }

    /// This predictor averaging each image's probabilities over `test_time`'s copies of it.
    pub fn with_test_time_augment(mut self, test_time: TestTimeAugment) -> Self {
        self.test_time = test_time;
        self
    }

    pub fn set_test_time_augment(&mut self, test_time: TestTimeAugment) {
        self.test_time = test_time;
    }

    /// Values per image (channels x height x width).
    pub fn sample_len(&self) -> usize {
        self.sample_len
    }

    /// Images per model call.
    pub fn batch_size(&self) -> usize {
        self.model.batch_size()
    }

    /// The model's output probabilities for each image of `images` (NCHW f32, any count): one row
    /// of `outputs` values per image (one sigmoid value for a binary model), the mean over the
    /// test-time copies when there are any.
    pub fn predict(&mut self, images: &[f32]) -> Result<Vec<Vec<f32>>> {
        let mut rows = self.predict_once(images)?;
        let copies = self.test_time.copies(images, self.width);
        if copies.is_empty() {
            return Ok(rows);
        }
        for copy in &copies {
            for (row, other) in rows.iter_mut().zip(self.predict_once(copy)?) {
                row.iter_mut().zip(other).for_each(|(sum, p)| *sum += p);
            }
        }
        // The images themselves, and each copy.
        let passes = (1 + copies.len()) as f32;
        rows.iter_mut().flatten().for_each(|p| *p /= passes);
        Ok(rows)
    }

    /// [`Self::predict`] of the images as they are.
    fn predict_once(&mut self, images: &[f32]) -> Result<Vec<Vec<f32>>> {
        if !images.len().is_multiple_of(self.sample_len) {
            return Err(Error::shape(
                "predictor images",
                format!("a multiple of {} values (one image)", self.sample_len),
                format!("{} values", images.len()),
            ));
        }
        let batch = self.model.batch_size();
        let mut rows = Vec::with_capacity(images.len() / self.sample_len);
        let mut padded = vec![0.0; batch * self.sample_len];
        for chunk in images.chunks(batch * self.sample_len) {
            padded[..chunk.len()].copy_from_slice(chunk);
            padded[chunk.len()..].fill(0.0);
            let probabilities = self.model.predict(&padded)?;
            let count = chunk.len() / self.sample_len;
            rows.extend(probabilities.chunks_exact(self.outputs).take(count).map(<[f32]>::to_vec));
        }
        Ok(rows)
    }
}

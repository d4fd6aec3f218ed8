//! A saved model loaded to predict and explain images given as file bytes.

use std::path::Path;

use crate::data::image::{DecodeError, DecodeLimits, InputFormat, decode_and_resize, planar_to_rgb, to_f32_planar};
use crate::model::backend::{Backend, Predictor};
use crate::model::explain::{Explain, ExplainMethod};
use crate::model::file::ModelFile;
use crate::report::Prediction;
use crate::workflow::explanation::ExplainedImage;
use crate::workflow::input_format;
use crate::{Error, Result};

/// A saved model ready to predict: the file, the format its images take, and a predictor.
pub struct LoadedModel {
    pub file: ModelFile,
    pub format: InputFormat,
    pub predictor: Predictor,
    /// What one image may cost to decode (and, for the caller, to read).
    pub limits: DecodeLimits,
    backend: Backend,
    /// Built on the first [`LoadedModel::explain_bytes`], with the predictor's batch size.
    explainer: Option<Box<dyn Explain + Send>>,
}

impl LoadedModel {
    /// Loads `path` onto `backend`, predicting `batch` images per call.
    pub fn load(path: &Path, backend: &Backend, batch: usize) -> Result<Self> {
        let file = ModelFile::load(path)?;
        let format = input_format(&file)?;
        let predictor = Predictor::new(backend, &file.architecture, &file.weights, batch)?;
        Ok(Self { file, format, predictor, limits: DecodeLimits::default(), backend: backend.clone(), explainer: None })
    }

    /// The index of the class named `name`; an error listing the model's classes if none is.
    pub fn class_index(&self, name: &str) -> Result<usize> {
        self.file.class_names.iter().position(|c| c == name).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown class {name:?}: the model's classes are {}",
                self.file.class_names.join(", ")
            ))
        })
    }

    /// Decodes images given as file bytes (as [`LoadedModel::predict_bytes`] does) and explains
    /// each one's prediction by `method`: the evidence for the class named `class`, or for each
    /// image's predicted class when None. An image that does not decode gives its
    /// [`DecodeError`] in its place and does not stop the others. Fails on an unknown class, or
    /// Grad-CAM asked of a model without a convolution layer.
    pub fn explain_bytes(
        &mut self,
        files: &[&[u8]],
        method: ExplainMethod,
        class: Option<&str>,
    ) -> Result<Vec<std::result::Result<ExplainedImage, DecodeError>>> {
        let asked = class.map(|name| self.class_index(name)).transpose()?;
        if method == ExplainMethod::GradCam
            && crate::model::explain::grad_cam_layer(&self.file.architecture.layers_info()?).is_none()
        {
            return Err(Error::Invalid(format!(
                "Grad-CAM needs a convolution layer and this model ({}) has none: use the saliency method",
                self.file.architecture
            )));
        }
        let decoded: Vec<_> = files.iter().map(|bytes| decode_and_resize(bytes, &self.format, &self.limits)).collect();
        let images: Vec<f32> = decoded.iter().flatten().flat_map(|image| to_f32_planar(&image.pixels)).collect();
        let classes: Vec<u32> = match asked {
            Some(class) => vec![class as u32; images.len() / self.format.sample_len()],
            None => self
                .predictor
                .predict(&images)?
                .iter()
                .map(|row| Prediction::from_row(row, &self.file.class_names).map(|p| p.index as u32))
                .collect::<Result<_>>()?,
        };
        if classes.is_empty() {
            return Ok(decoded.into_iter().map(|d| Err(d.expect_err("no image decoded"))).collect());
        }
        if self.explainer.is_none() {
            let batch = self.predictor.batch_size();
            self.explainer = Some(self.backend.explainer(&self.file.architecture, batch, &self.file.weights)?);
        }
        let explainer = self.explainer.as_mut().expect("built above");
        let mut explanations = explainer.explain(&images, &classes)?.into_iter();
        decoded
            .into_iter()
            .map(|d| {
                let d = match d {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(e)),
                };
                let e = explanations.next().expect("one explanation per decoded image");
                let heat = e.heat(method).expect("checked: the model has a convolution");
                let image = planar_to_rgb(&d.pixels, &self.format);
                let class = e.class as usize;
                Ok(Ok(ExplainedImage {
                    prediction: Prediction::from_row(&e.probabilities, &self.file.class_names)?,
                    class,
                    class_name: self.file.class_names[class].clone(),
                    probability: e.probabilities[class],
                    method,
                    heat,
                    image,
                }))
            })
            .collect()
    }

    /// Decodes and predicts images given as file bytes; an image that does not decode gives its
    /// [`DecodeError`] in its place and does not stop the others.
    pub fn predict_bytes(&mut self, files: &[&[u8]]) -> Result<Vec<std::result::Result<Prediction, DecodeError>>> {
        let sample_len = self.format.sample_len();
        let decoded: Vec<_> = files.iter().map(|bytes| decode_and_resize(bytes, &self.format, &self.limits)).collect();
        let mut images = Vec::with_capacity(decoded.len() * sample_len);
        for image in decoded.iter().flatten() {
            images.extend(to_f32_planar(&image.pixels));
        }
        let mut rows = self.predictor.predict(&images)?.into_iter();
        decoded
            .into_iter()
            .map(|d| match d {
                Ok(_) => {
                    let row = rows.next().expect("one row per decoded image");
                    Ok(Ok(Prediction::from_row(&row, &self.file.class_names)?))
                }
                Err(e) => Ok(Err(e)),
            })
            .collect()
    }
}

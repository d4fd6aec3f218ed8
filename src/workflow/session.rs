//! A model session: a saved model loaded once to predict and explain images, the one way the
//! commands (`predict`, `eval`, `explain`), the web server's model thread and the examples load
//! a model file.
//!
//! The rule for explanations: Grad-CAM needs a convolution layer. Asked of a model without one,
//! the session draws saliency instead and says so ([`MethodChoice::note`]); the CLI prints the
//! note and names its files after the method used, the server answers with the method used and
//! the note.

use std::path::Path;

use crate::data::folder::Dataset;
use crate::data::image::{
    DecodeError, DecodeLimits, DecodedImage, InputFormat, decode_and_resize, planar_to_rgb, to_f32_planar,
};
use crate::model::backend::{Backend, Predictor};
use crate::model::explain::{Explain, ExplainMethod, grad_cam_layer};
use crate::model::file::ModelFile;
use crate::model::test_time::TestTimeAugment;
use crate::report::Prediction;
use crate::workflow::evaluate::{Evaluation, evaluate};
use crate::workflow::explanation::ExplainedImage;
use crate::workflow::input_format;
use crate::{Error, Result};

/// Images per call when evaluating and predicting: a whole small batch, not so large that the
/// activations of a 256x256 model crowd memory.
pub const INFERENCE_BATCH: usize = 16;

/// The method an explanation is drawn by, for the method asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodChoice {
    pub asked: ExplainMethod,
    /// What is drawn: `asked`, or saliency for Grad-CAM of a model without a convolution.
    pub method: ExplainMethod,
    /// Why `method` is not `asked`, in words; None when it is.
    pub note: Option<String>,
}

/// One image's explanation as the session computes it.
#[derive(Clone, Debug)]
pub struct Explained {
    /// The model's prediction for the image.
    pub prediction: Prediction,
    /// The class whose evidence `heat` shows.
    pub class: usize,
    /// The model's probability of `class`.
    pub probability: f32,
    /// The heat map at the model's input size, row-major, in [0, 1].
    pub heat: Vec<f32>,
    pub choice: MethodChoice,
}

/// A saved model ready to predict and explain.
pub struct ModelSession {
    file: ModelFile,
    format: InputFormat,
    /// Ascending batch sizes: a call runs through the smallest that holds it.
    predictors: Vec<Predictor>,
    /// What every predictor averages over.
    test_time: TestTimeAugment,
    /// What one image may cost to decode (and, for the caller, to read).
    limits: DecodeLimits,
    backend: Backend,
    /// Built on the first explanation, for as many images as it had (at most the largest batch).
    explainer: Option<Box<dyn Explain + Send>>,
    has_convolution: bool,
}

impl ModelSession {
    /// Loads the model file at `path` onto `backend`, with a predictor per batch size of
    /// `batches` (e.g. `[16]`, or `[1, 2, 4, 8, 16]` for a server that batches what arrives).
    pub fn open(path: &Path, backend: &Backend, batches: &[usize], limits: DecodeLimits) -> Result<Self> {
        let file = ModelFile::load(path)?;
        let format = input_format(&file)?;
        let mut sizes = batches.to_vec();
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() || sizes[0] == 0 {
            return Err(Error::Invalid("a model session needs batch sizes of at least 1".into()));
        }
        let predictors = sizes
            .iter()
            .map(|&batch| {
                let predictor = Predictor::new(backend, &file.architecture, &file.weights, batch)?;
                Ok(predictor.with_test_time_augment(file.test_time_augment))
            })
            .collect::<Result<_>>()?;
        let has_convolution = grad_cam_layer(&file.architecture.layers_info()?).is_some();
        let test_time = file.test_time_augment;
        Ok(Self {
            file,
            format,
            predictors,
            test_time,
            limits,
            backend: backend.clone(),
            explainer: None,
            has_convolution,
        })
    }

    /// Predicts (and evaluates, and explains the predictions) with `test_time` instead of the
    /// model file's setting.
    pub fn set_test_time_augment(&mut self, test_time: TestTimeAugment) {
        self.test_time = test_time;
        self.predictors.iter_mut().for_each(|p| p.set_test_time_augment(test_time));
    }

    /// The test-time augmentation predictions use: the model file's, unless set.
    pub fn test_time_augment(&self) -> TestTimeAugment {
        self.test_time
    }

    pub fn file(&self) -> &ModelFile {
        &self.file
    }

    pub fn class_names(&self) -> &[String] {
        &self.file.class_names
    }

    /// How the model takes its images.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
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

    /// The method drawn when `asked` is: Grad-CAM of a model without a convolution layer falls
    /// back to saliency, with a note saying so.
    pub fn method_for(&self, asked: ExplainMethod) -> MethodChoice {
        if asked == ExplainMethod::GradCam && !self.has_convolution {
            return MethodChoice {
                asked,
                method: ExplainMethod::Saliency,
                note: Some(format!(
                    "Grad-CAM needs a convolution layer and this model ({}) has none, so saliency is shown",
                    self.file.architecture
                )),
            };
        }
        MethodChoice { asked, method: asked, note: None }
    }

    /// The predictor for `n` images: the smallest batch that holds them, else the largest.
    fn predictor(&mut self, n: usize) -> &mut Predictor {
        let at = self.predictors.iter().position(|p| p.batch_size() >= n).unwrap_or(self.predictors.len() - 1);
        &mut self.predictors[at]
    }

    /// The predictions of `images` (NCHW f32 of the model's input, any count); the batch size
    /// used is the smallest that holds them all.
    pub fn predict(&mut self, images: &[f32]) -> Result<Vec<Prediction>> {
        let n = images.len() / self.format.sample_len();
        let rows = self.predictor(n).predict(images)?;
        rows.iter().map(|row| Prediction::from_row(row, &self.file.class_names)).collect()
    }

    /// Scores the images `indices` of `dataset` against their folders' classes.
    pub fn evaluate(&mut self, dataset: &Dataset, indices: &[usize]) -> Result<Evaluation> {
        let classes = self.file.class_names.clone();
        evaluate(self.predictor(usize::MAX), dataset, indices, &classes)
    }

    /// Explains `images` (NCHW f32 of the model's input) by `asked` (see [`Self::method_for`]):
    /// the evidence for `class`, or for each image's predicted class when None.
    pub fn explain(&mut self, images: &[f32], class: Option<usize>, asked: ExplainMethod) -> Result<Vec<Explained>> {
        let n = images.len() / self.format.sample_len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if let Some(class) = class.filter(|&c| c >= self.file.class_names.len()) {
            return Err(Error::Invalid(format!(
                "explain: no class {class}: the model has {}",
                self.file.class_names.len()
            )));
        }
        // The predictions as `predict` makes them (with test-time augmentation), so that an
        // explanation answers with the label and confidence a prediction would.
        let predictions = self.predict(images)?;
        let classes: Vec<u32> = match class {
            Some(class) => vec![class as u32; n],
            None => predictions.iter().map(|p| p.index as u32).collect(),
        };
        if self.explainer.is_none() {
            let largest = self.predictors.last().expect("at least one predictor").batch_size();
            self.explainer =
                Some(self.backend.explainer(&self.file.architecture, n.min(largest), &self.file.weights)?);
        }
        let choice = self.method_for(asked);
        let explainer = self.explainer.as_mut().expect("built above");
        Ok(explainer
            .explain(images, &classes)?
            .into_iter()
            .zip(predictions)
            .map(|(e, prediction)| {
                let class = e.class as usize;
                Explained {
                    probability: prediction.probabilities[class].1,
                    prediction,
                    class,
                    heat: e.heat(choice.method).expect("saliency always, Grad-CAM only with a convolution"),
                    choice: choice.clone(),
                }
            })
            .collect())
    }

    /// Decodes images given as file bytes and explains each one's prediction (as
    /// [`Self::explain`], the class by name). An image that does not decode gives its
    /// [`DecodeError`] in its place and does not stop the others. Fails on an unknown class.
    pub fn explain_bytes(
        &mut self,
        files: &[&[u8]],
        asked: ExplainMethod,
        class: Option<&str>,
    ) -> Result<Vec<std::result::Result<ExplainedImage, DecodeError>>> {
        let class = class.map(|name| self.class_index(name)).transpose()?;
        let (decoded, images) = self.decode(files);
        let mut explained = self.explain(&images, class, asked)?.into_iter();
        decoded
            .into_iter()
            .map(|d| {
                let d = match d {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(e)),
                };
                let e = explained.next().expect("one explanation per decoded image");
                Ok(Ok(ExplainedImage {
                    class_name: self.file.class_names[e.class].clone(),
                    prediction: e.prediction,
                    class: e.class,
                    probability: e.probability,
                    method: e.choice.method,
                    heat: e.heat,
                    image: planar_to_rgb(&d.pixels, &self.format),
                }))
            })
            .collect()
    }

    /// Each of `files` decoded at the model's input (or why not), and the ones that decoded as one
    /// NCHW f32 batch, in order.
    fn decode(&self, files: &[&[u8]]) -> (Vec<std::result::Result<DecodedImage, DecodeError>>, Vec<f32>) {
        let decoded: Vec<_> = files.iter().map(|bytes| decode_and_resize(bytes, &self.format, &self.limits)).collect();
        let images = decoded.iter().flatten().flat_map(|image| to_f32_planar(&image.pixels)).collect();
        (decoded, images)
    }

    /// Decodes and predicts images given as file bytes; an image that does not decode gives its
    /// [`DecodeError`] in its place and does not stop the others.
    pub fn predict_bytes(&mut self, files: &[&[u8]]) -> Result<Vec<std::result::Result<Prediction, DecodeError>>> {
        let (decoded, images) = self.decode(files);
        let mut predictions = self.predict(&images)?.into_iter();
        Ok(decoded
            .into_iter()
            .map(|d| d.map(|_| predictions.next().expect("one prediction per decoded image")))
            .collect())
    }
}

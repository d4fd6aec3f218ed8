//! The user's workflow end to end, as the `wgcnn` commands and the examples run it: train a model
//! on a folder of class subfolders and write a run folder (model, metrics CSV, plots, test
//! evaluation); evaluate a saved model on a folder; predict image files with a confidence; explain
//! a prediction with a heat map over the image.
//!
//! Each step prints what a Keras notebook printed (class counts, the model summary, progress, the
//! classification report), so the commands and the examples share one implementation.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use image::imageops::{self, FilterType};
use serde::Serialize;

use crate::data::augment::Augment;
use crate::data::folder::{Dataset, ImageFolder, LoadOptions, LoadReport};
use crate::data::image::{
    DecodeError, DecodeLimits, Fit, InputFormat, decode_and_resize, planar_to_rgb, to_f32_into, to_f32_planar,
};
use crate::data::loader::ImageBatches;
use crate::data::split::{SplitRatios, stratified_split};
use crate::data::synth::{Emotion, FacePairing, write_dataset};
use crate::files::read_bounded;
use crate::model::TrainOptions;
use crate::model::backend::{Backend, Predictor};
use crate::model::explain::{Explain, ExplainMethod, HEAT_ALPHA, jet, overlay_heatmap, upsample_bilinear};
use crate::model::file::{ModelFile, write_atomically};
use crate::model::spec::Architecture;
use crate::report::{ClassificationReport, ConfusionMatrix, Prediction, plots};
use crate::train::callbacks::{EarlyStopping, Monitor, ReduceLrOnPlateau};
use crate::train::fit::{FitConfig, FitOutcome, Progress, StopReason, fit};
use crate::{Error, Result};

/// Images per call when evaluating and predicting: a whole small batch, not so large that the
/// activations of a 256x256 model crowd memory.
pub const INFERENCE_BATCH: usize = 16;

/// Everything `wgcnn train` needs.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// A folder of class subfolders.
    pub data_dir: PathBuf,
    /// A second folder of the same classes to evaluate on besides the test split (e.g. an
    /// official test set).
    pub test_dir: Option<PathBuf>,
    /// The model; its input sets the image size and channels, its head is fitted to the classes.
    pub architecture: Architecture,
    /// How images of another aspect ratio reach the input size.
    pub fit: Fit,
    pub split: SplitRatios,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Seeds the weights, the split, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Early stopping on the validation loss after this many epochs without improvement,
    /// restoring the best epoch's weights.
    pub patience: Option<usize>,
    /// Learning rate times `lr_factor` after this many epochs without a lower validation loss.
    pub lr_patience: Option<usize>,
    pub lr_factor: f64,
    pub min_lr: f64,
    /// Training split only.
    pub augment: Augment,
    /// Weigh each class's loss by the inverse of its share of the training split.
    pub balance_classes: bool,
    /// The run folder: model.safetensors, history.csv, training.png, classes.png, and the test
    /// evaluation (evaluation.txt, evaluation.json, confusion.png).
    pub out_dir: PathBuf,
    /// Replace the model of a run folder that holds one (otherwise training refuses to start).
    pub overwrite: bool,
    pub progress: Progress,
    /// What one image file may cost to read and decode; a file over them is skipped and reported.
    pub limits: DecodeLimits,
}

/// What a training run produced.
pub struct TrainRun {
    pub model: ModelFile,
    pub model_path: PathBuf,
    pub load: LoadReport,
    pub load_seconds: f64,
    pub outcome: FitOutcome,
    /// On the test split (None when the split has no test share).
    pub test: Option<Evaluation>,
    /// On `TrainSettings::test_dir`.
    pub test_dir: Option<Evaluation>,
}

/// A model's predictions on labelled images, and the scores they give.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub report: ClassificationReport,
    pub confusion: ConfusionMatrix,
    /// Per image: the file, its true class, and the prediction.
    #[serde(skip)]
    pub predictions: Vec<(PathBuf, usize, Prediction)>,
}

impl Evaluation {
    /// The report and the confusion matrix as text, as `wgcnn eval` prints them.
    pub fn text(&self) -> String {
        format!("{}\n\nconfusion matrix (rows: true class, columns: predicted)\n{}", self.report, self.confusion)
    }

    /// Writes `<stem>.txt`, `<stem>.json` and `confusion.png` (or `<stem>-confusion.png`) into
    /// `dir`, the picture titled with `data`, the images it shows (e.g. "test split").
    pub fn write(&self, dir: &Path, stem: &str, data: &str) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        write_file(&dir.join(format!("{stem}.txt")), (self.text() + "\n").as_bytes())?;
        write_file(&dir.join(format!("{stem}.json")), json.as_bytes())?;
        let png = if stem == "evaluation" { "confusion.png".to_string() } else { format!("{stem}-confusion.png") };
        plots::confusion_matrix(&self.confusion, &format!("Confusion matrix: {data}"), dir.join(png))
    }
}

/// Writes a whole file through a temporary one, the error naming the path.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, bytes).map_err(|e| Error::Invalid(format!("{}: cannot write it: {e}", path.display())))
}

/// A path's last component ("new-faces" for `data/new-faces/`, "a.png" for `faces/a.png`), or the
/// whole path when it has none.
pub fn path_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

/// The normalisation a model file records for images prepared with `format`.
pub fn normalisation(format: &InputFormat) -> String {
    let colour = if format.channels == 1 { "gray" } else { "rgb" };
    let fit = match format.fit {
        Fit::Stretch => "stretch",
        Fit::CenterCrop => "crop",
        Fit::Pad => "pad",
    };
    format!("{colour}/255 {fit}")
}

/// How a saved model takes its images: size and channels from its architecture, the fit from its
/// normalisation (stretch when it names none).
pub fn input_format(model: &ModelFile) -> Result<InputFormat> {
    let input = model.architecture.input;
    let fit = match model.normalisation.split_whitespace().nth(1) {
        Some(name) => name.parse().map_err(Error::Invalid)?,
        None => Fit::Stretch,
    };
    let format = InputFormat { channels: input.channels, size: (input.height as u32, input.width as u32), fit };
    format.validate()?;
    Ok(format)
}

/// Loads `dir` at `format` as `options` say, printing the load report.
fn load_folder(dir: &Path, format: &InputFormat, options: &LoadOptions) -> Result<(Dataset, LoadReport, f64)> {
    let start = Instant::now();
    let (dataset, report) = ImageFolder::load(dir, format, options)?;
    let seconds = start.elapsed().as_secs_f64();
    print!("{report}");
    println!("loaded {} images in {seconds:.1} s ({} KiB as u8)", dataset.len(), dataset.images.len() / 1024);
    Ok((dataset, report, seconds))
}

/// Trains a model as [`TrainSettings`] says, writing the run folder; prints as it goes.
///
/// The run folder changes only when training succeeds: everything is checked first (the data,
/// the test folder's classes, the split, a model already there), the
/// outputs are written into a staging folder beside it, and moved in at the end. A failed run
/// leaves the folder as it was (or absent).
pub fn train(backend: &Backend, settings: &TrainSettings) -> Result<TrainRun> {
    let out = &settings.out_dir;
    let final_model = out.join("model.safetensors");
    if final_model.exists() && !settings.overwrite {
        return Err(Error::Invalid(format!(
            "{}: the run folder already holds a model; pass --overwrite to replace it, or choose another --out",
            out.display()
        )));
    }
    // Found missing after training would be too late.
    if let Some(dir) = settings.test_dir.as_ref().filter(|dir| !dir.is_dir()) {
        return Err(Error::Dataset {
            path: dir.clone(),
            reason: "the test folder does not exist or is not a folder".into(),
        });
    }
    let input = settings.architecture.input;
    let format =
        InputFormat { channels: input.channels, size: (input.height as u32, input.width as u32), fit: settings.fit };
    let (dataset, load, load_seconds) =
        load_folder(&settings.data_dir, &format, &LoadOptions { limits: settings.limits, ..LoadOptions::default() })?;
    let classes = dataset.class_names.len();
    let architecture = settings.architecture.clone().with_classes(classes)?;
    let test_set = match &settings.test_dir {
        None => None,
        Some(dir) => {
            println!();
            let options = LoadOptions { limits: settings.limits, min_classes: 1, ..LoadOptions::default() };
            let (test_set, _, _) = load_folder(dir, &format, &options)?;
            if let Some(unknown) = test_set.class_names.iter().find(|c| !dataset.class_names.contains(c)) {
                return Err(Error::Dataset {
                    path: dir.clone(),
                    reason: format!(
                        "its class {unknown:?} is not one of the training data's ({})",
                        dataset.class_names.join(", ")
                    ),
                });
            }
            Some((dir, test_set))
        }
    };

    let split = stratified_split(&dataset.labels, settings.split, settings.seed)?;
    if split.train.is_empty() {
        return Err(Error::Invalid("the training split is empty: give it a share in --split, or more data".into()));
    }
    let staging = Staging::beside(out)?;
    let out = staging.path();
    let counts = split.class_counts(&dataset.labels, classes);
    println!("\nclass counts per split:");
    println!("  {:<12} {:>8} {:>10} {:>8}", "class", "train", "validation", "test");
    for (c, name) in dataset.class_names.iter().enumerate() {
        println!("  {name:<12} {:>8} {:>10} {:>8}", counts[0][c], counts[1][c], counts[2][c]);
    }
    let named: Vec<(&str, Vec<usize>)> = split.parts().iter().map(|(n, _)| *n).zip(counts.iter().cloned()).collect();
    plots::class_counts(&dataset.class_names, &named, out.join("classes.png"))?;

    println!("\n{}", architecture.summary()?);
    println!("adapter: {}", backend.describe());
    let options = TrainOptions {
        class_weights: settings.balance_classes.then(|| inverse_frequency(&counts[0])),
        seed: settings.seed,
        ..TrainOptions::default()
    };
    let weights = architecture.initial_weights(settings.seed)?;
    let mut model = backend.model(&architecture, settings.batch_size, &weights, &options)?;
    let train_source = ImageBatches::new(&dataset, &split.train)?.with_augment(settings.augment, settings.seed)?;
    let validation_source = ImageBatches::new(&dataset, &split.validation)?;
    let config = FitConfig {
        epochs: settings.epochs,
        lr: settings.lr,
        seed: settings.seed,
        shuffle: true,
        early_stopping: settings.patience.map(|patience| EarlyStopping {
            monitor: Monitor::ValLoss,
            patience,
            restore_best_weights: true,
            ..EarlyStopping::default()
        }),
        reduce_lr: settings.lr_patience.map(|patience| ReduceLrOnPlateau {
            monitor: Monitor::ValLoss,
            factor: settings.lr_factor,
            patience,
            min_lr: settings.min_lr,
            ..ReduceLrOnPlateau::default()
        }),
        metrics_csv: Some(out.join("history.csv")),
        progress: settings.progress,
    };
    let validation = (!split.validation.is_empty()).then_some(&validation_source as &dyn crate::train::BatchSource);
    let outcome = fit(model.as_mut(), &train_source, validation, &config)?;
    println!("batches: {}", outcome.batches);

    let model_file = ModelFile {
        architecture: architecture.clone(),
        class_names: dataset.class_names.clone(),
        normalisation: normalisation(&format),
        history: outcome.history.clone(),
        weights: model.weights()?,
        optimizer: None,
    };
    model_file.save(out.join("model.safetensors"))?;
    if !outcome.history.epochs.is_empty() {
        plots::training_curves(&outcome.history, out.join("training.png"))?;
    }
    if let StopReason::NonFinite { .. } = outcome.stop {
        staging.publish(&settings.out_dir)?;
        return Err(Error::Invalid(format!(
            "{}; the last good weights are in {}",
            outcome.stop,
            final_model.display()
        )));
    }

    let mut predictor = Predictor::from_model(model, &architecture);
    let test = if split.test.is_empty() {
        None
    } else {
        let evaluation = evaluate(&mut predictor, &dataset, &split.test, &dataset.class_names)?;
        println!("\ntest split ({} images):\n{}", split.test.len(), evaluation.text());
        evaluation.write(out, "evaluation", "test split")?;
        Some(evaluation)
    };
    let test_dir = match &test_set {
        None => None,
        Some((dir, test_set)) => {
            let all: Vec<usize> = (0..test_set.len()).collect();
            let evaluation = evaluate(&mut predictor, test_set, &all, &dataset.class_names)
                .map_err(|e| Error::Invalid(format!("test folder {}: {e}", dir.display())))?;
            println!("\n{} ({} images):\n{}", dir.display(), all.len(), evaluation.text());
            evaluation.write(out, "evaluation-test-folder", &format!("test folder {}", path_name(dir)))?;
            Some(evaluation)
        }
    };
    staging.publish(&settings.out_dir)?;
    println!("saved {}", final_model.display());
    Ok(TrainRun { model: model_file, model_path: final_model, load, load_seconds, outcome, test, test_dir })
}

/// A run's outputs before they are the run folder's: a hidden folder beside it, removed (with a
/// parent folder it had to create) unless [`Staging::publish`] moved its files in.
struct Staging {
    path: PathBuf,
    /// The outermost parent of the run folder that did not exist, created for the staging folder.
    created_parent: Option<PathBuf>,
    published: bool,
}

impl Staging {
    fn beside(out: &Path) -> Result<Staging> {
        let name = out.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // The outermost of the parents that do not exist yet: removing it removes them all.
        let created_parent = parent.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).last();
        let created_parent = created_parent.map(Path::to_path_buf);
        let path = parent.join(format!(".{name}.partial-{}", std::process::id()));
        fs::create_dir_all(&path)
            .map_err(|e| Error::Invalid(format!("{}: cannot create the run folder: {e}", out.display())))?;
        Ok(Staging { path, created_parent, published: false })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Moves every file into `out` (created if missing), replacing files of the same names.
    fn publish(mut self, out: &Path) -> Result<()> {
        let error = |e: std::io::Error| Error::Invalid(format!("{}: cannot write the run folder: {e}", out.display()));
        fs::create_dir_all(out).map_err(error)?;
        for entry in fs::read_dir(&self.path).map_err(error)? {
            let entry = entry.map_err(error)?;
            fs::rename(entry.path(), out.join(entry.file_name())).map_err(error)?;
        }
        self.published = true;
        fs::remove_dir(&self.path).map_err(error)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.path);
            if let Some(created) = &self.created_parent {
                // The folders this run created, from the staging folder's parent out; each is
                // empty now unless something else wrote there, which stops the removal.
                for dir in self.path.ancestors().skip(1) {
                    if fs::remove_dir(dir).is_err() || dir == created {
                        break;
                    }
                }
            }
        }
    }
}

/// Keras-style balanced class weights: n_samples / (n_classes * n_class), 1 for an empty class.
fn inverse_frequency(counts: &[usize]) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    counts.iter().map(|&n| if n == 0 { 1.0 } else { total as f32 / (counts.len() * n) as f32 }).collect()
}

/// Predicts the images `indices` of `dataset` and scores them against their folders' classes.
/// `class_names` are the model's; every class of the dataset must be one of them (by name).
pub fn evaluate(
    predictor: &mut Predictor,
    dataset: &Dataset,
    indices: &[usize],
    class_names: &[String],
) -> Result<Evaluation> {
    let to_model_class: Vec<usize> = dataset
        .class_names
        .iter()
        .map(|name| {
            class_names.iter().position(|c| c == name).ok_or_else(|| {
                Error::Invalid(format!(
                    "the data has a class {name:?} that the model does not know (its classes: {})",
                    class_names.join(", ")
                ))
            })
        })
        .collect::<Result<_>>()?;
    let sample_len = dataset.sample_len();
    let mut confusion = ConfusionMatrix::new(class_names.iter().cloned());
    let mut predictions = Vec::with_capacity(indices.len());
    let mut images = vec![0.0; INFERENCE_BATCH * sample_len];
    for chunk in indices.chunks(INFERENCE_BATCH) {
        for (k, &i) in chunk.iter().enumerate() {
            to_f32_into(dataset.image(i), &mut images[k * sample_len..(k + 1) * sample_len]);
        }
        let rows = predictor.predict(&images[..chunk.len() * sample_len])?;
        for (&i, row) in chunk.iter().zip(rows) {
            let prediction = Prediction::from_row(&row, class_names)?;
            let actual = to_model_class[dataset.labels[i] as usize];
            confusion.add(actual, prediction.index)?;
            predictions.push((dataset.paths[i].clone(), actual, prediction));
        }
    }
    Ok(Evaluation { report: confusion.report(), confusion, predictions })
}

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

/// Reloads the model a run saved and predicts `count` of its test images again from their files,
/// printing both predictions side by side; returns the largest difference in any probability
/// (0 when the saved model reproduces the trained one exactly).
pub fn compare_reloaded(run: &TrainRun, backend: &Backend, count: usize) -> Result<f32> {
    let Some(test) = run.test.as_ref().or(run.test_dir.as_ref()) else {
        return Ok(0.0);
    };
    let shown: Vec<_> = test.predictions.iter().take(count).collect();
    let mut reloaded = LoadedModel::load(&run.model_path, backend, shown.len().max(1))?;
    let files = shown
        .iter()
        .map(|(path, _, _)| {
            reloaded.limits.read_file(path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let again = reloaded.predict_bytes(&bytes)?;
    println!("\npredictions of the trained model and of {} reloaded:", run.model_path.display());
    let mut largest = 0f32;
    for ((path, actual, trained), again) in shown.iter().zip(again) {
        let again = again.map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        for ((_, p), (_, q)) in trained.probabilities.iter().zip(&again.probabilities) {
            largest = largest.max((p - q).abs());
        }
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        println!(
            "  {name:<40} true {:<8} trained: {} {:.4}   reloaded: {} {:.4}",
            reloaded.file.class_names[*actual], trained.label, trained.confidence, again.label, again.confidence
        );
    }
    println!("largest difference in any probability: {largest:e}");
    Ok(largest)
}

/// The end of an example run: reloads the saved model, checks that it predicts exactly what the
/// trained one did, and prints the test accuracies.
pub fn finish_example(run: &TrainRun, backend: &Backend, out_dir: &Path) -> Result<()> {
    let difference = compare_reloaded(run, backend, 6)?;
    if difference != 0.0 {
        return Err(Error::Invalid(format!("the reloaded model's predictions differ by {difference}")));
    }
    for (what, evaluation) in [("test split", &run.test), ("test folder", &run.test_dir)] {
        if let Some(e) = evaluation {
            println!("{what} accuracy: {:.4} on {} images", e.report.accuracy, e.confusion.total());
        }
    }
    println!("plots and reports in {}", out_dir.display());
    Ok(())
}

/// The examples' synthetic faces per class: on two CPU cores Model A trains on 160 faces of
/// 256x256 in ten minutes, which it memorises instead of learning the mouth; it learns 300 pairs
/// of 64x64 in two.
const SYNTHETIC_PER_CLASS: usize = 300;
/// The examples' input size for synthetic faces (see [`SYNTHETIC_PER_CLASS`]).
const SYNTHETIC_SIZE: usize = 64;

/// An example's images and input size: the folder `data` at `size` (default `data_size`, the
/// source project's), or with no data [`SYNTHETIC_PER_CLASS`] paired synthetic faces of each of
/// `classes`, drawn into `out/synthetic` at `size` (default [`SYNTHETIC_SIZE`]).
pub fn example_dataset(
    data: Option<PathBuf>,
    size: Option<usize>,
    data_size: usize,
    classes: &[Emotion],
    out: &Path,
    seed: u64,
) -> Result<(PathBuf, usize)> {
    match data {
        Some(dir) => Ok((dir, size.unwrap_or(data_size))),
        None => {
            let size = size.unwrap_or(SYNTHETIC_SIZE);
            Ok((synthetic_dataset(&out.join("synthetic"), classes, SYNTHETIC_PER_CLASS, size as u32, seed)?, size))
        }
    }
}

/// Synthetic faces of `classes` in `dir`, for a machine with no data: paired
/// ([`FacePairing::Paired`]), so the examples' small sets are learnt from the expression. Drawn
/// once: a folder whose `drawn.txt` records the same draw is reused. Returns `dir`.
fn synthetic_dataset(dir: &Path, classes: &[Emotion], per_class: usize, size: u32, seed: u64) -> Result<PathBuf> {
    let names: Vec<&str> = classes.iter().map(|c| c.name()).collect();
    let draw =
        format!("paired faces: classes {}, {per_class} per class, {size}x{size}, seed {seed}\n", names.join(","));
    let record = dir.join("drawn.txt");
    // Read at most a few bytes past the record's length: any other file there is another draw.
    if read_bounded(&record, draw.len() as u64).is_ok_and(|drawn| drawn == draw.as_bytes()) {
        println!("synthetic faces: reusing {}", dir.display());
    } else {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| Error::Invalid(format!("{}: cannot clear it: {e}", dir.display())))?;
        }
        let written = write_dataset(dir, classes, per_class, size, seed, FacePairing::Paired)?;
        write_file(&record, draw.as_bytes())?;
        println!("synthetic faces: drew {} paired images of {size}x{size} into {}", written.len(), dir.display());
    }
    Ok(dir.to_path_buf())
}

/// The smallest side of an [`ExplainedImage::write_card`] panel: small model inputs are scaled up.
pub const CARD_MIN_SIDE: u32 = 256;

/// One image explained by [`LoadedModel::explain_bytes`].
#[derive(Clone, Debug)]
pub struct ExplainedImage {
    /// The model's prediction for the image.
    pub prediction: Prediction,
    /// The class whose evidence `heat` shows (the predicted one unless another was asked for).
    pub class: usize,
    pub class_name: String,
    /// The model's probability of `class`.
    pub probability: f32,
    pub method: ExplainMethod,
    /// The heat map at the model's input size, row-major, in [0, 1]: all zeros when nothing in
    /// the image raises the class score (Grad-CAM).
    pub heat: Vec<f32>,
    /// The image as the model takes it (resized; a grayscale model's as gray RGB).
    pub image: RgbImage,
}

impl ExplainedImage {
    /// e.g. `predicted happy 93.1% | Grad-CAM for happy`, or `... for sad (6.9%)` for another class.
    pub fn caption(&self) -> String {
        let mut caption = format!(
            "predicted {} {:.1}% | {} for {}",
            self.prediction.label,
            self.prediction.confidence * 100.0,
            self.method.title(),
            self.class_name
        );
        if self.class != self.prediction.index {
            caption += &format!(" ({:.1}%)", self.probability * 100.0);
        }
        if self.heat.iter().all(|&h| h == 0.0) {
            caption += ": no evidence";
        }
        caption
    }

    /// Writes a PNG card: the image as the model took it and the same with the heat map over it,
    /// side by side, scaled up to at least [`CARD_MIN_SIDE`] pixels, with [`Self::caption`] below.
    pub fn write_card(&self, path: &Path) -> Result<()> {
        let (width, height) = self.image.dimensions();
        let scale = CARD_MIN_SIDE.div_ceil(width.min(height).max(1)).max(1);
        let (w, h) = (width * scale, height * scale);
        let image = imageops::resize(&self.image, w, h, FilterType::Triangle);
        let heat = upsample_bilinear(&self.heat, height as usize, width as usize, h as usize, w as usize)?;
        let overlay = overlay_heatmap(&image, &heat, HEAT_ALPHA)?;
        plots::explanation_card(&[image, overlay], jet, &self.caption(), path)
    }
}

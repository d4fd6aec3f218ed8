//! Scoring a model on labelled images: the classification report and the confusion matrix.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::folder::Dataset;
use crate::data::image::to_f32_into;
use crate::model::backend::Predictor;
use crate::report::{ClassificationReport, ConfusionMatrix, Prediction, plots};
use crate::workflow::write_file;
use crate::{Error, Result};

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
    // Converted to f32 one model batch at a time, not the whole dataset at once.
    let batch = predictor.batch_size();
    let mut images = vec![0.0; batch * sample_len];
    for chunk in indices.chunks(batch) {
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

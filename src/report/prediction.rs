//! One image's prediction read from a model's output row: the label, its confidence and the
//! probability of every class.
//!
//! A binary model has one sigmoid output, the probability of class 1; its confidence is the
//! probability of the class it predicts, so an output of 0.37 is class 0 at 63%, not "37%".

use serde::{Serialize, Serializer};

use crate::{Error, Result};

/// The predicted class of one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Index of the predicted class.
    pub index: usize,
    /// Name of the predicted class.
    pub label: String,
    /// Probability of the predicted class (never that of another class).
    pub confidence: f32,
    /// Every class with its probability, in class-index order (a JSON object in that order).
    #[serde(serialize_with = "as_ordered_map")]
    pub probabilities: Vec<(String, f32)>,
}

impl Prediction {
    /// Reads one output row for `class_names`: one sigmoid value (the probability of class 1) for
    /// two classes, or one softmax probability per class. The predicted class is the most probable,
    /// the lowest index on a tie.
    pub fn from_row(row: &[f32], class_names: &[String]) -> Result<Self> {
        let probabilities: Vec<f32> = match (row, class_names.len()) {
            (&[p], 2) => vec![1.0 - p, p],
            (_, classes) if classes >= 2 && row.len() == classes => row.to_vec(),
            (_, classes) => {
                return Err(Error::Invalid(format!(
                    "prediction: a model output of {} values does not fit {classes} class names \
                     (expected one value per class, or one sigmoid value for two classes)",
                    row.len()
                )));
            }
        };
        if let Some(bad) = probabilities.iter().find(|p| !p.is_finite()) {
            return Err(Error::Invalid(format!("prediction: the model output {row:?} holds {bad}")));
        }
        // `max_by` keeps the last of equal maxima; scanning in reverse makes that the lowest index.
        let (index, &confidence) = probabilities
            .iter()
            .enumerate()
            .rev()
            .max_by(|(_, a), (_, b)| a.total_cmp(b))
            .expect("at least two classes");
        Ok(Prediction {
            index,
            label: class_names[index].clone(),
            confidence,
            probabilities: class_names.iter().cloned().zip(probabilities).collect(),
        })
    }

    /// Reads a batch of outputs, `outputs_per_image` values per image, as [`Trainable::predict`]
    /// returns them.
    ///
    /// [`Trainable::predict`]: crate::model::Trainable::predict
    pub fn from_batch(outputs: &[f32], outputs_per_image: usize, class_names: &[String]) -> Result<Vec<Self>> {
        if outputs_per_image == 0 || !outputs.len().is_multiple_of(outputs_per_image) {
            return Err(Error::Invalid(format!(
                "prediction: {} model outputs do not split into rows of {outputs_per_image}",
                outputs.len()
            )));
        }
        outputs.chunks(outputs_per_image).map(|row| Prediction::from_row(row, class_names)).collect()
    }
}

fn as_ordered_map<S: Serializer>(pairs: &[(String, f32)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(name, p)| (name, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sigmoid_of_0_37_is_class_0_at_63_percent() {
        let names = ["happy".to_string(), "sad".to_string()];
        let p = Prediction::from_row(&[0.37], &names).unwrap();
        assert_eq!((p.index, p.label.as_str()), (0, "happy"));
        assert!((p.confidence - 0.63).abs() < 1e-6, "confidence {}", p.confidence);
        assert_eq!(p.probabilities, [("happy".to_string(), 1.0 - 0.37), ("sad".to_string(), 0.37)]);
    }
}

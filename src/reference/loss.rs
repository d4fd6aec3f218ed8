//! Classification losses from logits (`shaders/loss.wgsl`): sigmoid + binary cross-entropy for one
//! logit per example, softmax + categorical cross-entropy for two or more, weighted per class and
//! averaged over the batch as Keras does (`SUM_OVER_BATCH_SIZE` with `class_weight`).

use super::{Real, real};
use crate::error::{Error, Result};
use crate::shape::LossShape;

/// The result of [`cross_entropy`].
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput<T> {
    /// `sum_i w[label_i] * loss_i / batch`.
    pub loss: T,
    /// The gradient of `loss` w.r.t. the logits, [batch, classes].
    pub dlogits: Vec<T>,
    /// Examples whose predicted class is their label.
    pub correct: usize,
    pub batch: usize,
}

impl<T: Real> LossOutput<T> {
    /// The GPU kernel's `stats` tensor: [loss, correct, batch, ignored rows]. The reference
    /// rejects bad labels instead of ignoring them, so the last entry is 0.
    pub fn stats(&self) -> [T; 4] {
        [self.loss, real(self.correct as f64), real(self.batch as f64), T::zero()]
    }
}

/// `1 / (1 + exp(-z))`, computed from `exp(-|z|)` so that nothing overflows.
pub fn sigmoid<T: Real>(z: T) -> T {
    let e = (-z.abs()).exp();
    if z >= T::zero() { T::one() / (T::one() + e) } else { e / (T::one() + e) }
}

/// The largest logit of a row and `sum_j exp(z_j - max)` (at least 1).
fn max_and_exp_sum<T: Real>(row: &[T]) -> (T, T) {
    let m = row.iter().copied().fold(row[0], T::max);
    (m, row.iter().map(|&z| (z - m).exp()).sum())
}

/// Loss, gradient w.r.t. the logits and correct count, for logits [batch, classes], labels
/// \[batch\] and class weights [max(classes, 2)] (all ones when unused).
///
/// Binary (`classes == 1`), with target `t = label`: `loss_i = max(z, 0) - z t + log1p(exp(-|z|))`,
/// `dz = sigmoid(z) - t`, predicted class `z > 0` (so z = 0 counts as class 0, as Keras's
/// `binary_accuracy` with `p > 0.5`). Categorical: `loss_i = logsumexp(z) - z[label]` with the row
/// maximum subtracted, `dz_j = softmax(z)_j - [j == label]`, predicted class the first maximum.
/// Each row's loss and gradient are scaled by `w[label] / batch`.
///
/// A label `>= max(classes, 2)` is an error here; the GPU kernel ignores such rows instead.
pub fn cross_entropy<T: Real>(
    shape: LossShape,
    logits: &[T],
    labels: &[u32],
    class_weights: &[T],
) -> Result<LossOutput<T>> {
    shape.validate_with_labels(logits.len(), labels.len(), class_weights.len())?;
    let batch: T = real(shape.batch as f64);
    let mut loss_sum = T::zero();
    let mut correct = 0;
    let mut dlogits = vec![T::zero(); logits.len()];
    for (i, &label) in labels.iter().enumerate() {
        let label = label as usize;
        if label >= shape.label_count() {
            return Err(Error::Invalid(format!(
                "loss: label {label} of example {i} is not below {}",
                shape.label_count()
            )));
        }
        let weight = class_weights[label];
        let scale = weight / batch;
        let row = &logits[i * shape.classes..(i + 1) * shape.classes];
        let grad = &mut dlogits[i * shape.classes..(i + 1) * shape.classes];
        let loss = if shape.is_binary() {
            let (z, t) = (row[0], real::<T>(label as f64));
            grad[0] = (sigmoid(z) - t) * scale;
            correct += usize::from(usize::from(z > T::zero()) == label);
            z.max(T::zero()) - z * t + (-z.abs()).exp().ln_1p()
        } else {
            let (m, sum) = max_and_exp_sum(row);
            let mut argmax = 0;
            for (j, (&z, g)) in row.iter().zip(grad.iter_mut()).enumerate() {
                if z > row[argmax] {
                    argmax = j;
                }
                let one_hot = if j == label { T::one() } else { T::zero() };
                *g = ((z - m).exp() / sum - one_hot) * scale;
            }
            correct += usize::from(argmax == label);
            (m - row[label]) + sum.ln()
        };
        loss_sum = loss_sum + weight * loss;
    }
    Ok(LossOutput { loss: loss_sum / batch, dlogits, correct, batch: shape.batch })
}

/// Class probabilities for inference: `sigmoid(z)` when `classes == 1`, else the softmax of each
/// row (maximum subtracted). Same shape as the logits.
pub fn probabilities<T: Real>(shape: LossShape, logits: &[T]) -> Result<Vec<T>> {
    shape.validate(logits.len())?;
    if shape.is_binary() {
        return Ok(logits.iter().map(|&z| sigmoid(z)).collect());
    }
    let mut probs = Vec::with_capacity(logits.len());
    for row in logits.chunks(shape.classes) {
        let (m, sum) = max_and_exp_sum(row);
        probs.extend(row.iter().map(|&z| (z - m).exp() / sum));
    }
    Ok(probs)
}

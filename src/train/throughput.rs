//! Training throughput: what `wgcnn bench-train` and the training benchmark measure.

use std::time::Instant;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::Result;
use crate::model::{StepProfile, Trainable};

/// Images per second of whole training steps (upload, forward, loss, backward, Adam, readback).
#[derive(Clone, Debug)]
pub struct Throughput {
    pub batch: usize,
    /// Seconds of each timed step, in order.
    pub step_seconds: Vec<f64>,
}

impl Throughput {
    /// Median step time in seconds.
    pub fn median_step(&self) -> f64 {
        let mut s = self.step_seconds.clone();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }

    pub fn images_per_second(&self) -> f64 {
        self.batch as f64 / self.median_step()
    }
}

/// Runs `warmup` untimed then `steps` timed training steps on random images and labels (the
/// speed of a step does not depend on the values).
pub fn measure_training(
    model: &mut dyn Trainable,
    sample_len: usize,
    classes: usize,
    warmup: usize,
    steps: usize,
    seed: u64,
) -> Result<Throughput> {
    let batch = model.batch_size();
    let (images, labels) = random_batch(batch, sample_len, classes, seed);
    for _ in 0..warmup {
        model.train_step(&images, &labels, 1e-3)?;
    }
    let mut step_seconds = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        model.train_step(&images, &labels, 1e-3)?;
        step_seconds.push(start.elapsed().as_secs_f64());
    }
    Ok(Throughput { batch, step_seconds })
}

/// Runs `warmup` untimed then `steps` timed inference calls ([`Trainable::predict`]: forward pass
/// and probabilities, no dropout) on a random batch of the model's size.
pub fn measure_inference(
    model: &mut dyn Trainable,
    sample_len: usize,
    warmup: usize,
    steps: usize,
    seed: u64,
) -> Result<Throughput> {
    let batch = model.batch_size();
    let (images, _) = random_batch(batch, sample_len, 2, seed);
    for _ in 0..warmup {
        model.predict(&images)?;
    }
    let mut step_seconds = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        model.predict(&images)?;
        step_seconds.push(start.elapsed().as_secs_f64());
    }
    Ok(Throughput { batch, step_seconds })
}

/// One training step on the random batch [`measure_training`] uses, timed per layer and pass
/// ([`Trainable::profile_step`]): `wgcnn bench-train --profile`.
pub fn profile_training(
    model: &mut dyn Trainable,
    sample_len: usize,
    classes: usize,
    seed: u64,
) -> Result<StepProfile> {
    let (images, labels) = random_batch(model.batch_size(), sample_len, classes, seed);
    model.profile_step(&images, &labels, 1e-3)
}

/// Random images in [0, 1) and labels of `classes` (two for a sigmoid model).
fn random_batch(batch: usize, sample_len: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let images: Vec<f32> = (0..batch * sample_len).map(|_| rng.random()).collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..classes.max(2) as u32)).collect();
    (images, labels)
}

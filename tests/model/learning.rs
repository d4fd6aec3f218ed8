//! A small model really learns on the GPU: generated images whose class is a visual feature (a
//! horizontal or a vertical bar at a random place, on noise) that no model can guess by chance.

use crate::common::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use wgcnn::model::gpu::GpuModel;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::model::{TrainOptions, Trainable};
use wgcnn::train::fit::{FitConfig, fit};
use wgcnn::train::{BatchSource, InMemoryDataset};

const SIZE: usize = 16;

/// `n` RGB images: label 0 draws a horizontal bar, label 1 a vertical one, 2 pixels thick, in a
/// random colour and place, over uniform noise.
fn bars(seed: u64, n: usize) -> InMemoryDataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * 3 * SIZE * SIZE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u32;
        let at = rng.random_range(1..SIZE - 3);
        let colour: [f32; 3] = [rng.random_range(0.6..1.0), rng.random_range(0.6..1.0), rng.random_range(0.6..1.0)];
        for value in colour {
            for y in 0..SIZE {
                for x in 0..SIZE {
                    let along = if label == 0 { y } else { x };
                    let on_bar = along == at || along == at + 1;
                    images.push(if on_bar { value } else { rng.random_range(0.0..0.5) });
                }
            }
        }
        labels.push(label);
    }
    InMemoryDataset::new(images, labels, 3 * SIZE * SIZE).unwrap()
}

#[test]
fn a_small_model_reaches_95_percent_validation_accuracy() {
    let gpu = gpu();
    let arch =
        Architecture::parse("c8same-p-c8-p-f-d16-d1", InputShape { channels: 3, height: SIZE, width: SIZE }).unwrap();
    let (train, validation) = (bars(1, 256), bars(2, 128));
    let mut model = GpuModel::new(gpu, &arch, 16, &arch.initial_weights(7).unwrap(), &TrainOptions::default()).unwrap();
    let config = FitConfig { epochs: 15, lr: 3e-3, seed: 5, ..FitConfig::default() };
    let outcome = fit(&mut model, &train, Some(&validation as &dyn BatchSource), &config).unwrap();
    let best = outcome.history.epochs.iter().filter_map(|e| e.val_accuracy).fold(0.0, f64::max);
    let last = outcome.history.epochs.last().unwrap();
    eprintln!("epochs: {}, last {:?}", outcome.history.epochs.len(), last);
    assert!(best >= 0.95, "best validation accuracy {best} after {} epochs", outcome.history.epochs.len());
    // And it is the model, not the history, that knows: predict the validation set directly.
    let mut images = vec![0.0; 16 * validation.sample_len()];
    let mut labels = vec![0; 16];
    validation.fill(&(0..16).collect::<Vec<_>>(), 0, &mut images, &mut labels).unwrap();
    let probabilities = model.predict(&images).unwrap();
    let right = probabilities.iter().zip(&labels).filter(|(p, l)| (**p > 0.5) == (**l == 1)).count();
    assert!(right >= 14, "{right} of 16 predicted right");
}

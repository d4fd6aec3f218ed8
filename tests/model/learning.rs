//! A small model really learns on the GPU: generated images whose class is a visual feature (a
//! horizontal or a vertical bar at a random place, on noise) that no model can guess by chance.

use crate::common::*;
use rand::{Rng, SeedableRng, rngs::StdRng};
use wgcnn::gpu::GpuModel;
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

/// In each kernel variant: the tiled kernels, forced on whatever adapter the tests have, train as
/// well as the software ones.
#[test]
fn a_small_model_reaches_95_percent_validation_accuracy() {
    for gpu in gpus() {
        small_model_learns(gpu);
    }
}

fn small_model_learns(gpu: std::sync::Arc<wgcnn::gpu::Gpu>) {
    let kernels = gpu.kernels;
    let arch =
        Architecture::parse("c8same-p-c8-p-f-d16-d1", InputShape { channels: 3, height: SIZE, width: SIZE }).unwrap();
    let (train, validation) = (bars(1, 256), bars(2, 128));
    let mut model = GpuModel::new(gpu, &arch, 16, &arch.initial_weights(7).unwrap(), &TrainOptions::default()).unwrap();
    let config = FitConfig { epochs: 15, lr: 3e-3, seed: 5, ..FitConfig::default() };
    let outcome = fit(&mut model, &train, Some(&validation as &dyn BatchSource), &config).unwrap();
    let best = outcome.history.epochs.iter().filter_map(|e| e.val_accuracy).fold(0.0, f64::max);
    let last = outcome.history.epochs.last().unwrap();
    eprintln!("{kernels} kernels: epochs: {}, last {:?}", outcome.history.epochs.len(), last);
    assert!(
        best >= 0.95,
        "{kernels} kernels: best validation accuracy {best} after {} epochs",
        outcome.history.epochs.len()
    );
    // And it is the model, not the history, that knows: predict the validation set directly.
    let mut images = vec![0.0; 16 * validation.sample_len()];
    let mut labels = vec![0; 16];
    validation.fill(&(0..16).collect::<Vec<_>>(), 0, &mut images, &mut labels).unwrap();
    let probabilities = model.predict(&images).unwrap();
    let right = probabilities.iter().zip(&labels).filter(|(p, l)| (**p > 0.5) == (**l == 1)).count();
    assert!(right >= 14, "{kernels} kernels: {right} of 16 predicted right");
}

/// `n` grayscale `size`x`size` images of three classes: a horizontal bar (label 0), a vertical one
/// (1) or both (2), 3 pixels thick, in a random place and brightness, over uniform noise.
fn bars_and_crosses(seed: u64, n: usize, size: usize) -> InMemoryDataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * size * size);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 3) as u32;
        let (row, column) = (rng.random_range(2..size - 5), rng.random_range(2..size - 5));
        let value: f32 = rng.random_range(0.6..1.0);
        for y in 0..size {
            for x in 0..size {
                let horizontal = label != 1 && (row..row + 3).contains(&y);
                let vertical = label != 0 && (column..column + 3).contains(&x);
                images.push(if horizontal || vertical { value } else { rng.random_range(0.0..0.5) });
            }
        }
        labels.push(label);
    }
    InMemoryDataset::new(images, labels, size * size).unwrap()
}

/// The `fer48` preset's architecture (at its input, 1x48x48, with its batch norms, dropout and
/// softmax head), trained for four short epochs on the native backend, learns a visual feature: far
/// above chance on validation images, so the preset cannot silently break. (On a sample of
/// FER-2013 itself this model needs more epochs than a test can afford to leave chance: on the
/// whole training pool it takes three epochs of 13,634 faces.)
#[test]
fn the_fer48_presets_model_learns_in_four_short_epochs() {
    use wgcnn::model::backend::Backend;
    use wgcnn::workflow::preset::Preset;

    let preset = Preset::named("fer48").unwrap();
    let input = preset.architecture.input;
    assert_eq!((input.channels, input.height, input.width), (1, 48, 48));
    let (train, validation) = (bars_and_crosses(1, 450, 48), bars_and_crosses(2, 150, 48));
    let architecture = preset.architecture.clone().with_classes(3).unwrap();
    let weights = architecture.initial_weights(1).unwrap();
    let options = TrainOptions { seed: 1, ..TrainOptions::default() };
    // Validation runs on the batch norms' running statistics, which start at variance 1 and move
    // by 1% a step (Keras's momentum 0.99): the first convolution's outputs vary by about 0.002, so
    // inference is garbage until 0.99^steps is well under that. Batches of 2 give 900 steps in four
    // epochs (0.99^900 = 1e-4).
    let mut model = Backend::Native.model(&architecture, 2, &weights, &options).unwrap();
    let config = FitConfig { epochs: 4, lr: 1e-3, seed: 1, ..FitConfig::default() };
    let outcome = fit(model.as_mut(), &train, Some(&validation as &dyn BatchSource), &config).unwrap();
    let val_accuracy = outcome.history.epochs.last().unwrap().val_accuracy.unwrap();
    // Chance is 1/3; a broken layer, gradient or head stays near it.
    assert!(val_accuracy >= 0.8, "validation accuracy {val_accuracy:.3} after 4 epochs: {:?}", outcome.history);
}

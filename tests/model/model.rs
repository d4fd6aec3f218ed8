//! Whole models: a training step on the GPU against the same step on the CPU reference, and
//! determinism of GPU training.

use crate::common::*;
use wgcnn::gpu::GpuModel;
use wgcnn::model::backend::{Backend, Predictor};
use wgcnn::model::spec::{Architecture, InputShape, LayerKind};
use wgcnn::model::test_time::TestTimeAugment;
use wgcnn::model::{NamedTensor, TrainOptions, Trainable};
use wgcnn::native::NativeModel;
use wgcnn::reference::ReferenceModel;

/// A small model with every layer kind: conv (same and valid), batch norm, ReLU, pool, flatten,
/// dense, dropout, and a sigmoid or softmax head.
fn small_architecture(classes: usize) -> Architecture {
    let spec = format!("c4same-bn-r-p-c6-p-f-d16-drop0.25-d{classes}");
    Architecture::parse(&spec, InputShape { channels: 3, height: 13, width: 15 }).unwrap()
}

/// The backends are checked against the CPU reference on the small model: it must hold every kind.
#[test]
fn the_small_model_has_every_layer_kind() {
    let layers = small_architecture(3).layers;
    for &kind in LayerKind::ALL {
        assert!(layers.iter().any(|layer| layer.kind() == kind), "the small model has no {kind:?} layer");
    }
}

fn batch(seed: u64, n: usize, sample_len: usize, classes: u32) -> (Vec<f32>, Vec<u32>) {
    let images = random(seed, n * sample_len, 0.0, 1.0);
    let labels = (0..n as u32).map(|i| (i * 7 + seed as u32) % classes.max(2)).collect();
    (images, labels)
}

fn max_difference(a: &[NamedTensor], b: &[NamedTensor]) -> (String, f32) {
    let mut worst = (String::new(), 0f32);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        for (p, q) in x.data.iter().zip(&y.data) {
            let d = (p - q).abs() / (1.0 + q.abs());
            if d > worst.1 || d.is_nan() {
                worst = (x.name.clone(), d);
            }
        }
    }
    worst
}

#[test]
fn five_training_steps_on_gpu_match_the_cpu_reference() {
    let gpu = gpu();
    for classes in [1, 3] {
        let arch = small_architecture(classes);
        let weights = arch.initial_weights(5).unwrap();
        let options = TrainOptions {
            seed: 11,
            class_weights: Some(vec![1.0, 2.0, 0.5][..classes.max(2)].to_vec()),
            ..Default::default()
        };
        let mut on_gpu = GpuModel::new(gpu.clone(), &arch, 4, &weights, &options).unwrap();
        let mut on_cpu = ReferenceModel::new(&arch, 4, &weights, &options).unwrap();
        let sample_len = 3 * 13 * 15;
        for step in 0..5 {
            let (images, labels) = batch(step, 4, sample_len, classes as u32);
            let g = on_gpu.train_step(&images, &labels, 1e-2).unwrap();
            let c = on_cpu.train_step(&images, &labels, 1e-2).unwrap();
            assert!(
                (g.loss_sum - c.loss_sum).abs() <= 1e-4 * (1.0 + c.loss_sum.abs()),
                "step {step} loss {g:?} vs {c:?}"
            );
            assert_eq!(g.count, 4);
        }
        // Five Adam steps of lr 1e-2 move weights by up to 5e-2; the GPU's different summation
        // order (split reductions, fused multiply-adds) leaves differences of float rounding,
        // amplified a little by Adam's normalisation of small gradients.
        let (name, diff) = max_difference(&on_gpu.weights().unwrap(), &on_cpu.weights().unwrap());
        assert!(diff <= 1e-3, "classes {classes}: weights differ by {diff} (relative) in {name}");
        // Inference agrees too, including padding rows ignored by evaluate.
        let (images, mut labels) = batch(9, 4, sample_len, classes as u32);
        labels[3] = wgcnn::model::PADDING_LABEL;
        let (g, c) = (on_gpu.evaluate(&images, &labels).unwrap(), on_cpu.evaluate(&images, &labels).unwrap());
        assert_eq!((g.count, g.correct), (c.count, c.correct));
        assert!((g.loss_sum - c.loss_sum).abs() <= 1e-4 * (1.0 + c.loss_sum.abs()), "{g:?} vs {c:?}");
        assert_close("probabilities", &on_gpu.predict(&images).unwrap(), &on_cpu.predict(&images).unwrap(), 1e-5, 1e-4);
    }
}

#[test]
fn gpu_training_is_deterministic() {
    let gpu = gpu();
    let arch = small_architecture(3);
    let run = || {
        let weights = arch.initial_weights(1).unwrap();
        let mut model =
            GpuModel::new(gpu.clone(), &arch, 4, &weights, &TrainOptions { seed: 3, ..Default::default() }).unwrap();
        for step in 0..3 {
            let (images, labels) = batch(step, 4, 3 * 13 * 15, 3);
            model.train_step(&images, &labels, 1e-2).unwrap();
        }
        model.weights().unwrap()
    };
    let (a, b) = (run(), run());
    for (x, y) in a.iter().zip(&b) {
        assert_bits_equal(&x.name, &x.data, &y.data);
    }
}

#[test]
fn a_saved_and_reloaded_model_predicts_the_same_numbers() {
    use wgcnn::model::file::ModelFile;
    let gpu = gpu();
    let arch = small_architecture(3);
    let options = TrainOptions { seed: 2, ..Default::default() };
    let mut model = GpuModel::new(gpu.clone(), &arch, 4, &arch.initial_weights(4).unwrap(), &options).unwrap();
    for step in 0..2 {
        let (images, labels) = batch(step, 4, 3 * 13 * 15, 3);
        model.train_step(&images, &labels, 1e-2).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("wgcnn-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let file = ModelFile {
        architecture: arch.clone(),
        class_names: vec!["angry".into(), "happy".into(), "sad".into()],
        normalisation: "rgb/255".parse().unwrap(),
        test_time_augment: Default::default(),
        history: Default::default(),
        weights: model.weights().unwrap(),
        optimizer: None,
        resume: None,
    };
    file.save(&path).unwrap();
    let loaded = ModelFile::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut reloaded = GpuModel::new(gpu, &loaded.architecture, 4, &loaded.weights, &options).unwrap();
    let (images, _) = batch(7, 4, 3 * 13 * 15, 3);
    assert_bits_equal("probabilities", &model.predict(&images).unwrap(), &reloaded.predict(&images).unwrap());
}

#[test]
fn predictor_pads_the_last_batch_and_matches_one_full_batch() {
    let arch = small_architecture(3);
    let weights = arch.initial_weights(5).unwrap();
    let backend = Backend::Gpu(gpu());
    let (images, _) = batch(9, 5, arch.input.elements(), 3);
    let whole = Predictor::new(&backend, &arch, &weights, 5).unwrap().predict(&images).unwrap();
    let mut by_two = Predictor::new(&backend, &arch, &weights, 2).unwrap();
    let chunked = by_two.predict(&images).unwrap();
    assert_eq!(whole.len(), 5);
    assert_eq!(chunked.len(), 5);
    for (i, (a, b)) in whole.iter().zip(&chunked).enumerate() {
        assert_close(&format!("image {i}"), b, a, 1e-6, 1e-5);
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax row {i} sums to 1: {a:?}");
    }
    // The CPU reference gives the same numbers.
    let cpu = Predictor::new(&Backend::Reference, &arch, &weights, 2).unwrap().predict(&images).unwrap();
    for (i, (a, b)) in whole.iter().zip(&cpu).enumerate() {
        assert_close(&format!("cpu image {i}"), b, a, 1e-5, 1e-4);
    }
    // A length that is not whole images is an error, not a panic.
    assert!(by_two.predict(&images[1..]).is_err());
}

/// Mirror test-time augmentation: each image's probabilities are the mean of its own and its
/// left-right mirror's (mirrored here by hand), for any count of images.
#[test]
fn a_mirroring_predictor_averages_each_image_with_its_mirror() {
    let arch = small_architecture(3);
    let weights = arch.initial_weights(6).unwrap();
    let (images, _) = batch(10, 5, arch.input.elements(), 3);
    let width = arch.input.width;
    let mirrored: Vec<f32> = images.chunks(width).flat_map(|row| row.iter().rev().copied()).collect();
    assert_ne!(images, mirrored);
    let mut plain = Predictor::new(&Backend::Reference, &arch, &weights, 2).unwrap();
    let (own, of_mirror) = (plain.predict(&images).unwrap(), plain.predict(&mirrored).unwrap());
    let mut mirroring = Predictor::new(&Backend::Reference, &arch, &weights, 2)
        .unwrap()
        .with_test_time_augment(TestTimeAugment::Mirror);
    let averaged = mirroring.predict(&images).unwrap();
    assert_eq!(averaged.len(), 5);
    for (i, ((got, a), b)) in averaged.iter().zip(&own).zip(&of_mirror).enumerate() {
        let want: Vec<f32> = a.iter().zip(b).map(|(a, b)| (a + b) / 2.0).collect();
        assert_close(&format!("image {i}"), got, &want, 1e-7, 1e-6);
        assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i} still sums to 1: {got:?}");
    }
    // Turned off again, it predicts the images alone.
    mirroring.set_test_time_augment(TestTimeAugment::None);
    assert_eq!(mirroring.predict(&images).unwrap(), own);
}

/// A short last batch (its real rows, then padding labelled PADDING_LABEL) trains as a batch of
/// its real rows alone: on the GPU as a model of that smaller batch does, and alike on the CPU
/// reference, batch norm and dropout included.
#[test]
fn a_short_batch_trains_as_a_batch_of_its_real_rows_on_gpu_and_cpu() {
    use wgcnn::model::PADDING_LABEL;
    let gpu = gpu();
    let arch = small_architecture(3);
    let weights = arch.initial_weights(8).unwrap();
    let options = TrainOptions { seed: 4, ..Default::default() };
    let sample_len = 3 * 13 * 15;
    let mut padded = GpuModel::new(gpu.clone(), &arch, 4, &weights, &options).unwrap();
    let mut on_cpu = ReferenceModel::new(&arch, 4, &weights, &options).unwrap();
    let mut exact = GpuModel::new(gpu.clone(), &arch, 3, &weights, &options).unwrap();
    for step in 0..3 {
        let (images, labels) = batch(20 + step, 3, sample_len, 3);
        let g = exact.train_step(&images, &labels, 1e-2).unwrap();
        let mut images4 = images.clone();
        images4.resize(4 * sample_len, 0.0);
        let labels4 = [&labels[..], &[PADDING_LABEL]].concat();
        let p = padded.train_step(&images4, &labels4, 1e-2).unwrap();
        let c = on_cpu.train_step(&images4, &labels4, 1e-2).unwrap();
        assert_eq!((p.count, c.count), (3, 3), "the padding row is not counted");
        for other in [&p, &c] {
            assert!(
                (g.loss_sum - other.loss_sum).abs() <= 1e-4 * (1.0 + g.loss_sum.abs()),
                "step {step}: {g:?} vs {other:?}"
            );
        }
    }
    let exact_weights = exact.weights().unwrap();
    let (name, diff) = max_difference(&padded.weights().unwrap(), &exact_weights);
    assert!(diff <= 1e-5, "padded batch of 4 vs batch of 3 on the GPU: {diff} in {name}");
    let (name, diff) = max_difference(&on_cpu.weights().unwrap(), &exact_weights);
    assert!(diff <= 1e-3, "CPU reference vs GPU: {diff} in {name}");
    // A batch of padding alone is no step.
    let labels = vec![PADDING_LABEL; 4];
    assert!(padded.train_step(&vec![0.0; 4 * sample_len], &labels, 1e-2).is_err());
}

/// Keras trains on the partial last batch: an epoch of 33 images at batch 32 is two steps, and
/// its weights differ from an epoch of the first 32 images by what the 33rd taught.
#[test]
fn an_epoch_of_33_images_at_batch_32_trains_on_the_33rd() {
    use wgcnn::train::InMemoryDataset;
    use wgcnn::train::fit::{FitConfig, fit};
    let gpu = gpu();
    let arch = Architecture::parse("c4-bn-p-f-d2", InputShape { channels: 1, height: 8, width: 8 }).unwrap();
    let weights = arch.initial_weights(1).unwrap();
    let (images, labels) = batch(3, 33, 64, 2);
    let config = FitConfig { epochs: 1, shuffle: false, ..FitConfig::default() };
    let run = |n: usize| {
        let data = InMemoryDataset::new(images[..n * 64].to_vec(), labels[..n].to_vec(), 64).unwrap();
        let mut model = GpuModel::new(gpu.clone(), &arch, 32, &weights, &TrainOptions::default()).unwrap();
        let outcome = fit(&mut model, &data, None, &config).unwrap();
        (model.weights().unwrap(), outcome.batches.batches)
    };
    let (with_33, steps_33) = run(33);
    let (with_32, steps_32) = run(32);
    assert_eq!((steps_33, steps_32), (2, 1), "training steps");
    let (name, diff) = max_difference(&with_33, &with_32);
    assert!(diff > 1e-4, "the 33rd image changed nothing: {diff} in {name}");
}

#[test]
fn a_profiled_step_times_every_layer_and_pass_and_trains_as_a_step_does() {
    let arch = small_architecture(3);
    let weights = arch.initial_weights(6).unwrap();
    let options = TrainOptions { seed: 4, ..Default::default() };
    let (images, labels) = batch(1, 4, 3 * 13 * 15, 3);
    let mut profiled: Vec<Box<dyn Trainable>> = vec![
        Box::new(GpuModel::new(gpu(), &arch, 4, &weights, &options).unwrap()),
        Box::new(ReferenceModel::new(&arch, 4, &weights, &options).unwrap()),
    ];
    for model in &mut profiled {
        let profile = model.profile_step(&images, &labels, 1e-2).unwrap();
        let labels_seen: Vec<&str> = profile.parts.iter().map(|(l, _)| l.as_str()).collect();
        // Every layer with work to do forward (flatten moves no data; conv2 and its pool run as
        // one op), the loss, every layer backward down to the first (whose input gradient nobody
        // reads), and Adam.
        for expected in
            ["conv1 forward", "bn1 forward", "conv2+pool2 forward", "dense2 forward", "loss", "dense2 backward"]
        {
            assert!(labels_seen.contains(&expected), "{expected} missing from {labels_seen:?}");
        }
        for expected in ["dropout1 backward", "bn1 backward", "conv1 backward", "adam"] {
            assert!(labels_seen.contains(&expected), "{expected} missing from {labels_seen:?}");
        }
        assert!(profile.parts.iter().all(|(_, s)| *s >= 0.0) && profile.total() > 0.0, "{profile:?}");
    }
    // The profiled step was a real step: both models moved their weights the same way.
    let (name, diff) = max_difference(&profiled[0].weights().unwrap(), &profiled[1].weights().unwrap());
    assert!(diff <= 1e-3, "weights after a profiled step differ by {diff} in {name}");
    assert_ne!(profiled[1].weights().unwrap(), weights, "the profiled step trained");
}

/// Five training steps of `model` on the batches the GPU comparison uses, then its weights.
fn train_five_steps(model: &mut dyn Trainable, classes: usize) -> Vec<NamedTensor> {
    for step in 0..5 {
        let (images, labels) = batch(step, 4, 3 * 13 * 15, classes as u32);
        model.train_step(&images, &labels, 1e-2).unwrap();
    }
    model.weights().unwrap()
}

fn native_and_reference(classes: usize) -> (NativeModel, ReferenceModel) {
    let arch = small_architecture(classes);
    let weights = arch.initial_weights(5).unwrap();
    let options = TrainOptions {
        seed: 11,
        class_weights: Some(vec![1.0, 2.0, 0.5][..classes.max(2)].to_vec()),
        ..Default::default()
    };
    (
        NativeModel::new(&arch, 4, &weights, &options).unwrap(),
        ReferenceModel::new(&arch, 4, &weights, &options).unwrap(),
    )
}

#[test]
fn five_training_steps_on_the_native_backend_match_the_cpu_reference() {
    for classes in [1, 3] {
        let (mut native, mut reference) = native_and_reference(classes);
        let (n, r) = (train_five_steps(&mut native, classes), train_five_steps(&mut reference, classes));
        // As on the GPU: the GEMMs' summation order leaves float rounding, amplified a little by
        // Adam's normalisation of small gradients.
        let (name, diff) = max_difference(&n, &r);
        assert!(diff <= 1e-3, "classes {classes}: weights differ by {diff} (relative) in {name}");
        let (images, mut labels) = batch(9, 4, 3 * 13 * 15, classes as u32);
        labels[3] = wgcnn::model::PADDING_LABEL;
        let (a, b) = (native.evaluate(&images, &labels).unwrap(), reference.evaluate(&images, &labels).unwrap());
        assert_eq!((a.count, a.correct), (b.count, b.correct));
        assert!((a.loss_sum - b.loss_sum).abs() <= 1e-4 * (1.0 + b.loss_sum.abs()), "{a:?} vs {b:?}");
        assert_close(
            "probabilities",
            &native.predict(&images).unwrap(),
            &reference.predict(&images).unwrap(),
            1e-5,
            1e-4,
        );
        // A short batch (two real rows, two padding) steps as a batch of its real rows.
        let (images, mut labels) = batch(10, 4, 3 * 13 * 15, classes as u32);
        labels[2..].fill(wgcnn::model::PADDING_LABEL);
        let (a, b) =
            (native.train_step(&images, &labels, 1e-2).unwrap(), reference.train_step(&images, &labels, 1e-2).unwrap());
        assert_eq!(a.count, 2);
        assert!((a.loss_sum - b.loss_sum).abs() <= 1e-4 * (1.0 + b.loss_sum.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn native_training_is_bit_identical_across_runs_and_thread_counts() {
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let (mut native, _) = native_and_reference(3);
            train_five_steps(&mut native, 3)
        })
    };
    let first = run(2);
    for (threads, again) in [(2, run(2)), (1, run(1)), (3, run(3))] {
        for (a, b) in first.iter().zip(&again) {
            assert_bits_equal(&format!("{} with {threads} threads", a.name), &a.data, &b.data);
        }
    }
}

//! Grad-CAM points at the mouth: a small model trained on synthetic happy and sad faces that differ
//! only in the mouth (each pair drawn from the same random face, see `FaceParams::with_emotion`)
//! puts the Grad-CAM heat of sad (its sigmoid's logit) inside the mouth's bounding box, through
//! the same path as `wgcnn explain` (a saved model file, PNG bytes, `ModelSession::explain_bytes`),
//! on the GPU and on the CPU reference alike.

use crate::common::*;
use image::{ImageFormat, RgbImage};
use wgcnn::data::image::DecodeLimits;
use wgcnn::data::synth::{Emotion, FaceParams, PixelBox};
use wgcnn::gpu::GpuModel;
use wgcnn::model::backend::Backend;
use wgcnn::model::explain::ExplainMethod;
use wgcnn::model::file::ModelFile;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::model::{TrainOptions, Trainable};
use wgcnn::train::fit::{FitConfig, TrainEvent, fit_with};
use wgcnn::train::{BatchSource, InMemoryDataset};
use wgcnn::workflow::explanation::ExplainedImage;
use wgcnn::workflow::session::ModelSession;

const SIZE: u32 = 64;
const ARCH: &str = "c8-p-c16-p-c16-p-f-d32-d1";
/// Face pairs (one happy, one sad) to train on, to validate on, and to explain.
const TRAIN_PAIRS: usize = 200;
const VALIDATION_PAIRS: usize = 30;
const TEST_PAIRS: usize = 12;
const EPOCHS: usize = 12;
/// The sad class's Grad-CAM: mean heat inside the mouth's box over mean heat outside it, over all
/// the test faces, must be at least this. Measured on lavapipe: 2.02 (per face 1.32 to 4.09), so
/// 1.5 leaves room for another adapter's training path; every face must be above 1.
const MARGIN: f64 = 1.5;

/// Happy (label 0) and sad (label 1) faces of pairs `first..first + n` of `seed`, each pair drawn
/// from one face's parameters, so only the mouth differs within a pair.
fn faces(seed: u64, first: usize, n: usize) -> Vec<(RgbImage, PixelBox, u32)> {
    (first..first + n)
        .flat_map(|i| {
            let happy = FaceParams::for_sample(Emotion::Happy, SIZE, seed, i).unwrap();
            [(happy.clone(), 0), (happy.with_emotion(Emotion::Sad), 1)]
        })
        .map(|(params, label)| {
            let (image, layout) = params.render();
            (image, layout.mouth, label)
        })
        .collect()
}

/// Planar (CHW) values in [0, 1], as the loader gives them.
fn dataset(faces: &[(RgbImage, PixelBox, u32)]) -> InMemoryDataset {
    let plane = (SIZE * SIZE) as usize;
    let mut images = Vec::with_capacity(faces.len() * 3 * plane);
    for (image, _, _) in faces {
        for c in 0..3 {
            images.extend(image.pixels().map(|p| f32::from(p.0[c]) / 255.0));
        }
    }
    InMemoryDataset::new(images, faces.iter().map(|f| f.2).collect(), 3 * plane).unwrap()
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// Summed heat and pixel counts inside and outside `mouth`.
fn inside_outside(heat: &[f32], mouth: PixelBox) -> [(f64, usize); 2] {
    let mut sums = [(0.0, 0), (0.0, 0)];
    for (i, &h) in heat.iter().enumerate() {
        let (x, y) = ((i as u32) % SIZE, (i as u32) / SIZE);
        let at = if mouth.contains(x, y) { 0 } else { 1 };
        sums[at].0 += f64::from(h);
        sums[at].1 += 1;
    }
    sums
}

/// Mean heat inside the mouth boxes over mean heat outside, over all `faces` together, and per
/// face (sorted).
fn mouth_ratios(faces: &[(RgbImage, PixelBox, u32)], explained: &[ExplainedImage]) -> (f64, Vec<f64>) {
    let density = |(sum, count): (f64, usize)| sum / count as f64;
    let mut totals = [(0.0, 0), (0.0, 0)];
    let mut ratios = Vec::new();
    for ((_, mouth, _), e) in faces.iter().zip(explained) {
        let sums = inside_outside(&e.heat, *mouth);
        for (total, part) in totals.iter_mut().zip(sums) {
            total.0 += part.0;
            total.1 += part.1;
        }
        ratios.push(density(sums[0]) / density(sums[1]));
    }
    ratios.sort_by(f64::total_cmp);
    (density(totals[0]) / density(totals[1]), ratios)
}

fn summary(sorted: &[f64]) -> String {
    match sorted {
        [] => "none".into(),
        _ => {
            format!("min {:.2}, median {:.2}, max {:.2}", sorted[0], sorted[sorted.len() / 2], sorted[sorted.len() - 1])
        }
    }
}

#[test]
fn grad_cam_points_at_the_mouth() {
    // SAFETY: no other thread of this test binary reads the environment.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    let start = std::time::Instant::now();
    let input = InputShape::new(3, SIZE as usize, SIZE as usize);
    let architecture = Architecture::parse(ARCH, input).unwrap();
    let (train, validation) = (dataset(&faces(1, 0, TRAIN_PAIRS)), dataset(&faces(1, TRAIN_PAIRS, VALIDATION_PAIRS)));
    let mut model =
        GpuModel::new(gpu(), &architecture, 16, &architecture.initial_weights(3).unwrap(), &TrainOptions::default())
            .unwrap();
    let config = FitConfig { epochs: EPOCHS, lr: 1e-3, seed: 5, ..FitConfig::default() };
    let print_lines = &mut |event: &TrainEvent| event.line().into_iter().for_each(|line| println!("{line}"));
    let outcome = fit_with(&mut model, &train, Some(&validation as &dyn BatchSource), &config, print_lines).unwrap();
    let accuracy = outcome.history.epochs.last().and_then(|e| e.val_accuracy).unwrap();
    eprintln!("trained in {:.1} s: validation accuracy {accuracy:.3}", start.elapsed().as_secs_f64());
    assert!(accuracy >= 0.9, "validation accuracy {accuracy} after {EPOCHS} epochs: the model did not learn the mouth");

    // Through a model file and PNG bytes, as `wgcnn explain` goes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let file = ModelFile {
        architecture: architecture.clone(),
        class_names: vec!["happy".into(), "sad".into()],
        normalisation: "rgb/255 stretch".parse().unwrap(),
        test_time_augment: Default::default(),
        history: outcome.history.clone(),
        weights: model.weights().unwrap(),
        optimizer: None,
        resume: None,
    };
    file.save(&path).unwrap();
    let test = faces(2, 0, TEST_PAIRS);
    let bytes: Vec<Vec<u8>> = test.iter().map(|f| png(&f.0)).collect();
    let bytes: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let mut loaded = ModelSession::open(&path, &Backend::Gpu(gpu()), &[16], DecodeLimits::default()).unwrap();
    let explained: Vec<_> =
        loaded.explain_bytes(&bytes, ExplainMethod::GradCam, None).unwrap().into_iter().map(Result::unwrap).collect();

    // Sad is class 1, the sigmoid's own logit: its map shows where the model weighs the evidence
    // for sad against happy, on faces of both classes.
    let sad: Vec<_> = loaded
        .explain_bytes(&bytes, ExplainMethod::GradCam, Some("sad"))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let (ratio, ratios) = mouth_ratios(&test, &sad);
    eprintln!(
        "Grad-CAM of sad, mean heat inside the mouth box / outside: {ratio:.2} over all {} faces; per face {}",
        test.len(),
        summary(&ratios)
    );
    assert!(ratio >= MARGIN, "Grad-CAM heat inside the mouth box is only {ratio:.2}x that outside (want >= {MARGIN})");
    assert!(ratios.iter().all(|&r| r > 1.0), "a face's Grad-CAM of sad is not densest at the mouth: {ratios:?}");

    // By default each face's predicted class is explained: a face predicted sad gets the map
    // above. Happy's score is minus the logit, and a model that learnt to detect sad mouths (happy
    // being their absence) has little or no region that raises it: most such maps are all zeros
    // ("no evidence"), so they are counted, not held to the margin.
    let mut right = 0;
    let mut happy_maps = [0, 0]; // [with no evidence, with some]
    for (((_, _, label), e), s) in test.iter().zip(&explained).zip(&sad) {
        assert_eq!(e.class, e.prediction.index, "the predicted class is explained by default");
        assert_eq!(e.prediction, s.prediction, "the prediction does not depend on the class explained");
        right += (e.prediction.index == *label as usize) as usize;
        if e.class == 1 {
            assert_close("the sad map by default and when asked for", &e.heat, &s.heat, 1e-6, 1e-5);
        } else {
            happy_maps[e.heat.iter().any(|&h| h > 0.0) as usize] += 1;
        }
    }
    eprintln!(
        "{right}/{} test faces predicted right; of the faces predicted happy, {} Grad-CAM maps show no evidence, {} some",
        test.len(),
        happy_maps[0],
        happy_maps[1]
    );
    assert!(right as f64 >= 0.9 * test.len() as f64, "{right} of {} test faces predicted right", test.len());

    // The CPU reference explains the same model alike (a few faces; tolerances as tests/explain.rs).
    let mut on_cpu = ModelSession::open(&path, &Backend::Reference, &[4], DecodeLimits::default()).unwrap();
    let cpu = on_cpu.explain_bytes(&bytes[..4], ExplainMethod::GradCam, None).unwrap();
    for (g, c) in explained.iter().zip(cpu) {
        let c = c.unwrap();
        assert_eq!((g.class, g.prediction.index), (c.class, c.prediction.index));
        assert_close("Grad-CAM, GPU against CPU", &g.heat, &c.heat, 1e-4, 1e-3);
    }
    eprintln!("whole test: {:.1} s", start.elapsed().as_secs_f64());
}

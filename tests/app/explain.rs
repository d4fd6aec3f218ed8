//! Explaining predictions: the GPU's saliency and Grad-CAM maps against the CPU reference's,
//! saliency against finite differences of the class score, the class asked for, training left
//! undisturbed, and bad requests.

use crate::common::*;
use wgcnn::gpu::GpuModel;
use wgcnn::model::explain::{Explain, Explanation};
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::model::{NamedTensor, TrainOptions, Trainable};
use wgcnn::reference::ReferenceModel;

const INPUT: InputShape = InputShape { channels: 3, height: 13, width: 15 };

/// Every layer kind: a linear `same` convolution, batch norm over channels, a ReLU layer, pools,
/// a `valid` convolution whose fused ReLU meets a pool (the Grad-CAM layer), flatten, dense,
/// batch norm over features, dropout, and a sigmoid (1) or softmax head.
fn architecture(outputs: usize) -> Architecture {
    Architecture::parse(&format!("c4samelin-bn-r-p-c6-p-f-d16-bn-drop0.25-d{outputs}"), INPUT).unwrap()
}

/// Initial weights with random biases and batch-norm tensors, so that no statistic is trivial.
fn weights(architecture: &Architecture, seed: u64) -> Vec<NamedTensor> {
    let mut weights = architecture.initial_weights(seed).unwrap();
    for (i, w) in weights.iter_mut().enumerate() {
        let (lo, hi) = match w.name.rsplit('.').next() {
            Some("gamma") => (0.5, 1.5),
            Some("running_var") => (0.5, 2.0),
            Some("beta" | "running_mean" | "bias") => (-0.2, 0.2),
            _ => continue,
        };
        w.data = random(seed * 100 + i as u64, w.data.len(), lo, hi);
    }
    weights
}

fn options() -> TrainOptions {
    TrainOptions { seed: 7, ..Default::default() }
}

fn models(architecture: &Architecture, batch: usize, seed: u64) -> (GpuModel, ReferenceModel) {
    let w = weights(architecture, seed);
    (
        GpuModel::new(gpu(), architecture, batch, &w, &options()).unwrap(),
        ReferenceModel::new(architecture, batch, &w, &options()).unwrap(),
    )
}

fn images(seed: u64, n: usize) -> Vec<f32> {
    random(seed, n * INPUT.elements(), 0.0, 1.0)
}

fn max(values: &[f32]) -> f32 {
    values.iter().copied().fold(0.0, f32::max)
}

// Tolerances, GPU against CPU, for any adapter (on lavapipe the saliency maps come out bit for
// bit the CPU's, the scores within 1.2e-7 and the Grad-CAM maps within 1.3e-6):
// - score and probabilities: a few dot products of length <= 96 after the same forward pass as
//   `predict`, which the model tests hold to atol 1e-5, rtol 1e-4;
// - saliency: the input gradient after the backward passes of every layer, each a reduction of
//   up to 54 (conv) or 96 (dense) products that a GPU may add in another order or fuse into
//   multiply-adds; relative to the map's largest value: atol 1e-4 * max, rtol 1e-3;
// - Grad-CAM: a sum over 6 channels of products of two such tensors, divided by its maximum:
//   atol 1e-4, rtol 1e-3 on [0, 1].
const SCORE: (f32, f32) = (1e-5, 1e-4);
const SALIENCY: (f32, f32) = (1e-4, 1e-3);
const GRAD_CAM: (f32, f32) = (1e-4, 1e-3);

/// Returns how many Grad-CAM maps were not all zeros.
#[track_caller]
fn assert_explanations_close(what: &str, got: &[Explanation], want: &[Explanation]) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: explanations");
    let mut maps_with_evidence = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let what = format!("{what} image {i} class {}", w.class);
        assert_eq!((g.class, g.height, g.width), (w.class, w.height, w.width), "{what}");
        assert_close(&format!("{what} score"), &[g.score], &[w.score], SCORE.0, SCORE.1);
        assert_close(&format!("{what} probabilities"), &g.probabilities, &w.probabilities, SCORE.0, SCORE.1);
        assert_eq!(w.saliency.len(), INPUT.height * INPUT.width);
        let scale = max(&w.saliency);
        assert!(scale > 0.0, "{what}: a zero saliency map tests nothing");
        assert_close(&format!("{what} saliency"), &g.saliency, &w.saliency, SALIENCY.0 * scale, SALIENCY.1);
        match (&g.grad_cam, &w.grad_cam) {
            (Some(g), Some(w)) => {
                // All zeros where no channel votes for the class.
                assert!([0.0, 1.0].contains(&max(w)), "{what}: Grad-CAM normalised to a maximum of 1");
                assert_close(&format!("{what} Grad-CAM"), g, w, GRAD_CAM.0, GRAD_CAM.1);
                maps_with_evidence += (max(w) == 1.0) as usize;
            }
            (None, None) => {}
            _ => panic!("{what}: one backend has a Grad-CAM map, the other not"),
        }
    }
    maps_with_evidence
}

/// A class per image, cycling through the classes.
fn classes(n: usize, class_count: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i + 1) % class_count).collect()
}

#[test]
fn gpu_and_cpu_explanations_agree() {
    let mut maps_with_evidence = 0;
    // (model batch, images): one image; a full batch; a full batch and a padded one.
    for (batch, n) in [(1, 1), (3, 3), (3, 4)] {
        for outputs in [1, 3] {
            let architecture = architecture(outputs);
            let (mut on_gpu, mut on_cpu) = models(&architecture, batch, 3 + outputs as u64);
            let images = images(10 + n as u64, n);
            let classes = classes(n, architecture.classes() as u32);
            let got = on_gpu.explain(&images, &classes).unwrap();
            let want = on_cpu.explain(&images, &classes).unwrap();
            let what = format!("batch {batch}, {n} images, {outputs} outputs");
            maps_with_evidence += assert_explanations_close(&what, &got, &want);
            // The scores are the logits `predict` turns into probabilities.
            let probabilities = on_cpu.predict(&images).unwrap();
            for (i, e) in want.iter().enumerate() {
                let p = &probabilities[i * outputs..(i + 1) * outputs];
                let p = if outputs == 1 { vec![1.0 - p[0], p[0]] } else { p.to_vec() };
                assert_close("explained probabilities", &e.probabilities, &p, 1e-6, 1e-5);
            }
        }
    }
    assert!(maps_with_evidence >= 10, "only {maps_with_evidence} of 16 Grad-CAM maps are not all zeros");
}

#[test]
fn a_model_without_convolutions_has_saliency_but_no_grad_cam() {
    let input = InputShape::new(2, 5, 4);
    let architecture = Architecture::parse("f-d8-d3", input).unwrap();
    let w = weights(&architecture, 1);
    let mut on_gpu = GpuModel::new(gpu(), &architecture, 2, &w, &options()).unwrap();
    let mut on_cpu = ReferenceModel::new(&architecture, 2, &w, &options()).unwrap();
    let images = random(5, 2 * input.elements(), 0.0, 1.0);
    let got = on_gpu.explain(&images, &[2, 0]).unwrap();
    let want = on_cpu.explain(&images, &[2, 0]).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(g.grad_cam.is_none() && w.grad_cam.is_none());
        assert_eq!(w.saliency.len(), 5 * 4);
        assert_close("saliency", &g.saliency, &w.saliency, SALIENCY.0 * max(&w.saliency), SALIENCY.1);
    }
}

#[test]
fn saliency_matches_finite_differences_of_the_score() {
    // The inference network is piecewise linear in its input (ReLU, max-pool, affine batch norm),
    // so a central difference is exact up to f32 rounding of the score unless a step crosses a
    // kink. Step 2e-3: rounding of scores of size ~1 (~1e-7) contributes ~5e-5 to the quotient,
    // and no step of these cases crosses a kink (one of 1e-2 did, for a difference 10% off).
    const STEP: f32 = 2e-3;
    let pixels = [(0, 0), (6, 7), (12, 14), (3, 11), (9, 2)];
    let plane = INPUT.height * INPUT.width;
    for (outputs, class) in [(1, 0), (1, 1), (3, 0), (3, 2)] {
        let architecture = architecture(outputs);
        let (_, mut model) = models(&architecture, 1, 20 + outputs as u64);
        let image = images(30, 1);
        let explained = model.explain(&image, &[class]).unwrap().remove(0);
        let mut score = |image: &[f32]| model.explain(image, &[class]).unwrap()[0].score;
        for (y, x) in pixels {
            let p = y * INPUT.width + x;
            let mut numeric = 0f32;
            for c in 0..INPUT.channels {
                let mut probe = image.clone();
                probe[c * plane + p] += STEP;
                let up = score(&probe);
                probe[c * plane + p] -= 2.0 * STEP;
                let down = score(&probe);
                numeric = numeric.max(((up - down) / (2.0 * STEP)).abs());
            }
            let analytic = explained.saliency[p];
            assert!(
                (numeric - analytic).abs() <= 2e-4 + 1e-2 * numeric,
                "{outputs} outputs, class {class}, pixel ({y}, {x}): saliency {analytic}, finite differences {numeric}"
            );
        }
    }
}

#[test]
fn the_class_asked_for_changes_the_explanation() {
    let image = images(40, 1);
    // Softmax: each class its own logit and its own maps.
    let (mut model, _) = models(&architecture(3), 1, 41);
    let e: Vec<Explanation> = (0..3).map(|class| model.explain(&image, &[class]).unwrap().remove(0)).collect();
    for (a, b) in [(0, 1), (1, 2), (0, 2)] {
        assert_ne!(e[a].score, e[b].score);
        assert_ne!(e[a].saliency, e[b].saliency, "saliency of classes {a} and {b}");
        assert_ne!(e[a].grad_cam, e[b].grad_cam, "Grad-CAM of classes {a} and {b}");
        assert_eq!(e[a].probabilities, e[b].probabilities);
    }
    // Sigmoid: class 0's score is minus class 1's, so the saliency (an absolute value) is the
    // same, but Grad-CAM shows the opposite evidence.
    let (mut model, _) = models(&architecture(1), 1, 42);
    let (zero, one) = (model.explain(&image, &[0]).unwrap().remove(0), model.explain(&image, &[1]).unwrap().remove(0));
    assert_eq!(zero.score, -one.score);
    assert_eq!(zero.saliency, one.saliency);
    assert_ne!(zero.grad_cam, one.grad_cam);
    assert!((zero.probabilities[0] + zero.probabilities[1] - 1.0).abs() < 1e-6);
}

/// Weights after two training steps, with or without explaining two images between them.
fn train_twice<M: Trainable + Explain>(model: &mut M, explain_between: bool) -> Vec<NamedTensor> {
    let n = model.batch_size();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    model.train_step(&images(50, n), &labels, 1e-2).unwrap();
    if explain_between {
        model.explain(&images(51, 2), &[0, 2]).unwrap();
    }
    model.train_step(&images(52, n), &labels, 1e-2).unwrap();
    model.weights().unwrap()
}

#[test]
fn explaining_between_training_steps_changes_nothing() {
    // Dropout, batch norm (whose running statistics training updates) and both heads' layers.
    let architecture = architecture(3);
    let (mut plain_gpu, mut plain_cpu) = models(&architecture, 3, 60);
    let (mut explained_gpu, mut explained_cpu) = models(&architecture, 3, 60);
    for (backend, plain, explained) in [
        ("GPU", train_twice(&mut plain_gpu, false), train_twice(&mut explained_gpu, true)),
        ("CPU", train_twice(&mut plain_cpu, false), train_twice(&mut explained_cpu, true)),
    ] {
        for (a, b) in plain.iter().zip(&explained) {
            assert_bits_equal(&format!("{backend} {}", a.name), &a.data, &b.data);
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    for outputs in [1, 3] {
        let architecture = architecture(outputs);
        let (mut on_gpu, mut on_cpu) = models(&architecture, 2, 70);
        let class_count = architecture.classes() as u32;
        let models: [&mut dyn Explain; 2] = [&mut on_gpu, &mut on_cpu];
        for model in models {
            let message = model.explain(&images(71, 2)[1..], &[0, 1]).unwrap_err().to_string();
            assert!(message.contains("explain images") && message.contains("2 images of 3x13x15"), "{message}");
            let message = model.explain(&images(71, 2), &[0]).unwrap_err().to_string();
            assert!(message.contains("1 images of 3x13x15"), "{message}");
            let message = model.explain(&images(72, 2), &[0, class_count]).unwrap_err().to_string();
            assert!(message.contains(&format!("class {class_count} of image 1 is out of range")), "{message}");
            assert!(model.explain(&[], &[]).unwrap().is_empty());
        }
    }
}

//! Cross-entropy losses and probabilities: GPU against the CPU reference, gradients against finite
//! differences, extreme logits, the correct count, bad labels and bad shapes.

use crate::common::*;
use wgcnn::gpu::{Gpu, GpuTensor, ops::loss};
use wgcnn::reference::loss as cpu_loss;
use wgcnn::shape::LossShape;

/// Class indices below `count` from `seed`.
fn random_labels(seed: u64, batch: usize, count: usize) -> Vec<u32> {
    random(seed, batch, 0.0, count as f32).iter().map(|&v| (v as u32).min(count as u32 - 1)).collect()
}

/// Runs the GPU loss; returns (dlogits, stats).
fn gpu_cross_entropy(
    gpu: &Gpu,
    shape: LossShape,
    logits: &[f32],
    labels: &[u32],
    weights: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let dims = [shape.batch, shape.classes];
    let logits = upload(gpu, "logits", &dims, logits);
    let labels = GpuTensor::from_slice(gpu, "labels", &[shape.batch], labels).unwrap();
    let weights = upload(gpu, "class weights", &[weights.len()], weights);
    let dlogits = zeros(gpu, "dlogits", &dims);
    let stats = zeros(gpu, "stats", &[loss::STATS_LEN]);
    let dispatch = loss::cross_entropy(gpu, &logits, &labels, &weights, &dlogits, &stats).unwrap();
    gpu.run(&[&dispatch]).unwrap();
    (download(gpu, &dlogits), download(gpu, &stats))
}

fn gpu_probabilities(gpu: &Gpu, shape: LossShape, logits: &[f32]) -> Vec<f32> {
    let dims = [shape.batch, shape.classes];
    let logits = upload(gpu, "logits", &dims, logits);
    let probs = zeros(gpu, "probs", &dims);
    gpu.run(&[&loss::probabilities(gpu, &logits, &probs).unwrap()]).unwrap();
    download(gpu, &probs)
}

/// GPU loss against the CPU reference (f32). dlogits: atol 1e-6, rtol 1e-4, for the GPU's exp,
/// log and division (a few ulp, not correctly rounded in Vulkan) on values of at most w / batch.
/// Loss: rtol 1e-5, for a sum of up to 65 terms added in another order (tree vs loop). The correct
/// count, batch and ignored rows are exact.
#[track_caller]
fn assert_gpu_matches_cpu(what: &str, shape: LossShape, logits: &[f32], labels: &[u32], weights: &[f32]) {
    let (dlogits, stats) = gpu_cross_entropy(&gpu(), shape, logits, labels, weights);
    let want = cpu_loss::cross_entropy(shape, logits, labels, weights).unwrap();
    assert_close(&format!("{what} dlogits"), &dlogits, &want.dlogits, 1e-6, 1e-4);
    let want_stats = want.stats();
    assert_close(&format!("{what} loss"), &stats[..1], &want_stats[..1], 1e-6, 1e-5);
    assert_eq!(stats[1..], want_stats[1..], "{what}: [correct, batch, ignored]");
}

#[test]
fn cross_entropy_matches_cpu() {
    for &batch in &[1usize, 3, 64, 65] {
        for &classes in &[1usize, 2, 3, 5] {
            let shape = LossShape { batch, classes };
            let seed = (batch * 10 + classes) as u64;
            let logits = random(seed, batch * classes, -4.0, 4.0);
            let labels = random_labels(seed + 1, batch, shape.label_count());
            let weights = random(seed + 2, shape.label_count(), 0.5, 2.0);
            assert_gpu_matches_cpu(&format!("{shape:?}"), shape, &logits, &labels, &weights);
        }
    }
}

#[test]
fn probabilities_match_cpu() {
    let gpu = gpu();
    for &batch in &[1usize, 3, 64, 65] {
        for &classes in &[1usize, 2, 3, 5] {
            let shape = LossShape { batch, classes };
            let logits = random((batch * 10 + classes) as u64, batch * classes, -8.0, 8.0);
            // Probabilities lie in [0, 1]: exp and division of the GPU are a few ulp off.
            assert_close(
                &format!("probabilities {shape:?}"),
                &gpu_probabilities(&gpu, shape, &logits),
                &cpu_loss::probabilities(shape, &logits).unwrap(),
                1e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn cross_entropy_gradients_match_finite_differences() {
    for &classes in &[1usize, 2, 5] {
        let shape = LossShape { batch: 4, classes };
        let logits = random_f64(classes as u64, 4 * classes, -3.0, 3.0);
        let labels = random_labels(classes as u64 + 1, 4, shape.label_count());
        let weights = [0.3, 1.7, 0.9, 2.5, 1.2];
        let weights = &weights[..shape.label_count()];
        let out = cpu_loss::cross_entropy(shape, &logits, &labels, weights).unwrap();
        check_gradient(
            &format!("cross-entropy dlogits, {classes} classes"),
            &logits,
            &out.dlogits,
            |z| cpu_loss::cross_entropy(shape, z, &labels, weights).unwrap().loss,
            1e-6,
            1e-7,
        );
    }
}

#[test]
fn extreme_logits_give_finite_loss_and_gradients() {
    let gpu = gpu();
    for &big in &[100.0f32, 1e4] {
        for &classes in &[1usize, 2, 3] {
            let shape = LossShape { batch: 4, classes };
            // Logits of random sign at +-big: confidently right and confidently wrong examples.
            let logits: Vec<f32> =
                random(classes as u64, 4 * classes, -1.0, 1.0).iter().map(|r| big * r.signum()).collect();
            let labels = [0, 1, 0, 1];
            let weights = vec![1.0; shape.label_count()];
            let (dlogits, stats) = gpu_cross_entropy(&gpu, shape, &logits, &labels, &weights);
            let cpu = cpu_loss::cross_entropy(shape, &logits, &labels, &weights).unwrap();
            let probs = gpu_probabilities(&gpu, shape, &logits);
            let all_finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
            assert!(
                all_finite(&dlogits) && all_finite(&stats) && all_finite(&probs),
                "{shape:?} +-{big}: GPU gave {dlogits:?} {stats:?} {probs:?}"
            );
            assert!(all_finite(&cpu.dlogits) && cpu.loss.is_finite(), "{shape:?} +-{big}: CPU gave {cpu:?}");
            assert_gpu_matches_cpu(&format!("{shape:?} +-{big}"), shape, &logits, &labels, &weights);
        }
    }
    // A confidently wrong example costs about |z|, not infinity; a confidently right one about 0.
    let binary = LossShape { batch: 1, classes: 1 };
    for (z, label, want) in [(100.0, 0, 100.0), (-100.0, 1, 100.0), (1e4, 0, 1e4), (100.0, 1, 0.0)] {
        let (_, stats) = gpu_cross_entropy(&gpu, binary, &[z], &[label], &[1.0, 1.0]);
        let cpu = cpu_loss::cross_entropy(binary, &[z], &[label], &[1.0, 1.0]).unwrap();
        assert_close(&format!("BCE z={z} t={label}"), &[stats[0], cpu.loss], &[want, want], 1e-6, 1e-6);
    }
    let softmax = LossShape { batch: 1, classes: 3 };
    let (_, stats) = gpu_cross_entropy(&gpu, softmax, &[1e4, -1e4, 0.0], &[1], &[1.0; 3]);
    assert_close("CCE z=[1e4, -1e4, 0] label 1", &stats[..1], &[2e4], 0.0, 1e-6);
}

#[test]
fn small_binary_loss_keeps_its_precision() {
    // exp(-|z|) << 1 must not be lost in 1 + exp(-|z|): log1p(exp(-20)) is 2.06e-9, not 0.
    let gpu = gpu();
    let binary = LossShape { batch: 1, classes: 1 };
    for z in [20.0f32, 9.0, 3.0, 0.5, 0.0] {
        let (_, stats) = gpu_cross_entropy(&gpu, binary, &[z], &[1], &[1.0, 1.0]);
        let want = (-z as f64).exp().ln_1p() as f32;
        assert_close(&format!("BCE z={z} t=1"), &stats[..1], &[want], 0.0, 1e-6);
    }
}

#[test]
fn correct_count_is_exact_with_ties_and_zero_logits() {
    // Binary: z = 0 predicts class 0. Softmax: the first of tied maxima is the prediction.
    let binary = LossShape { batch: 5, classes: 1 };
    let logits = [0.0, 0.0, 2.0, -2.0, 1e-30];
    let labels = [0, 1, 1, 1, 1];
    assert_gpu_matches_cpu("binary ties", binary, &logits, &labels, &[1.0, 1.0]);
    let (_, stats) = gpu_cross_entropy(&gpu(), binary, &logits, &labels, &[1.0, 1.0]);
    assert_eq!(stats[1], 3.0, "binary correct count");

    let softmax = LossShape { batch: 4, classes: 3 };
    let logits = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0, -1.0, -1.0, -1.0];
    let labels = [0, 1, 1, 0];
    assert_gpu_matches_cpu("softmax ties", softmax, &logits, &labels, &[1.0; 3]);
    let (_, stats) = gpu_cross_entropy(&gpu(), softmax, &logits, &labels, &[1.0; 3]);
    assert_eq!(stats[1], 3.0, "softmax correct count");
}

#[test]
fn cross_entropy_is_deterministic() {
    let shape = LossShape { batch: 65, classes: 5 };
    let logits = random(7, 65 * 5, -4.0, 4.0);
    let labels = random_labels(8, 65, 5);
    let weights = random(9, 5, 0.5, 2.0);
    let (d1, s1) = gpu_cross_entropy(&gpu(), shape, &logits, &labels, &weights);
    let (d2, s2) = gpu_cross_entropy(&gpu(), shape, &logits, &labels, &weights);
    assert_bits_equal("dlogits", &d1, &d2);
    assert_bits_equal("stats", &s1, &s2);
}

#[test]
fn out_of_range_labels_are_ignored_on_gpu_and_rejected_on_cpu() {
    let gpu = gpu();
    for (classes, bad_label) in [(1usize, 2u32), (3, 3), (3, u32::MAX)] {
        let shape = LossShape { batch: 3, classes };
        let logits = random(classes as u64, 3 * classes, -2.0, 2.0);
        let labels = [1, bad_label, 0];
        let weights = vec![1.0; shape.label_count()];
        assert!(cpu_loss::cross_entropy(shape, &logits, &labels, &weights).is_err());

        let (dlogits, stats) = gpu_cross_entropy(&gpu, shape, &logits, &labels, &weights);
        // Rows 0 and 2 as a batch of 2: the ignored row is out of the mean too (how a short last
        // batch's padding rows drop out).
        let valid = LossShape { batch: 2, classes };
        let valid_logits = [&logits[..classes], &logits[2 * classes..]].concat();
        let want = cpu_loss::cross_entropy(valid, &valid_logits, &[1, 0], &weights).unwrap();
        let mut want_dlogits = want.dlogits.clone();
        want_dlogits.splice(classes..classes, vec![0.0; classes]);
        let what = format!("{classes} classes, label {bad_label}");
        assert_close(&what, &dlogits, &want_dlogits, 1e-6, 1e-4);
        assert_close(&what, &stats[..1], &[want.loss], 1e-6, 1e-5);
        assert_eq!(stats[1..], [want.correct as f32, 2.0, 1.0], "{what} stats");
    }
}

#[test]
fn bad_shapes_are_errors() {
    let gpu = gpu();
    let t = |shape: &[usize]| zeros(&gpu, "t", shape);
    let labels = |n: usize| GpuTensor::from_slice(&gpu, "labels", &[n], &vec![0u32; n]).unwrap();
    let (logits, dlogits, stats) = (t(&[3, 5]), t(&[3, 5]), t(&[4]));
    assert!(loss::cross_entropy(&gpu, &logits, &labels(3), &t(&[5]), &dlogits, &stats).is_ok());
    let bad = [
        loss::cross_entropy(&gpu, &t(&[15]), &labels(3), &t(&[5]), &t(&[15]), &stats),
        loss::cross_entropy(&gpu, &logits, &labels(4), &t(&[5]), &dlogits, &stats),
        loss::cross_entropy(&gpu, &logits, &labels(3), &t(&[3]), &dlogits, &stats),
        loss::cross_entropy(&gpu, &logits, &labels(3), &t(&[5]), &t(&[5, 3]), &stats),
        loss::cross_entropy(&gpu, &logits, &labels(3), &t(&[5]), &dlogits, &t(&[3])),
        // Binary needs two class weights, for targets 0 and 1.
        loss::cross_entropy(&gpu, &t(&[3, 1]), &labels(3), &t(&[1]), &t(&[3, 1]), &stats),
        loss::cross_entropy(&gpu, &t(&[0, 5]), &labels(0), &t(&[5]), &t(&[0, 5]), &stats),
    ];
    for (i, result) in bad.iter().enumerate() {
        assert!(result.is_err(), "case {i} should be an error");
    }
    assert!(loss::probabilities(&gpu, &logits, &t(&[5, 3])).is_err());

    let shape = LossShape { batch: 3, classes: 5 };
    assert!(cpu_loss::cross_entropy(shape, &[0.0f32; 14], &[0; 3], &[1.0; 5]).is_err());
    assert!(cpu_loss::cross_entropy(shape, &[0.0f32; 15], &[0; 2], &[1.0; 5]).is_err());
    assert!(cpu_loss::cross_entropy(shape, &[0.0f32; 15], &[0; 3], &[1.0; 4]).is_err());
    assert!(cpu_loss::probabilities(shape, &[0.0f32; 16]).is_err());
}

//! The training loop against a mock model that counts its updates in its one weight, records every
//! batch it sees, and reports scripted losses per epoch.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use wgcnn::model::{NamedTensor, OptimizerState, PADDING_LABEL, StepProfile, StepStats, Trainable};
use wgcnn::train::fit::{
    EarlyStopping, FitConfig, FitControl, FitOutcome, Monitor, ReduceLrOnPlateau, Snapshot, StopReason, fit, fit_from,
};
use wgcnn::train::{BatchSource, InMemoryDataset};
use wgcnn::{Error, Result};

const SAMPLE_LEN: usize = 3;

/// Sample `i`: image `[i + 1, 0.5, 0.25]` (never all zeros, unlike a padding row), label `i % 3`.
fn dataset(samples: usize) -> InMemoryDataset {
    let images = (0..samples).flat_map(|i| [i as f32 + 1.0, 0.5, 0.25]).collect();
    let labels = (0..samples).map(|i| (i % 3) as u32).collect();
    InMemoryDataset::new(images, labels, SAMPLE_LEN).unwrap()
}

/// A model whose weight `updates` counts its training steps. It predicts class 0 for everything,
/// so its accuracy is the share of label-0 samples; its losses per sample are scripted by epoch
/// (0.5 past the end of a script).
struct MockModel {
    batch: usize,
    steps_per_epoch: usize,
    weights: NamedTensor,
    train_losses: Vec<f64>,
    val_losses: Vec<f64>,
    /// The 1-based step, counted over the whole run, whose loss is NaN.
    nan_at_step: Option<usize>,
    /// The sample indices of every training step, in order.
    train_batches: Vec<Vec<usize>>,
    /// The learning rate of every training step.
    lrs: Vec<f32>,
    /// Per `evaluate` call, each row's sample index, None for a padding row.
    evaluated: Vec<Vec<Option<usize>>>,
}

impl MockModel {
    fn new(batch: usize, train_samples: usize) -> Self {
        Self {
            batch,
            steps_per_epoch: train_samples.div_ceil(batch),
            weights: NamedTensor { name: "updates".into(), shape: vec![1], data: vec![0.0] },
            train_losses: Vec::new(),
            val_losses: Vec::new(),
            nan_at_step: None,
            train_batches: Vec::new(),
            lrs: Vec::new(),
            evaluated: Vec::new(),
        }
    }

    fn updates(&self) -> f32 {
        self.weights.data[0]
    }

    /// The training batches of `epoch` (1-based).
    fn epoch_batches(&self, epoch: usize) -> &[Vec<usize>] {
        &self.train_batches[(epoch - 1) * self.steps_per_epoch..epoch * self.steps_per_epoch]
    }

    fn epoch_samples(&self, epoch: usize) -> Vec<usize> {
        self.epoch_batches(epoch).concat()
    }
}

fn scripted(losses: &[f64], epoch_index: usize) -> f64 {
    losses.get(epoch_index).copied().unwrap_or(0.5)
}

fn sample_index(image: &[f32]) -> usize {
    image[0] as usize - 1
}

impl Trainable for MockModel {
    fn batch_size(&self) -> usize {
        self.batch
    }

    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        // A short last batch: its real rows, then padding rows of zeros.
        let real = labels.iter().position(|&l| l == PADDING_LABEL).unwrap_or(labels.len());
        assert!(real > 0 && labels[real..].iter().all(|&l| l == PADDING_LABEL), "padding only at the end: {labels:?}");
        assert!(images[real * SAMPLE_LEN..].iter().all(|&v| v == 0.0), "padding rows are zeros");
        let epoch_index = self.train_batches.len() / self.steps_per_epoch;
        self.train_batches.push(images[..real * SAMPLE_LEN].chunks(SAMPLE_LEN).map(sample_index).collect());
        self.lrs.push(lr);
        self.weights.data[0] += 1.0;
        let loss = if self.nan_at_step == Some(self.train_batches.len()) {
            f64::NAN
        } else {
            scripted(&self.train_losses, epoch_index)
        };
        let count = real as u64;
        let correct = labels.iter().filter(|&&label| label == 0).count() as u64;
        Ok(StepStats { loss_sum: loss * count as f64, correct, count })
    }

    fn profile_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepProfile> {
        self.train_step(images, labels, lr).map(|_| StepProfile::default())
    }
    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        let rows: Vec<Option<usize>> = images
            .chunks(SAMPLE_LEN)
            .zip(labels)
            .map(|(image, &label)| {
                if label == PADDING_LABEL {
                    assert!(image.iter().all(|&v| v == 0.0), "a padding row holds {image:?}");
                    None
                } else {
                    Some(sample_index(image))
                }
            })
            .collect();
        let count = rows.iter().flatten().count() as u64;
        let correct = labels.iter().filter(|&&label| label == 0).count() as u64;
        self.evaluated.push(rows);
        let epoch_index = self.train_batches.len() / self.steps_per_epoch - 1;
        Ok(StepStats { loss_sum: scripted(&self.val_losses, epoch_index) * count as f64, correct, count })
    }

    fn predict(&mut self, _images: &[f32]) -> Result<Vec<f32>> {
        Err(Error::Invalid("the mock model does not predict".into()))
    }

    fn weights(&self) -> Result<Vec<NamedTensor>> {
        Ok(vec![self.weights.clone()])
    }
    /// No moments; the steps taken.
    fn optimizer_state(&self) -> Result<OptimizerState> {
        let lr = self.lrs.last().copied().unwrap_or(0.0);
        Ok(OptimizerState { step: self.train_batches.len() as u64, lr, m: Vec::new(), v: Vec::new() })
    }
    fn set_optimizer_state(&mut self, _state: &OptimizerState) -> Result<()> {
        Ok(())
    }

    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        assert_eq!(weights.len(), 1);
        assert_eq!(weights[0].name, self.weights.name);
        self.weights = weights[0].clone();
        Ok(())
    }
}

fn silent(epochs: usize) -> FitConfig {
    FitConfig { epochs, ..FitConfig::default() }
}

fn train(
    model: &mut MockModel,
    data: &InMemoryDataset,
    validation: Option<&InMemoryDataset>,
    config: &FitConfig,
) -> FitOutcome {
    fit(model, data, validation.map(|v| v as &dyn BatchSource), config).unwrap()
}

fn label_zero_share(data: &InMemoryDataset, samples: &[usize]) -> f64 {
    samples.iter().filter(|&&i| data.labels[i] == 0).count() as f64 / samples.len() as f64
}

#[test]
fn shuffled_epochs_repeat_per_seed_differ_per_epoch_and_see_every_sample() {
    let data = dataset(22);
    let config = FitConfig { seed: 42, ..silent(3) };
    let mut first = MockModel::new(4, 22);
    let outcome = train(&mut first, &data, None, &config);
    let mut again = MockModel::new(4, 22);
    train(&mut again, &data, None, &config);
    let mut other_seed = MockModel::new(4, 22);
    train(&mut other_seed, &data, None, &FitConfig { seed: 43, ..config.clone() });

    assert_eq!(outcome.stop, StopReason::Completed);
    assert_eq!(first.train_batches.len(), 3 * 6, "5 full batches of 4 and one of 2 per epoch");
    assert!(first.train_batches.chunks(6).all(|epoch| epoch[5].len() == 2), "the short batch comes last");
    assert_eq!(first.train_batches, again.train_batches, "the same seed gives the same order");
    assert_ne!(first.train_batches, other_seed.train_batches, "another seed gives another order");
    assert_eq!(first.updates(), 18.0);
    for epoch in 1..=3 {
        let samples = first.epoch_samples(epoch);
        let distinct: BTreeSet<usize> = samples.iter().copied().collect();
        assert_eq!((samples.len(), distinct.len()), (22, 22), "epoch {epoch}: every sample once");
        assert!(distinct.iter().all(|&i| i < 22));
        let record = &outcome.history.epochs[epoch - 1];
        assert_eq!(record.epoch, epoch);
        assert_eq!(record.loss, 0.5);
        assert_eq!(record.accuracy, label_zero_share(&data, &samples), "epoch {epoch}: accuracy over the samples seen");
        assert_eq!((record.val_loss, record.val_accuracy), (None, None));
        assert_eq!(record.lr, 1e-3);
    }
    assert_ne!(first.epoch_samples(1), first.epoch_samples(2));
    assert_ne!(first.epoch_samples(2), first.epoch_samples(3));
    assert!(first.lrs.iter().all(|&lr| lr == 1e-3f32));
}

#[test]
fn unshuffled_epochs_go_in_order() {
    let data = dataset(10);
    let mut model = MockModel::new(3, 10);
    train(&mut model, &data, None, &FitConfig { shuffle: false, ..silent(2) });
    for epoch in 1..=2 {
        assert_eq!(model.epoch_batches(epoch), [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);
    }
}

#[test]
fn validation_counts_every_sample_once_and_pads_the_last_batch_with_zeros() {
    let data = dataset(8);
    let validation = dataset(10);
    let mut model = MockModel::new(4, 8);
    model.val_losses = vec![0.75, 0.625];
    let outcome = train(&mut model, &data, Some(&validation), &silent(2));

    assert_eq!(model.evaluated.len(), 2 * 3, "10 samples in batches of 4: 3 calls per epoch");
    for (epoch, calls) in model.evaluated.chunks(3).enumerate() {
        let rows: Vec<Option<usize>> = calls.concat();
        let samples: Vec<usize> = rows.iter().flatten().copied().collect();
        assert_eq!(samples, (0..10).collect::<Vec<_>>(), "epoch {}: every sample once, in order", epoch + 1);
        assert_eq!(rows.iter().filter(|row| row.is_none()).count(), 2, "two padding rows");
        assert!(calls[2][2..].iter().all(Option::is_none), "the padding is at the end of the last batch");
    }
    let val_accuracy = label_zero_share(&validation, &(0..10).collect::<Vec<_>>());
    let got: Vec<(Option<f64>, Option<f64>)> =
        outcome.history.epochs.iter().map(|r| (r.val_loss, r.val_accuracy)).collect();
    assert_eq!(got, [(Some(0.75), Some(val_accuracy)), (Some(0.625), Some(val_accuracy))]);
}

fn early_stopping(patience: usize, restore_best_weights: bool) -> EarlyStopping {
    EarlyStopping { monitor: Monitor::ValLoss, patience, min_delta: 0.0, restore_best_weights }
}

#[test]
fn early_stopping_stops_after_patience_and_restores_the_best_weights() {
    let data = dataset(12);
    let validation = dataset(5);
    for restore in [true, false] {
        let mut model = MockModel::new(4, 12);
        model.val_losses = vec![1.0, 0.75, 0.875, 0.9375, 0.5, 0.25];
        let config = FitConfig { early_stopping: Some(early_stopping(2, restore)), ..silent(10) };
        let outcome = train(&mut model, &data, Some(&validation), &config);

        assert_eq!(outcome.stop, StopReason::EarlyStopped { best_epoch: 2 });
        assert_eq!(outcome.best_epoch, Some(2));
        assert_eq!(outcome.history.epochs.len(), 4, "two epochs without improvement after the best, then stop");
        assert_eq!(model.train_batches.len(), 4 * 3);
        let kept_epoch = if restore { 2.0 } else { 4.0 };
        assert_eq!(model.updates(), kept_epoch * 3.0, "restore_best_weights = {restore}");
    }
}

#[test]
fn restore_best_weights_also_applies_when_every_epoch_runs() {
    let data = dataset(12);
    let validation = dataset(5);
    let mut model = MockModel::new(4, 12);
    model.val_losses = vec![1.0, 0.75, 0.875, 0.9375];
    let config = FitConfig { early_stopping: Some(early_stopping(5, true)), ..silent(4) };
    let outcome = train(&mut model, &data, Some(&validation), &config);

    assert_eq!(outcome.stop, StopReason::Completed);
    assert_eq!(outcome.best_epoch, Some(2));
    assert_eq!(model.updates(), 2.0 * 3.0, "the weights at the end of epoch 2");
}

#[test]
fn without_validation_the_val_loss_monitor_watches_the_training_loss() {
    let data = dataset(8);
    let mut model = MockModel::new(4, 8);
    model.train_losses = vec![1.0, 0.5, 0.75, 0.25];
    let config = FitConfig { early_stopping: Some(early_stopping(1, true)), ..silent(10) };
    let outcome = train(&mut model, &data, None, &config);

    assert_eq!(outcome.stop, StopReason::EarlyStopped { best_epoch: 2 });
    let losses: Vec<f64> = outcome.history.epochs.iter().map(|r| r.loss).collect();
    assert_eq!(losses, [1.0, 0.5, 0.75]);
    assert_eq!(model.updates(), 2.0 * 2.0);
}

#[test]
fn accuracy_monitors_improve_upwards() {
    // Unshuffled, the mock's accuracy is the same every epoch: no epoch after the first improves on it.
    let data = dataset(9);
    let mut model = MockModel::new(3, 9);
    let stopping = EarlyStopping { monitor: Monitor::Accuracy, ..early_stopping(2, false) };
    let config = FitConfig { shuffle: false, early_stopping: Some(stopping), ..silent(10) };
    let outcome = train(&mut model, &data, None, &config);
    assert_eq!(outcome.stop, StopReason::EarlyStopped { best_epoch: 1 });
    assert_eq!(outcome.history.epochs.len(), 3);
}

#[test]
fn reduce_lr_on_plateau_lowers_the_rate_after_patience_down_to_min_lr() {
    let data = dataset(8);
    let validation = dataset(4);
    let mut model = MockModel::new(4, 8);
    // 0.9921875 is within min_delta of 1.0, so it is no improvement; 0.96875 is one.
    model.val_losses = vec![1.0, 0.9921875, 0.9921875, 0.96875, 0.96875, 0.96875, 0.96875, 0.96875, 0.96875, 0.96875];
    let reduce_lr =
        ReduceLrOnPlateau { monitor: Monitor::ValLoss, factor: 0.5, patience: 2, min_delta: 0.01, min_lr: 2e-4 };
    let config = FitConfig { lr: 1e-3, reduce_lr: Some(reduce_lr), ..silent(10) };
    let outcome = train(&mut model, &data, Some(&validation), &config);

    let lrs: Vec<f64> = outcome.history.epochs.iter().map(|r| r.lr).collect();
    assert_eq!(lrs, [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 2e-4, 2e-4]);
    for (epoch, &lr) in lrs.iter().enumerate() {
        let steps = &model.lrs[epoch * 2..epoch * 2 + 2];
        assert!(steps.iter().all(|&step_lr| step_lr == lr as f32), "epoch {}: steps ran at {steps:?}", epoch + 1);
    }
}

#[test]
fn a_nan_loss_stops_at_once_and_keeps_the_previous_epochs_weights() {
    let data = dataset(20);
    let mut model = MockModel::new(4, 20);
    model.nan_at_step = Some(2 * 5 + 3);
    let outcome = train(&mut model, &data, None, &silent(10));

    assert_eq!(outcome.stop, StopReason::NonFinite { epoch: 3, step: 3 });
    assert_eq!(
        outcome.stop.to_string(),
        "training stopped: the loss became NaN or infinite at epoch 3, step 3; the weights of epoch 2 were kept"
    );
    assert_eq!(outcome.history.epochs.len(), 2, "only completed epochs are recorded");
    assert_eq!(model.train_batches.len(), 13, "no step after the NaN");
    assert_eq!(model.updates(), 2.0 * 5.0);
}

#[test]
fn a_nan_loss_in_the_first_epoch_keeps_the_initial_weights() {
    let data = dataset(8);
    let mut model = MockModel::new(4, 8);
    model.nan_at_step = Some(2);
    let outcome = train(&mut model, &data, None, &silent(3));

    assert_eq!(outcome.stop, StopReason::NonFinite { epoch: 1, step: 2 });
    assert!(outcome.stop.to_string().ends_with("the initial weights were kept"), "{}", outcome.stop);
    assert!(outcome.history.epochs.is_empty());
    assert_eq!(model.updates(), 0.0);
}

fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgcnn-fit-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn optional_cell(cell: &str) -> Option<f64> {
    (!cell.is_empty()).then(|| cell.parse().unwrap())
}

#[test]
fn the_metrics_csv_has_a_header_and_one_row_per_epoch() {
    let dir = scratch_dir("csv");
    let data = dataset(8);
    let validation = dataset(6);
    for with_validation in [true, false] {
        let path = dir.join("metrics.csv");
        let mut model = MockModel::new(4, 8);
        model.train_losses = vec![0.75, 0.625, 0.5];
        model.val_losses = vec![0.875, 0.8125, 0.75];
        let config = FitConfig { metrics_csv: Some(path.clone()), ..silent(3) };
        let outcome = train(&mut model, &data, with_validation.then_some(&validation), &config);

        let csv = std::fs::read_to_string(&path).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 3);
        for (row, record) in rows.iter().zip(&outcome.history.epochs) {
            let cells: Vec<&str> = row.split(',').collect();
            assert_eq!(cells.len(), 7, "{row}");
            assert_eq!(cells[0].parse::<usize>().unwrap(), record.epoch);
            assert_eq!(cells[1].parse::<f64>().unwrap(), record.loss);
            assert_eq!(cells[2].parse::<f64>().unwrap(), record.accuracy);
            assert_eq!(optional_cell(cells[3]), record.val_loss);
            assert_eq!(optional_cell(cells[4]), record.val_accuracy);
            assert_eq!(cells[5].parse::<f64>().unwrap(), record.lr);
            assert_eq!(cells[6].parse::<f64>().unwrap(), record.seconds);
        }
        assert_eq!(outcome.history.epochs[2].loss, 0.5);
        assert_eq!(outcome.history.epochs[2].val_loss, with_validation.then_some(0.75));
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, ["metrics.csv"], "no temporary file is left behind");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_training_set_smaller_than_one_batch_trains_as_one_short_batch_and_an_empty_one_is_an_error() {
    let data = dataset(3);
    let mut model = MockModel::new(4, 3);
    train(&mut model, &data, None, &FitConfig { shuffle: false, ..silent(2) });
    assert_eq!(model.train_batches, [vec![0, 1, 2], vec![0, 1, 2]]);
    let mut model = MockModel::new(4, 3);
    let err = fit(&mut model, &dataset(0), None, &silent(1)).unwrap_err().to_string();
    assert!(err.contains("training set is empty"), "{err}");
    assert!(model.train_batches.is_empty());
}

#[test]
fn bad_settings_are_errors() {
    let data = dataset(8);
    let empty = dataset(0);
    let mut model = MockModel::new(4, 8);
    let bad_factor = ReduceLrOnPlateau { factor: 1.5, ..ReduceLrOnPlateau::default() };
    let err = fit(&mut model, &data, None, &FitConfig { reduce_lr: Some(bad_factor), ..silent(1) }).unwrap_err();
    assert!(err.to_string().contains("factor"), "{err}");
    let err = fit(&mut model, &data, None, &FitConfig { lr: f64::NAN, ..silent(1) }).unwrap_err();
    assert!(err.to_string().contains("learning rate"), "{err}");
    let err = fit(&mut model, &data, Some(&empty), &silent(1)).unwrap_err();
    assert!(err.to_string().contains("validation set is empty"), "{err}");
    assert!(model.train_batches.is_empty());
}

/// A source that takes `delay` per batch and records the epoch of every call.
struct SlowSource {
    data: InMemoryDataset,
    delay: std::time::Duration,
    epochs: std::sync::Mutex<Vec<usize>>,
}

impl BatchSource for SlowSource {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn sample_len(&self) -> usize {
        self.data.sample_len()
    }
    fn fill(&self, indices: &[usize], epoch: usize, images: &mut [f32], labels: &mut [u32]) -> Result<()> {
        std::thread::sleep(self.delay);
        self.epochs.lock().unwrap().push(epoch);
        self.data.fill(indices, epoch, images, labels)
    }
}

#[test]
fn the_next_batch_is_prepared_while_the_model_trains_and_sources_see_the_epoch() {
    let ms = std::time::Duration::from_millis;
    let train_source = SlowSource { data: dataset(24), delay: ms(30), epochs: Default::default() };
    let validation = SlowSource { data: dataset(5), delay: ms(0), epochs: Default::default() };
    // Each training step but an epoch's last waits until the source has prepared the next batch:
    // a loop that prepared batches only when it needed them would never get past the first step.
    let prepared = || train_source.epochs.lock().unwrap().len();
    let after_step = |model: &MockModel| {
        let steps = model.train_batches.len();
        let started = std::time::Instant::now();
        while !steps.is_multiple_of(6) && prepared() <= steps {
            assert!(started.elapsed().as_secs() < 10, "batch {} was not prepared during step {steps}", steps + 1);
            std::thread::sleep(ms(1));
        }
    };
    let mut model = HookedModel { model: MockModel::new(4, 24), after_step };
    let outcome = fit(&mut model, &train_source, Some(&validation as &dyn BatchSource), &silent(2)).unwrap();
    assert_eq!(model.model.train_batches.len(), 12, "the same batches as without prefetching");
    assert_eq!(*train_source.epochs.lock().unwrap(), [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    assert_eq!(*validation.epochs.lock().unwrap(), [0, 0, 0, 0], "evaluation is epoch 0");
    let timing = outcome.batches;
    println!("{timing}");
    assert_eq!(timing.batches, 12 + 4);
    assert!(timing.prepare_seconds >= 12.0 * 0.03, "{timing:?}");
    assert!(timing.first_batch_seconds >= 2.0 * 0.03, "each epoch waits for its first batch: {timing:?}");
    // Ten later training batches took 30 ms each to prepare, all during the steps (which wait for
    // them), so the loop only takes them from the prefetch thread: far below the 0.3 s of
    // preparing them on demand.
    assert!(timing.wait_seconds < 0.15, "the model waited for prefetched batches: {timing:?}");
}

/// The mock model, calling `after_step` with itself after every training step (to take time, or
/// to raise an interrupt).
struct HookedModel<F> {
    model: MockModel,
    after_step: F,
}

impl<F: FnMut(&MockModel)> Trainable for HookedModel<F> {
    fn batch_size(&self) -> usize {
        self.model.batch_size()
    }
    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        let stats = self.model.train_step(images, labels, lr);
        (self.after_step)(&self.model);
        stats
    }
    fn profile_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepProfile> {
        self.model.profile_step(images, labels, lr)
    }
    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        self.model.evaluate(images, labels)
    }
    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        self.model.predict(images)
    }
    fn weights(&self) -> Result<Vec<NamedTensor>> {
        self.model.weights()
    }
    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        self.model.set_weights(weights)
    }
    fn optimizer_state(&self) -> Result<OptimizerState> {
        self.model.optimizer_state()
    }
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.model.set_optimizer_state(state)
    }
}

#[test]
fn a_run_interrupted_at_any_step_and_resumed_from_its_snapshot_is_the_uninterrupted_run() {
    let (data, validation) = (dataset(8), dataset(4));
    // Three steps an epoch (the last short); the rate is halved twice and early stopping ends the
    // run after epoch 8, restoring epoch 4's weights.
    let scripted = |model: &mut MockModel| {
        model.val_losses = vec![1.0, 0.9, 0.95, 0.8, 0.85, 0.86, 0.87, 0.88, 0.7, 0.6];
        model.train_losses = vec![2.0, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7];
    };
    let config = FitConfig {
        epochs: 10,
        early_stopping: Some(EarlyStopping { patience: 4, restore_best_weights: true, ..EarlyStopping::default() }),
        reduce_lr: Some(ReduceLrOnPlateau { factor: 0.5, patience: 1, ..ReduceLrOnPlateau::default() }),
        ..silent(10)
    };
    let mut whole = MockModel::new(3, 8);
    scripted(&mut whole);
    let expected = train(&mut whole, &data, Some(&validation), &config);
    assert_eq!(expected.stop, StopReason::EarlyStopped { best_epoch: 4 });
    let total_steps = whole.train_batches.len();
    assert_eq!(total_steps, 8 * 3);

    for at in 1..total_steps {
        let interrupt = AtomicBool::new(false);
        // Raises the interrupt during step `at` (1-based, over the run), until told otherwise.
        let interrupt_at = std::cell::Cell::new(at);
        let after_step = |model: &MockModel| {
            if model.train_batches.len() == interrupt_at.get() {
                interrupt.store(true, Ordering::Relaxed);
            }
        };
        let mut model = HookedModel { model: MockModel::new(3, 8), after_step };
        scripted(&mut model.model);
        let mut snapshot = None;
        let mut keep = |s: &Snapshot| {
            snapshot = Some((s.history.clone(), s.trainer.clone(), s.model.weights()?));
            Ok(())
        };
        let control = FitControl { resume: None, checkpoint: &mut keep, interrupt: &interrupt };
        let first =
            fit_from(&mut model, &data, Some(&validation as &dyn BatchSource), &config, control, &mut |_| {}).unwrap();
        let (epoch, step) = (at.div_ceil(3), (at - 1) % 3 + 1);
        assert_eq!(first.stop, StopReason::Interrupted { epoch, step }, "interrupted at step {at}");
        assert_eq!(model.model.train_batches.len(), at, "no step after the interrupting one");

        // The model keeps its state (as a checkpoint's weights and Adam state would give it back).
        let (history, trainer, weights) = snapshot.take().unwrap();
        assert_eq!(history.epochs.len(), epoch - usize::from(step < 3), "step {at}");
        model.model.set_weights(&weights).unwrap();
        interrupt.store(false, Ordering::Relaxed);
        interrupt_at.set(usize::MAX);
        let control =
            FitControl { resume: Some((history, trainer)), checkpoint: &mut |_| Ok(()), interrupt: &interrupt };
        let resumed =
            fit_from(&mut model, &data, Some(&validation as &dyn BatchSource), &config, control, &mut |_| {}).unwrap();
        assert_eq!(resumed.stop, expected.stop, "step {at}");
        assert_eq!(resumed.best_epoch, expected.best_epoch, "step {at}");
        let records = |o: &FitOutcome| {
            o.history.epochs.iter().map(|r| (r.epoch, r.loss, r.accuracy, r.val_loss, r.lr)).collect::<Vec<_>>()
        };
        assert_eq!(records(&resumed), records(&expected), "step {at}");
        assert_eq!(model.model.lrs, whole.lrs, "step {at}: the rate of every step");
        assert_eq!(model.model.train_batches, whole.train_batches, "step {at}: the samples of every step");
        assert_eq!(model.model.updates(), whole.updates(), "step {at}: the restored best weights");
    }
}

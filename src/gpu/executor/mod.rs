//! A sequential model on the GPU: `crate::model::walk` run once, when the model is built for a batch
//! size, on an executor that allocates every tensor and records every dispatch (activations,
//! their gradients, parameters, gradients, Adam moments). A training step then uploads the batch,
//! replays forward, loss, backward and Adam from one encoder, submits once and reads back the
//! 4-float loss statistics. Explaining a prediction ([`Explain`]) replays the inference forward
//! pass and the backward kernels down to the input, in one submit per batch.

mod recorder;

use std::sync::Arc;

use crate::gpu::ops::{adam, dropout, loss};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::model::explain::{self, BackwardResult, CamTensors, Explain, Explanation};
use crate::model::plan::{Mode, Plan, find_weight, named};
use crate::model::spec::Architecture;
use crate::model::walk::{self, Forward};
use crate::model::{NamedTensor, OptimizerState, StepProfile, StepStats, TrainOptions, Trainable, real_rows};
use crate::shape::{AdamConfig, DropoutConfig};
use crate::{Error, Result};
use recorder::{Recorder, Recording, upload_params};

/// The model on the GPU at a fixed batch size.
pub struct GpuModel {
    plan: Plan,
    exec: Recorder,
    input: GpuTensor,
    /// Forward (training mode), loss, backward, Adam: one step.
    train: Recording,
    /// Forward in inference mode, then either the loss (`evaluate`) or the probabilities.
    infer: Recording,
    /// The inference forward pass's activations and saved argmaxes, for the explain pass.
    infer_forward: Forward<Recorder>,
    evaluate_loss: Recording,
    predict_probabilities: Recording,
    probabilities: GpuTensor,
    /// Optimizer steps taken (Adam's bias correction, the dropout masks), and the last one's rate.
    step: u64,
    lr: f32,
    /// Built on first use: it holds a gradient for every activation, as much memory again as
    /// inference, which a model that only trains never needs.
    explain: Option<ExplainPass>,
}

/// The explain pass: after `infer`, the backward pass of the inference network from the gradient
/// of the class scores w.r.t. the logits down to the input.
struct ExplainPass {
    recording: Recording,
    /// d score / d logits, uploaded per call.
    seed: GpuTensor,
    input_gradient: GpuTensor,
    /// The Grad-CAM layer's output and its gradient.
    cam: Option<(GpuTensor, GpuTensor)>,
}

impl GpuModel {
    /// Builds the model for `batch` images per step, with `weights` (as from
    /// [`Architecture::initial_weights`] or a model file).
    pub fn new(
        gpu: Arc<Gpu>,
        architecture: &Architecture,
        batch: usize,
        weights: &[NamedTensor],
        options: &TrainOptions,
    ) -> Result<Self> {
        let plan = Plan::new(architecture, batch, options.seed)?;
        let class_weights = options.class_weights_for(architecture)?;
        let mut exec = Recorder {
            params: upload_params(&gpu, &plan.params, weights)?,
            labels: GpuTensor::zeros(&gpu, "labels", &[batch])?,
            class_weights: GpuTensor::from_slice(&gpu, "class weights", &[class_weights.len()], &class_weights)?,
            rows: GpuTensor::from_slice(&gpu, "real rows of the batch", &[1], &[batch as u32])?,
            stats: GpuTensor::zeros(&gpu, "loss statistics", &[loss::STATS_LEN])?,
            adam: options.adam,
            at: String::new(),
            recording: Recording::default(),
            gpu,
        };
        let input_dims: Vec<usize> = std::iter::once(batch).chain(plan.layers[0].info.input.iter().copied()).collect();
        let input = GpuTensor::zeros(&exec.gpu, "input batch", &input_dims)?;
        walk::train_step(&plan, &mut exec, input.clone())?;
        let train = exec.take();
        // Inference has its own activations, so evaluation never disturbs what training saved.
        let infer_forward = walk::forward(&plan, &mut exec, Mode::Infer, input.clone())?;
        let infer = exec.take();
        walk::loss(&mut exec, infer_forward.logits())?;
        let evaluate_loss = exec.take();
        let probabilities = walk::probabilities(&mut exec, infer_forward.logits())?;
        let predict_probabilities = exec.take();
        exec.gpu.check_errors()?;
        Ok(Self {
            plan,
            exec,
            input,
            train,
            infer,
            infer_forward,
            evaluate_loss,
            predict_probabilities,
            probabilities,
            step: 0,
            lr: 0.0,
            explain: None,
        })
    }

    fn upload_images(&self, images: &[f32]) -> Result<()> {
        let len = self.plan.batch * self.plan.sample_len();
        if images.len() != len {
            return Err(Error::shape(
                "batch",
                format!("{} images of {} values", self.plan.batch, self.plan.sample_len()),
                format!("{} values", images.len()),
            ));
        }
        self.input.write(&self.exec.gpu, images)
    }

    fn upload_batch(&self, images: &[f32], labels: &[u32]) -> Result<()> {
        if labels.len() != self.plan.batch {
            return Err(Error::shape("batch labels", [self.plan.batch], [labels.len()]));
        }
        self.upload_images(images)?;
        self.exec.labels.write(&self.exec.gpu, labels)
    }

    fn run_for_stats<'a>(&self, dispatches: impl IntoIterator<Item = &'a Dispatch>) -> Result<StepStats> {
        let stats = self.exec.gpu.run_and_read(dispatches, &self.exec.stats)?;
        // The kernel averages over the rows it counted; padding rows (ignored) are not among them.
        let (mean, correct, counted) = (stats[0] as f64, stats[1] as u64, stats[2] as u64);
        Ok(StepStats { loss_sum: mean * counted as f64, correct, count: counted })
    }

    /// Uploads a training batch and counts the step, and writes the step's uniform parameters:
    /// Adam's bias correction and rate, dropout's masks.
    fn prepare_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<()> {
        let rows = real_rows(labels)?;
        self.upload_batch(images, labels)?;
        self.exec.rows.write(&self.exec.gpu, &[rows as u32])?;
        self.step += 1;
        self.lr = lr;
        let queue = &self.exec.gpu.queue;
        let config = AdamConfig { lr, ..self.exec.adam };
        for &(at, param) in &self.train.adams {
            let len = self.exec.params[param].value.len();
            self.train.dispatches[at].update_params(queue, &adam::AdamParams::new(&config, self.step, len)?);
        }
        for &(at, config, len) in &self.train.dropouts {
            let config = DropoutConfig { step: self.step as u32, ..config };
            self.train.dispatches[at].update_params(queue, &dropout::DropoutParams::new(&config, len)?);
        }
        Ok(())
    }
}

impl Trainable for GpuModel {
    fn batch_size(&self) -> usize {
        self.plan.batch
    }

    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        self.prepare_step(images, labels, lr)?;
        self.run_for_stats(&self.train.dispatches)
    }

    fn profile_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepProfile> {
        self.prepare_step(images, labels, lr)?;
        let mut profile = StepProfile::default();
        for (dispatch, label) in self.train.dispatches.iter().zip(&self.train.labels) {
            let start = std::time::Instant::now();
            self.exec.gpu.run(&[dispatch])?;
            profile.add(label, start.elapsed().as_secs_f64());
        }
        Ok(profile)
    }

    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        self.upload_batch(images, labels)?;
        self.run_for_stats(self.infer.dispatches.iter().chain(&self.evaluate_loss.dispatches))
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        // Prediction reads no labels: only the images go up.
        self.upload_images(images)?;
        let dispatches = self.infer.dispatches.iter().chain(&self.predict_probabilities.dispatches);
        self.exec.gpu.run_and_read(dispatches, &self.probabilities)
    }

    fn weights(&self) -> Result<Vec<NamedTensor>> {
        self.exec.params.iter().map(|p| Ok(named(&p.info, p.value.read(&self.exec.gpu)?))).collect()
    }

    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        for p in &self.exec.params {
            p.value.write(&self.exec.gpu, &find_weight(weights, &p.info)?.data)?;
        }
        Ok(())
    }

    fn optimizer_state(&self) -> Result<OptimizerState> {
        let gpu = &self.exec.gpu;
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for p in &self.exec.params {
            if let Some((_, first, second)) = &p.training {
                m.push(named(&p.info, first.read(gpu)?));
                v.push(named(&p.info, second.read(gpu)?));
            }
        }
        Ok(OptimizerState { step: self.step, lr: self.lr, m, v })
    }

    fn set_optimizer_state(&mut self, optimizer: &OptimizerState) -> Result<()> {
        for p in &self.exec.params {
            if let Some((_, first, second)) = &p.training {
                first.write(&self.exec.gpu, &find_weight(&optimizer.m, &p.info)?.data)?;
                second.write(&self.exec.gpu, &find_weight(&optimizer.v, &p.info)?.data)?;
            }
        }
        self.step = optimizer.step;
        self.lr = optimizer.lr;
        Ok(())
    }
}

impl GpuModel {
    /// Records the explain pass over the inference forward pass's activations.
    fn build_explain_pass(&mut self) -> Result<ExplainPass> {
        let seed = GpuTensor::zeros(&self.exec.gpu, "class score gradient", self.infer_forward.logits().shape())?;
        let walk::Explained { input_gradient, cam } =
            walk::explain(&self.plan, &mut self.exec, &self.infer_forward, seed.clone())?;
        let recording = self.exec.take();
        self.exec.gpu.check_errors()?;
        Ok(ExplainPass { recording, seed, input_gradient, cam })
    }
}

impl Explain for GpuModel {
    /// Runs the images in batches of the model's batch size (the last one padded with zero images
    /// and a zero seed), one submit and one readback each.
    fn explain(&mut self, images: &[f32], classes: &[u32]) -> Result<Vec<Explanation>> {
        let (input, outputs, batch) = (self.plan.input, self.plan.outputs, self.plan.batch);
        explain::check_request(input, outputs.max(2), images, classes)?;
        if classes.is_empty() {
            return Ok(Vec::new());
        }
        if self.explain.is_none() {
            self.explain = Some(self.build_explain_pass()?);
        }
        let pass = self.explain.as_ref().expect("built above");
        let mut reads = vec![self.infer_forward.logits(), &pass.input_gradient];
        let mut result = BackwardResult { logits: Vec::new(), input_gradient: Vec::new(), cam: None };
        if let Some((activations, gradients)) = &pass.cam {
            reads.extend([activations, gradients]);
            let shape = activations.shape()[1..].try_into().expect("a convolution's output is [n, c, h, w]");
            result.cam = Some(CamTensors { activations: Vec::new(), gradients: Vec::new(), shape });
        }
        let sample_len = self.plan.sample_len();
        for (chunk, chunk_classes) in images.chunks(batch * sample_len).zip(classes.chunks(batch)) {
            let mut padded = chunk.to_vec();
            padded.resize(batch * sample_len, 0.0);
            let mut seed = explain::score_gradient(outputs, chunk_classes);
            seed.resize(batch * outputs, 0.0);
            self.input.write(&self.exec.gpu, &padded)?;
            pass.seed.write(&self.exec.gpu, &seed)?;
            let dispatches = self.infer.dispatches.iter().chain(&pass.recording.dispatches);
            let out = self.exec.gpu.run_and_read_all(dispatches, &reads)?;
            // The real rows of each tensor, which leads with the batch.
            let rows = chunk_classes.len();
            let real = |i: usize| &out[i][..out[i].len() / batch * rows];
            result.logits.extend_from_slice(real(0));
            result.input_gradient.extend_from_slice(real(1));
            if let Some(cam) = &mut result.cam {
                cam.activations.extend_from_slice(real(2));
                cam.gradients.extend_from_slice(real(3));
            }
        }
        explain::assemble(input, outputs, classes, &result)
    }
}

//! A sequential model on the CPU: `super::walk` run on an executor that computes each op at once,
//! in host memory. Two executors: `crate::reference`'s (its plain loops, the oracle of every
//! test, `--device reference`) and `crate::native`'s (GEMMs on every core,
//! `--device cpu`). What they share, the parameters with their gradients and Adam moments, the
//! labels and loss statistics, and the model around them, lives here once.
//!
//! The module is the crate's own: [`HostState`] and [`HostExecutor`] are `pub` only so that the
//! public model types can name them in their bounds; no one outside can name or implement them.

use super::explain::{self, BackwardResult, CamTensors, Explain, Explanation};
use super::op::BatchNormParams;
use super::plan::{Mode, Plan, find_weight, named};
use super::spec::Architecture;
use super::walk::{self, Executor, Pass, Stopwatch};
use super::{NamedTensor, OptimizerState, StepProfile, StepStats, TrainOptions, Trainable, real_rows};
use crate::reference::loss;
use crate::shape::{AdamConfig, DropoutConfig, LossShape};
use crate::{Error, Result};

/// What a host executor keeps besides its ops: every parameter with its gradient and Adam moments,
/// and what the loss reads and reports.
pub struct HostState {
    pub(crate) values: Vec<Vec<f32>>,
    /// Per parameter; empty for running statistics.
    pub(crate) grads: Vec<Vec<f32>>,
    pub(crate) moments: Vec<(Vec<f32>, Vec<f32>)>,
    /// The learning rate is this step's.
    pub(crate) adam: AdamConfig,
    /// Optimizer steps taken; the current step's dropout masks and Adam bias correction.
    pub(crate) step: u64,
    /// The labels of the batch being run, and the loss weight of each class.
    pub(crate) labels: Vec<u32>,
    pub(crate) class_weights: Vec<f32>,
    /// Logits per image.
    pub(crate) outputs: usize,
    /// Of the last loss computed.
    pub(crate) stats: StepStats,
    /// Set while a step is profiled.
    pub(crate) stopwatch: Option<Stopwatch>,
}

impl HostState {
    /// This step's mask of `config`.
    pub(crate) fn mask(&self, config: &DropoutConfig) -> DropoutConfig {
        DropoutConfig { step: self.step as u32, ..*config }
    }

    /// [`Executor::enter`]: a lap of the stopwatch while a step is profiled.
    pub(crate) fn enter(&mut self, layer: &str, pass: Pass) {
        if let Some(stopwatch) = &mut self.stopwatch {
            stopwatch.lap(pass.label(layer));
        }
    }

    /// [`Executor::cross_entropy`] of the batch's labels, keeping the loss statistics. The loss
    /// reads a few values per image: the reference's loops are as fast as anything here.
    pub(crate) fn cross_entropy(&mut self, logits: &[f32]) -> Result<Vec<f32>> {
        let n = self.labels.len();
        let out = loss::cross_entropy(
            LossShape { batch: n, classes: self.outputs },
            logits,
            &self.labels,
            &self.class_weights,
        )?;
        self.stats = StepStats { loss_sum: out.loss as f64 * n as f64, correct: out.correct as u64, count: n as u64 };
        Ok(out.dlogits)
    }

    /// [`Executor::probabilities`] of a batch of logits.
    pub(crate) fn probabilities(&self, logits: &[f32]) -> Result<Vec<f32>> {
        loss::probabilities(LossShape { batch: logits.len() / self.outputs, classes: self.outputs }, logits)
    }

    /// A batch-norm layer's gamma, beta, running mean and running variance, to update in place.
    pub(crate) fn batch_norm_params_mut(&mut self, p: &BatchNormParams) -> Result<[&mut Vec<f32>; 4]> {
        self.values
            .get_disjoint_mut([p.gamma, p.beta, p.running_mean, p.running_var])
            .map_err(|e| Error::Invalid(format!("batch norm parameters {p:?}: {e}")))
    }
}

/// An executor computing in host memory, whose tensors read as slices.
pub trait HostExecutor: Executor<Tensor: std::ops::Deref<Target = [f32]>> + Send {
    fn new(state: HostState) -> Self;
    fn state(&self) -> &HostState;
    fn state_mut(&mut self) -> &mut HostState;
    /// A tensor holding `values`.
    fn tensor(&mut self, values: &[f32]) -> Self::Tensor;
    /// Called after every step or pass, when no tensor of it is alive any more.
    fn finished(&mut self) {}
}

/// A model on the CPU. Its batch size only sets how the trainer cuts batches: any number of
/// images can be evaluated or predicted at once.
pub struct HostModel<E> {
    architecture: Architecture,
    /// At the model's batch size.
    plan: Plan,
    seed: u64,
    exec: E,
}

impl<E: HostExecutor> HostModel<E> {
    pub fn new(
        architecture: &Architecture,
        batch: usize,
        weights: &[NamedTensor],
        options: &TrainOptions,
    ) -> Result<Self> {
        let plan = Plan::new(architecture, batch, options.seed)?;
        let mut values = Vec::with_capacity(plan.params.len());
        let mut moments = Vec::with_capacity(plan.params.len());
        for info in &plan.params {
            values.push(find_weight(weights, info)?.data.clone());
            let len = if info.trainable { info.elements() } else { 0 };
            moments.push((vec![0.0; len], vec![0.0; len]));
        }
        let exec = E::new(HostState {
            grads: vec![Vec::new(); values.len()],
            values,
            moments,
            adam: options.adam,
            step: 0,
            labels: Vec::new(),
            class_weights: options.class_weights_for(architecture)?,
            outputs: plan.outputs,
            stats: StepStats::default(),
            stopwatch: None,
        });
        Ok(Self { architecture: architecture.clone(), plan, seed: options.seed, exec })
    }

    /// The plan for `n` images, and the first `n` images of `images` as the input, checked.
    fn plan_for(&mut self, images: &[f32], n: usize) -> Result<(Plan, E::Tensor)> {
        let len = self.plan.sample_len();
        if images.len() < n * len || !images.len().is_multiple_of(len) {
            return Err(Error::shape(
                "batch",
                format!("{n} images of {len} values"),
                format!("{} values", images.len()),
            ));
        }
        let plan = if n == self.plan.batch { self.plan.clone() } else { Plan::new(&self.architecture, n, self.seed)? };
        Ok((plan, self.exec.tensor(&images[..n * len])))
    }

    /// Checks that `images` holds one image per label, and returns the real rows.
    fn rows(&self, images: &[f32], labels: &[u32]) -> Result<usize> {
        if images.len() != labels.len() * self.plan.sample_len() {
            return Err(Error::shape(
                "batch",
                format!("{} images of {} values", labels.len(), self.plan.sample_len()),
                format!("{} values", images.len()),
            ));
        }
        real_rows(labels)
    }
}

impl<E: HostExecutor> Trainable for HostModel<E> {
    fn batch_size(&self) -> usize {
        self.plan.batch
    }

    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        // A short batch is a batch of its real rows.
        let n = self.rows(images, labels)?;
        let (plan, input) = self.plan_for(images, n)?;
        let state = self.exec.state_mut();
        state.step += 1;
        state.adam.lr = lr;
        state.labels = labels[..n].to_vec();
        let step = walk::train_step(&plan, &mut self.exec, input);
        self.exec.finished();
        step.map(|()| self.exec.state().stats)
    }

    fn profile_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepProfile> {
        self.exec.state_mut().stopwatch = Some(Stopwatch::default());
        let step = self.train_step(images, labels, lr);
        let profile = self.exec.state_mut().stopwatch.take().expect("set above").finish();
        step.map(|_| profile)
    }

    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        let n = self.rows(images, labels)?;
        let (plan, input) = self.plan_for(images, n)?;
        self.exec.state_mut().labels = labels[..n].to_vec();
        let fwd = walk::forward(&plan, &mut self.exec, Mode::Infer, input)?;
        walk::loss(&mut self.exec, fwd.logits())?;
        drop(fwd);
        self.exec.finished();
        Ok(self.exec.state().stats)
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let (plan, input) = self.plan_for(images, images.len() / self.plan.sample_len())?;
        let fwd = walk::forward(&plan, &mut self.exec, Mode::Infer, input)?;
        let probabilities = walk::probabilities(&mut self.exec, fwd.logits())?.to_vec();
        drop(fwd);
        self.exec.finished();
        Ok(probabilities)
    }

    fn weights(&self) -> Result<Vec<NamedTensor>> {
        Ok(self
            .plan
            .params
            .iter()
            .zip(&self.exec.state().values)
            .map(|(info, value)| named(info, value.clone()))
            .collect())
    }

    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        for (info, value) in self.plan.params.iter().zip(&mut self.exec.state_mut().values) {
            value.clone_from(&find_weight(weights, info)?.data);
        }
        Ok(())
    }

    fn optimizer_state(&self) -> Result<OptimizerState> {
        let state = self.exec.state();
        let trainable = self.plan.params.iter().zip(&state.moments).filter(|(info, _)| info.trainable);
        let (m, v) = trainable.map(|(info, (m, v))| (named(info, m.clone()), named(info, v.clone()))).unzip();
        Ok(OptimizerState { step: state.step, lr: state.adam.lr, m, v })
    }

    fn set_optimizer_state(&mut self, optimizer: &OptimizerState) -> Result<()> {
        let state = self.exec.state_mut();
        for (info, (m, v)) in self.plan.params.iter().zip(&mut state.moments).filter(|(info, _)| info.trainable) {
            m.clone_from(&find_weight(&optimizer.m, info)?.data);
            v.clone_from(&find_weight(&optimizer.v, info)?.data);
        }
        state.step = optimizer.step;
        state.adam.lr = optimizer.lr;
        Ok(())
    }
}

impl<E: HostExecutor> Explain for HostModel<E> {
    fn explain(&mut self, images: &[f32], classes: &[u32]) -> Result<Vec<Explanation>> {
        let n = explain::check_request(self.plan.input, self.plan.outputs.max(2), images, classes)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (plan, input) = self.plan_for(images, n)?;
        let fwd = walk::forward(&plan, &mut self.exec, Mode::Infer, input)?;
        let seed = self.exec.tensor(&explain::score_gradient(plan.outputs, classes));
        let walk::Explained { input_gradient, cam } = walk::explain(&plan, &mut self.exec, &fwd, seed)?;
        let cam = plan.grad_cam.zip(cam).map(|(i, (activations, gradients))| CamTensors {
            shape: plan.layers[i].info.output[..].try_into().expect("a convolution's output is [c, h, w]"),
            activations: activations.to_vec(),
            gradients: gradients.to_vec(),
        });
        let result = BackwardResult { logits: fwd.logits().to_vec(), input_gradient: input_gradient.to_vec(), cam };
        drop((fwd, input_gradient));
        self.exec.finished();
        explain::assemble(plan.input, plan.outputs, classes, &result)
    }
}

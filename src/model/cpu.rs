//! A sequential model on the CPU reference: [`super::walk`] run on an executor that computes each
//! op at once with the plain loops of `crate::cpu`. `--device cpu` trains with it, and the tests
//! hold the GPU model to it.

use super::explain::{self, BackwardResult, CamTensors, Explain, Explanation};
use super::plan::{BatchNormParams, Mode, Plan, find_weight};
use super::spec::Architecture;
use super::walk::{self, Executor, Pass, Stopwatch};
use super::{NamedTensor, StepProfile, StepStats, TrainOptions, Trainable, real_rows};
use crate::cpu::{activation, adam, batch_norm, conv2d, dense, dropout, loss, max_pool2d};
use crate::shape::Pool2dShape;
use crate::shape::{AdamConfig, BatchNormConfig, BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, LossShape};
use crate::{Error, Result};

/// The reference executor: every parameter with its gradient and Adam moments, and what the loss
/// reads and reports.
struct Reference {
    values: Vec<Vec<f32>>,
    /// Per parameter; empty for running statistics.
    grads: Vec<Vec<f32>>,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    /// The learning rate is this step's.
    adam: AdamConfig,
    /// Optimizer steps taken; the current step's dropout masks and Adam bias correction.
    step: u64,
    /// The labels of the batch being run, and the loss weight of each class.
    labels: Vec<u32>,
    class_weights: Vec<f32>,
    /// Logits per image.
    outputs: usize,
    /// Of the last loss computed.
    stats: StepStats,
    /// Set while a step is profiled.
    stopwatch: Option<Stopwatch>,
}

impl Executor for Reference {
    type Tensor = Vec<f32>;
    type Argmax = Vec<u32>;
    type BatchStats = batch_norm::SavedStats<f32>;

    fn enter(&mut self, layer: &str, pass: Pass) {
        if let Some(stopwatch) = &mut self.stopwatch {
            stopwatch.lap(pass.label(layer));
        }
    }

    fn conv2d(
        &mut self,
        shape: &Conv2dShape,
        x: &Vec<f32>,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<Vec<f32>> {
        Ok(conv2d::conv2d_forward(shape, x, &self.values[weight], &self.values[bias], relu))
    }

    fn max_pool2d(&mut self, shape: &Pool2dShape, x: &Vec<f32>) -> Result<(Vec<f32>, Vec<u32>)> {
        max_pool2d::max_pool2d_forward(shape, x)
    }

    fn batch_norm_train(
        &mut self,
        shape: &BatchNormShape,
        x: &Vec<f32>,
        p: &BatchNormParams,
    ) -> Result<(Vec<f32>, Self::BatchStats)> {
        let [gamma, beta, mean, var] = self
            .values
            .get_disjoint_mut([p.gamma, p.beta, p.running_mean, p.running_var])
            .map_err(|e| Error::Invalid(format!("batch norm parameters {p:?}: {e}")))?;
        batch_norm::forward_train(shape, &BatchNormConfig::default(), x, gamma, beta, mean, var)
    }

    fn batch_norm_infer(&mut self, shape: &BatchNormShape, x: &Vec<f32>, p: &BatchNormParams) -> Result<Vec<f32>> {
        let v = &self.values;
        let config = BatchNormConfig::default();
        batch_norm::forward_inference(shape, &config, x, &v[p.gamma], &v[p.beta], &v[p.running_mean], &v[p.running_var])
    }

    fn relu(&mut self, x: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(activation::relu_forward(x))
    }

    fn reshape(&mut self, x: &Vec<f32>, _dims: &[usize]) -> Result<Vec<f32>> {
        Ok(x.clone())
    }

    fn dense(&mut self, shape: &DenseShape, x: &Vec<f32>, weight: usize, bias: usize, relu: bool) -> Result<Vec<f32>> {
        Ok(dense::dense_forward(shape, x, &self.values[weight], &self.values[bias], relu))
    }

    fn dropout(&mut self, config: &DropoutConfig, x: &Vec<f32>) -> Result<Vec<f32>> {
        dropout::dropout_forward(&self.mask(config), x)
    }

    fn cross_entropy(&mut self, logits: &Vec<f32>) -> Result<Vec<f32>> {
        let shape = LossShape { batch: self.labels.len(), classes: self.outputs };
        let out = loss::cross_entropy(shape, logits, &self.labels, &self.class_weights)?;
        let n = self.labels.len();
        self.stats = StepStats { loss_sum: out.loss as f64 * n as f64, correct: out.correct as u64, count: n as u64 };
        Ok(out.dlogits)
    }

    fn probabilities(&mut self, logits: &Vec<f32>) -> Result<Vec<f32>> {
        loss::probabilities(LossShape { batch: logits.len() / self.outputs, classes: self.outputs }, logits)
    }

    fn relu_backward(&mut self, y: &Vec<f32>, dy: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(activation::relu_backward(y, dy))
    }

    fn conv2d_backward(
        &mut self,
        shape: &Conv2dShape,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<Vec<f32>>> {
        let (dx, dw, db) = conv2d::conv2d_backward(shape, x, &self.values[weight], dy);
        if params {
            self.grads[weight] = dw;
            self.grads[bias] = db;
        }
        Ok(input.then_some(dx))
    }

    fn max_pool2d_backward(
        &mut self,
        shape: &Pool2dShape,
        argmax: &Vec<u32>,
        y: &Vec<f32>,
        dy: &Vec<f32>,
        relu_mask: bool,
    ) -> Result<Vec<f32>> {
        if relu_mask {
            max_pool2d::max_pool2d_backward_relu(shape, argmax, y, dy)
        } else {
            max_pool2d::max_pool2d_backward(shape, argmax, dy)
        }
    }

    fn batch_norm_backward(
        &mut self,
        shape: &BatchNormShape,
        x: &Vec<f32>,
        p: &BatchNormParams,
        stats: &Self::BatchStats,
        dy: &Vec<f32>,
    ) -> Result<Vec<f32>> {
        let g = batch_norm::backward(shape, x, &self.values[p.gamma], stats, dy)?;
        self.grads[p.gamma] = g.dgamma;
        self.grads[p.beta] = g.dbeta;
        Ok(g.dx)
    }

    fn batch_norm_backward_infer(
        &mut self,
        shape: &BatchNormShape,
        p: &BatchNormParams,
        dy: &Vec<f32>,
    ) -> Result<Vec<f32>> {
        let (gamma, var) = (&self.values[p.gamma], &self.values[p.running_var]);
        batch_norm::backward_inference(shape, &BatchNormConfig::default(), gamma, var, dy)
    }

    fn dense_backward(
        &mut self,
        shape: &DenseShape,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<Vec<f32>>> {
        if params {
            self.grads[weight] = dense::dense_backward_weight(shape, x, dy);
            self.grads[bias] = dense::dense_backward_bias(shape, dy);
        }
        Ok(input.then(|| dense::dense_backward_input(shape, dy, &self.values[weight])))
    }

    fn dropout_backward(&mut self, config: &DropoutConfig, dy: &Vec<f32>) -> Result<Vec<f32>> {
        dropout::dropout_backward(&self.mask(config), dy)
    }

    fn adam(&mut self, param: usize) -> Result<()> {
        let (m, v) = &mut self.moments[param];
        adam::adam_step(&self.adam, self.step, &mut self.values[param], &self.grads[param], m, v)
    }
}

impl Reference {
    /// This step's mask of `config`.
    fn mask(&self, config: &DropoutConfig) -> DropoutConfig {
        DropoutConfig { step: self.step as u32, ..*config }
    }
}

/// The model on the CPU. Its batch size only sets how the trainer cuts batches: any number of
/// images can be evaluated or predicted at once.
pub struct CpuModel {
    architecture: Architecture,
    /// At the model's batch size.
    plan: Plan,
    seed: u64,
    exec: Reference,
}

impl CpuModel {
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
        let exec = Reference {
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
        };
        Ok(Self { architecture: architecture.clone(), plan, seed: options.seed, exec })
    }

    /// The plan for `n` images, and the first `n` images of `images` as the input, checked.
    fn plan_for(&self, images: &[f32], n: usize) -> Result<(Plan, Vec<f32>)> {
        let len = self.plan.sample_len();
        if images.len() < n * len || !images.len().is_multiple_of(len) {
            return Err(Error::shape(
                "batch",
                format!("{n} images of {len} values"),
                format!("{} values", images.len()),
            ));
        }
        Ok((Plan::new(&self.architecture, n, self.seed)?, images[..n * len].to_vec()))
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

impl Trainable for CpuModel {
    fn batch_size(&self) -> usize {
        self.plan.batch
    }

    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        // A short batch is a batch of its real rows.
        let n = self.rows(images, labels)?;
        let (plan, input) = self.plan_for(images, n)?;
        self.exec.step += 1;
        self.exec.adam.lr = lr;
        self.exec.labels = labels[..n].to_vec();
        walk::train_step(&plan, &mut self.exec, input)?;
        Ok(self.exec.stats)
    }

    fn profile_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepProfile> {
        self.exec.stopwatch = Some(Stopwatch::default());
        let step = self.train_step(images, labels, lr);
        let profile = self.exec.stopwatch.take().expect("set above").finish();
        step.map(|_| profile)
    }

    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        let n = self.rows(images, labels)?;
        let (plan, input) = self.plan_for(images, n)?;
        self.exec.labels = labels[..n].to_vec();
        let fwd = walk::forward(&plan, &mut self.exec, Mode::Infer, input)?;
        walk::loss(&mut self.exec, fwd.logits())?;
        Ok(self.exec.stats)
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let (plan, input) = self.plan_for(images, images.len() / self.plan.sample_len())?;
        let fwd = walk::forward(&plan, &mut self.exec, Mode::Infer, input)?;
        walk::probabilities(&mut self.exec, fwd.logits())
    }

    fn weights(&self) -> Result<Vec<NamedTensor>> {
        Ok(self
            .plan
            .params
            .iter()
            .zip(&self.exec.values)
            .map(|(info, value)| NamedTensor {
                name: info.name.clone(),
                shape: info.shape.clone(),
                data: value.clone(),
            })
            .collect())
    }

    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        for (info, value) in self.plan.params.iter().zip(&mut self.exec.values) {
            value.clone_from(&find_weight(weights, info)?.data);
        }
        Ok(())
    }
}

impl Explain for CpuModel {
    fn explain(&mut self, images: &[f32], classes: &[u32]) -> Result<Vec<Explanation>> {
        let n = explain::check_request(self.plan.input, self.plan.outputs.max(2), images, classes)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (plan, input) = self.plan_for(images, n)?;
        let fwd = walk::forward(&plan, &mut self.exec, Mode::Infer, input)?;
        let seed = explain::score_gradient(plan.outputs, classes);
        let walk::Explained { input_gradient, cam } = walk::explain(&plan, &mut self.exec, &fwd, seed)?;
        let cam = plan.grad_cam.zip(cam).map(|(i, (activations, gradients))| CamTensors {
            shape: plan.layers[i].info.output[..].try_into().expect("a convolution's output is [c, h, w]"),
            activations,
            gradients,
        });
        let logits = fwd.logits().clone();
        explain::assemble(plan.input, plan.outputs, classes, &BackwardResult { logits, input_gradient, cam })
    }
}

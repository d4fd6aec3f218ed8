//! A sequential model on the GPU. Everything a step needs (activations, their gradients,
//! parameters, gradients, Adam moments, every dispatch) is allocated and bound once, when the
//! model is built for a batch size; a training step then uploads the batch, records forward, loss,
//! backward and Adam into one encoder, submits once and reads back the 4-float loss statistics.
//! Explaining a prediction ([`Explain`]) runs the inference forward pass and the same backward
//! kernels down to the input, in one submit per batch.

use std::ops::Range;
use std::sync::Arc;

use super::explain::{self, BackwardResult, CamTensors, Explain, Explanation};
use super::spec::{Architecture, InputShape, LayerInfo, LayerSpec, ParamInfo};
use super::{NamedTensor, StepStats, TrainOptions, Trainable, check_batch_size, find_weight, layer_seed, real_rows};
use crate::cpu::dropout::DropoutConfig;
use crate::gpu::ops::{activation, adam, batch_norm, conv2d, dense, dropout, loss, max_pool2d};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::shape::{AdamConfig, BatchNormConfig};
use crate::{Error, Result};

/// One parameter or running statistic, with its gradient and Adam moments when trainable.
struct Param {
    info: ParamInfo,
    value: GpuTensor,
    /// (gradient, first moment, second moment).
    training: Option<(GpuTensor, GpuTensor, GpuTensor)>,
}

/// A dropout layer's two dispatches in the training list, whose mask changes every step.
struct DropoutSlot {
    config: DropoutConfig,
    len: usize,
    forward: usize,
    backward: usize,
}

/// The model on the GPU at a fixed batch size.
pub struct GpuModel {
    gpu: Arc<Gpu>,
    batch: usize,
    sample_len: usize,
    params: Vec<Param>,
    input: GpuTensor,
    labels: GpuTensor,
    /// [1] u32: the real rows of the training batch (the rest padding), written every step.
    rows: GpuTensor,
    stats: GpuTensor,
    probabilities: GpuTensor,
    /// Forward (training mode), loss, backward: one step without the optimizer.
    train: Vec<Dispatch>,
    /// One Adam dispatch per trainable tensor, aligned with the trainable entries of `params`.
    adam: Vec<Dispatch>,
    /// Forward in inference mode, then either the loss (`evaluate`) or the probabilities.
    infer: Vec<Dispatch>,
    evaluate_loss: Dispatch,
    predict_probabilities: Dispatch,
    dropouts: Vec<DropoutSlot>,
    adam_config: AdamConfig,
    step: u64,
    input_shape: InputShape,
    /// Logits per image.
    outputs: usize,
    layers: Vec<LayerInfo>,
    /// Per layer: its entries of `params`.
    param_ranges: Vec<Range<usize>>,
    /// The inference forward pass's outputs and saved argmaxes (its dispatches are in `infer`).
    infer_forwards: Vec<Forward>,
    /// Built on first use: it holds a gradient for every activation, as much memory again as
    /// inference, which a model that only trains never needs.
    explain: Option<ExplainPass>,
}

/// The explain pass: after `infer`, the backward pass of the inference network from the gradient
/// of the class scores w.r.t. the logits down to the input.
struct ExplainPass {
    dispatches: Vec<Dispatch>,
    /// d score / d logits, uploaded per call.
    seed: GpuTensor,
    input_gradient: GpuTensor,
    /// The Grad-CAM layer's output and its gradient.
    cam: Option<(GpuTensor, GpuTensor)>,
}

fn with_batch(batch: usize, per_sample: &[usize]) -> Vec<usize> {
    std::iter::once(batch).chain(per_sample.iter().copied()).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Train,
    Infer,
}

/// What a layer's forward pass leaves for its backward pass.
enum Saved {
    Nothing,
    Argmax(GpuTensor),
    BatchNorm(batch_norm::SavedStats),
    Dropout(DropoutConfig),
}

/// A layer's forward dispatches, its output and what the backward pass needs.
struct Forward {
    y: GpuTensor,
    dispatches: Vec<Dispatch>,
    saved: Saved,
}

/// The forward dispatches of a layer in `mode`, reading `x`. `seed` seeds dropout's masks; `rows`
/// ([1] u32) is read by batch norm in training: the real rows of the batch.
#[allow(clippy::too_many_arguments)]
fn forward(
    gpu: &Gpu,
    batch: usize,
    layer: &LayerInfo,
    params: &[Param],
    x: &GpuTensor,
    mode: Mode,
    seed: u64,
    rows: &GpuTensor,
) -> Result<Forward> {
    let out_dims = with_batch(batch, &layer.output);
    let new_output = || GpuTensor::zeros(gpu, &format!("{} output", layer.name), &out_dims);
    let p = |i: usize| &params[i].value;
    Ok(match layer.spec {
        LayerSpec::Conv2d { .. } => {
            let (shape, relu) = layer.conv2d_shape(batch)?;
            let y = new_output()?;
            Forward {
                dispatches: conv2d::conv2d_forward(gpu, &shape, x, p(0), p(1), &y, relu)?,
                y,
                saved: Saved::Nothing,
            }
        }
        LayerSpec::MaxPool2d { .. } => {
            let shape = layer.pool2d_shape(batch)?;
            let y = new_output()?;
            let argmax = GpuTensor::zeros(gpu, &format!("{} argmax", layer.name), &out_dims)?;
            let d = max_pool2d::max_pool2d_forward(gpu, &shape, x, &y, &argmax)?;
            Forward { dispatches: vec![d], y, saved: Saved::Argmax(argmax) }
        }
        LayerSpec::BatchNorm => {
            let shape = layer.batch_norm_shape(batch);
            let y = new_output()?;
            let weights = batch_norm::Weights { gamma: p(0), beta: p(1), running_mean: p(2), running_var: p(3) };
            let config = BatchNormConfig::default();
            match mode {
                Mode::Train => {
                    let f = batch_norm::forward_train(gpu, &shape, &config, x, &weights, rows, &y)?;
                    Forward { dispatches: f.dispatches, y, saved: Saved::BatchNorm(f.saved) }
                }
                Mode::Infer => {
                    let d = batch_norm::forward_inference(gpu, &shape, &config, x, &weights, &y)?;
                    Forward { dispatches: vec![d], y, saved: Saved::Nothing }
                }
            }
        }
        LayerSpec::Relu => {
            let y = new_output()?;
            Forward { dispatches: vec![activation::relu_forward(gpu, x, &y)?], y, saved: Saved::Nothing }
        }
        LayerSpec::Flatten => Forward { y: x.reshaped(&out_dims)?, dispatches: Vec::new(), saved: Saved::Nothing },
        LayerSpec::Dense { relu, .. } => {
            let y = new_output()?;
            let d = dense::dense_forward(gpu, &layer.dense_shape(batch), x, p(0), p(1), &y, relu)?;
            Forward { dispatches: vec![d], y, saved: Saved::Nothing }
        }
        LayerSpec::Dropout { rate } => match mode {
            // Inference: the identity, no dispatch.
            Mode::Infer => Forward { y: x.clone(), dispatches: Vec::new(), saved: Saved::Nothing },
            Mode::Train => {
                let y = new_output()?;
                let config = DropoutConfig { rate, seed, step: 0 };
                Forward {
                    dispatches: vec![dropout::dropout_forward(gpu, &config, x, &y)?],
                    y,
                    saved: Saved::Dropout(config),
                }
            }
        },
    })
}

/// Whether layer `i` is a convolution with a fused ReLU followed by a max-pool: the pool's backward
/// pass then applies the ReLU's (one pass over the pool's input instead of two).
fn relu_fused_into_next_pool(layers: &[LayerInfo], i: usize) -> bool {
    matches!(layers[i].spec, LayerSpec::Conv2d { relu: true, .. })
        && matches!(layers.get(i + 1).map(|l| &l.spec), Some(LayerSpec::MaxPool2d { .. }))
}

/// Per layer: [`relu_fused_into_next_pool`], except at layer `unfused`, whose output gradient must
/// be the gradient w.r.t. its ReLU's output (Grad-CAM reads it), not the one before the ReLU.
fn fused_relus(layers: &[LayerInfo], unfused: Option<usize>) -> Vec<bool> {
    (0..layers.len()).map(|i| Some(i) != unfused && relu_fused_into_next_pool(layers, i)).collect()
}

/// Whether a layer's output is its input's storage (no dispatch): flatten, and dropout at
/// inference. Its output gradient is then its input gradient's storage too.
fn passes_input_through(layer: &LayerInfo, mode: Mode) -> bool {
    matches!((&layer.spec, mode), (LayerSpec::Flatten, _) | (LayerSpec::Dropout { .. }, Mode::Infer))
}

/// What a backward pass is built for. Training mode computes every parameter gradient; inference
/// mode (explaining a prediction) only carries the gradient down through the inference network:
/// batch norm on its running statistics, dropout the identity, no parameter gradient.
struct BackwardPass<'a> {
    gpu: &'a Gpu,
    batch: usize,
    layers: &'a [LayerInfo],
    mode: Mode,
    /// See [`fused_relus`].
    fused_relu: Vec<bool>,
}

impl BackwardPass<'_> {
    /// Tensors for the gradients w.r.t. the input (when `with_input`) and every layer's output,
    /// in that order.
    fn gradients(&self, with_input: bool) -> Result<Vec<Option<GpuTensor>>> {
        let input = with_input
            .then(|| GpuTensor::zeros(self.gpu, "input gradient", &with_batch(self.batch, &self.layers[0].input)));
        let mut grads = vec![input.transpose()?];
        for (i, layer) in self.layers.iter().enumerate() {
            let dims = with_batch(self.batch, &layer.output);
            let g = match &grads[i] {
                Some(prev) if passes_input_through(layer, self.mode) => prev.reshaped(&dims)?,
                _ => GpuTensor::zeros(self.gpu, &format!("{} output gradient", layer.name), &dims)?,
            };
            grads.push(Some(g));
        }
        Ok(grads)
    }

    /// Every layer's backward dispatches, indexed by layer (to record last layer first), over the
    /// activations `acts` (the input, then each layer's output) and `grads` (from
    /// [`BackwardPass::gradients`]) of a forward pass in the same mode.
    fn all_layers(
        &self,
        params: &[Param],
        param_ranges: &[Range<usize>],
        acts: &[GpuTensor],
        forwards: &[Forward],
        grads: &[Option<GpuTensor>],
    ) -> Result<Vec<Vec<Dispatch>>> {
        (0..self.layers.len())
            .map(|i| {
                let dy = grads[i + 1].as_ref().expect("every output has a gradient");
                self.layer(i, &params[param_ranges[i].clone()], &acts[i], &forwards[i], dy, grads[i].as_ref())
            })
            .collect()
    }

    /// The backward dispatches of layer `i`: in training mode, parameter gradients into `params`'
    /// gradient buffers; the input gradient into `dx` (None when nobody needs it, as for the first
    /// layer in training).
    fn layer(
        &self,
        i: usize,
        params: &[Param],
        x: &GpuTensor,
        fwd: &Forward,
        dy: &GpuTensor,
        dx: Option<&GpuTensor>,
    ) -> Result<Vec<Dispatch>> {
        let (gpu, batch, layer) = (self.gpu, self.batch, &self.layers[i]);
        let training = self.mode == Mode::Train;
        let grad = |i: usize| params[i].training.as_ref().map(|t| &t.0).expect("trainable parameter");
        let in_dims = with_batch(batch, &layer.input);
        let mut out = Vec::new();
        // Gradient before a fused ReLU: dy where the output was positive.
        let mut unrelu = |relu: bool| -> Result<GpuTensor> {
            if !relu {
                return Ok(dy.clone());
            }
            let g = GpuTensor::zeros(gpu, &format!("{} pre-activation gradient", layer.name), dy.shape())?;
            out.push(activation::relu_backward(gpu, &fwd.y, dy, &g)?);
            Ok(g)
        };
        match (&layer.spec, &fwd.saved) {
            (LayerSpec::Conv2d { .. }, _) => {
                let (shape, relu) = layer.conv2d_shape(batch)?;
                let g = unrelu(relu && !self.fused_relu[i])?;
                if training {
                    out.extend(conv2d::conv2d_backward_weight(gpu, &shape, x, &g, grad(0), grad(1))?);
                }
                if let Some(dx) = dx {
                    out.extend(conv2d::conv2d_backward_input(gpu, &shape, &g, &params[0].value, dx)?);
                }
            }
            (LayerSpec::MaxPool2d { .. }, Saved::Argmax(argmax)) => {
                if let Some(dx) = dx {
                    let shape = layer.pool2d_shape(batch)?;
                    let relu_mask = i > 0 && self.fused_relu[i - 1];
                    out.push(max_pool2d::max_pool2d_backward(gpu, &shape, argmax, &fwd.y, dy, dx, relu_mask)?);
                }
            }
            (LayerSpec::BatchNorm, Saved::BatchNorm(saved)) => {
                let scratch;
                let dx = match dx {
                    Some(dx) => dx,
                    None => {
                        scratch = GpuTensor::zeros(gpu, "unused input gradient", &in_dims)?;
                        &scratch
                    }
                };
                let grads = batch_norm::Grads { dx, dgamma: grad(0), dbeta: grad(1) };
                out.extend(batch_norm::backward(
                    gpu,
                    &layer.batch_norm_shape(batch),
                    x,
                    &params[0].value,
                    saved,
                    dy,
                    &grads,
                )?);
            }
            // Inference: the affine map of the running statistics.
            (LayerSpec::BatchNorm, Saved::Nothing) => {
                if let Some(dx) = dx {
                    out.push(batch_norm::backward_inference(
                        gpu,
                        &layer.batch_norm_shape(batch),
                        &BatchNormConfig::default(),
                        &params[0].value,
                        &params[3].value,
                        dy,
                        dx,
                    )?);
                }
            }
            (LayerSpec::Relu, _) => {
                if let Some(dx) = dx {
                    out.push(activation::relu_backward(gpu, &fwd.y, dy, dx)?);
                }
            }
            // Flatten's input and output share storage, and so do their gradients; so do dropout's
            // at inference, where it is the identity.
            (LayerSpec::Flatten, _) | (LayerSpec::Dropout { .. }, Saved::Nothing) => {}
            (LayerSpec::Dense { relu, .. }, _) => {
                let shape = layer.dense_shape(batch);
                let g = unrelu(*relu)?;
                if training {
                    out.push(dense::dense_backward_weight(gpu, &shape, x, &g, grad(0))?);
                    out.push(dense::dense_backward_bias(gpu, &shape, &g, grad(1))?);
                }
                if let Some(dx) = dx {
                    out.push(dense::dense_backward_input(gpu, &shape, &g, &params[0].value, dx)?);
                }
            }
            (LayerSpec::Dropout { .. }, Saved::Dropout(config)) => {
                if let Some(dx) = dx {
                    out.push(dropout::dropout_backward(gpu, config, dy, dx)?);
                }
            }
            _ => return Err(Error::Invalid(format!("{}: forward and backward passes disagree", layer.name))),
        }
        Ok(out)
    }
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
        check_batch_size(batch)?;
        let layers = architecture.layers_info()?;
        let params = upload_params(&gpu, &layers, weights)?;
        let input_dims = with_batch(batch, &layers[0].input);
        let input = GpuTensor::zeros(&gpu, "input batch", &input_dims)?;
        let outputs = architecture.outputs();
        let labels = GpuTensor::zeros(&gpu, "labels", &[batch])?;
        let rows = GpuTensor::from_slice(&gpu, "real rows of the batch", &[1], &[batch as u32])?;
        let class_weights = options.class_weights_for(architecture)?;
        let class_weights = GpuTensor::from_slice(&gpu, "class weights", &[class_weights.len()], &class_weights)?;
        let stats = GpuTensor::zeros(&gpu, "loss statistics", &[loss::STATS_LEN])?;
        let probabilities = GpuTensor::zeros(&gpu, "probabilities", &[batch, outputs])?;

        // Training: forward through every layer, keeping what each backward pass needs.
        let mut param_ranges = Vec::new();
        let mut start = 0;
        for layer in &layers {
            param_ranges.push(start..start + layer.params.len());
            start += layer.params.len();
        }
        let mut inputs = vec![input.clone()];
        let mut forwards = Vec::new();
        let mut train = Vec::new();
        // Per layer: where its forward dispatches start in `train`.
        let mut forward_start = Vec::new();
        for (i, (layer, range)) in layers.iter().zip(&param_ranges).enumerate() {
            let x = inputs.last().expect("starts with the input");
            let mut f = forward(
                &gpu,
                batch,
                layer,
                &params[range.clone()],
                x,
                Mode::Train,
                layer_seed(options.seed, i),
                &rows,
            )?;
            forward_start.push(train.len());
            train.append(&mut f.dispatches);
            inputs.push(f.y.clone());
            forwards.push(f);
        }
        let pass = BackwardPass {
            gpu: &gpu,
            batch,
            layers: &layers,
            mode: Mode::Train,
            fused_relu: fused_relus(&layers, None),
        };
        // Gradients w.r.t. every activation after the input.
        let grads = pass.gradients(false)?;
        let logits = inputs.last().expect("at least one layer");
        let dlogits = grads.last().and_then(|g| g.as_ref()).expect("at least one layer");
        train.push(loss::cross_entropy(&gpu, logits, &labels, &class_weights, dlogits, &stats)?);
        let mut dropouts = Vec::new();
        let backward = pass.all_layers(&params, &param_ranges, &inputs, &forwards, &grads)?;
        for (i, dispatches) in backward.into_iter().enumerate().rev() {
            if let Saved::Dropout(config) = forwards[i].saved {
                dropouts.push(DropoutSlot {
                    config,
                    len: forwards[i].y.len(),
                    forward: forward_start[i],
                    backward: train.len(),
                });
            }
            train.extend(dispatches);
        }

        // Inference: its own activations, so evaluation never disturbs what training saved.
        // Kept with what each layer saved, for the explain pass (built on first use).
        let mut infer = Vec::new();
        let mut infer_forwards: Vec<Forward> = Vec::new();
        for (i, (layer, range)) in layers.iter().zip(&param_ranges).enumerate() {
            let x = infer_forwards.last().map_or(&input, |f| &f.y);
            let mut f = forward(
                &gpu,
                batch,
                layer,
                &params[range.clone()],
                x,
                Mode::Infer,
                layer_seed(options.seed, i),
                &rows,
            )?;
            infer.append(&mut f.dispatches);
            infer_forwards.push(f);
        }
        let x = &infer_forwards.last().expect("at least one layer").y;
        let eval_dlogits = GpuTensor::zeros(&gpu, "evaluation logit gradient", x.shape())?;
        let evaluate_loss = loss::cross_entropy(&gpu, x, &labels, &class_weights, &eval_dlogits, &stats)?;
        let predict_probabilities = loss::probabilities(&gpu, x, &probabilities)?;

        let adam_config = options.adam;
        let adam = params
            .iter()
            .filter_map(|p| {
                p.training.as_ref().map(|(g, m, v)| adam::adam_step(&gpu, &adam_config, 1, &p.value, g, m, v))
            })
            .collect::<Result<Vec<_>>>()?;
        gpu.check_errors()?;
        Ok(Self {
            sample_len: input_dims[1..].iter().product(),
            gpu,
            batch,
            params,
            input,
            labels,
            rows,
            stats,
            probabilities,
            train,
            adam,
            infer,
            evaluate_loss,
            predict_probabilities,
            dropouts,
            adam_config,
            step: 0,
            input_shape: architecture.input,
            outputs,
            layers,
            param_ranges,
            infer_forwards,
            explain: None,
        })
    }

    /// The adapter this model runs on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Optimizer steps taken.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Times every dispatch of a training step on its own (submit and wait each), on whatever
    /// batch was uploaded last: where a step's time goes. Slower than a real step, which submits
    /// once.
    pub fn profile_step(&self) -> Result<Vec<(String, f64)>> {
        self.train
            .iter()
            .chain(&self.adam)
            .map(|d| {
                let start = std::time::Instant::now();
                self.gpu.run(&[d])?;
                Ok((d.label().to_string(), start.elapsed().as_secs_f64()))
            })
            .collect()
    }

    fn upload_images(&self, images: &[f32]) -> Result<()> {
        if images.len() != self.batch * self.sample_len {
            return Err(Error::shape(
                "batch",
                format!("{} images of {} values", self.batch, self.sample_len),
                format!("{} values", images.len()),
            ));
        }
        self.input.write(&self.gpu, images)
    }

    fn upload_batch(&self, images: &[f32], labels: &[u32]) -> Result<()> {
        if labels.len() != self.batch {
            return Err(Error::shape("batch labels", [self.batch], [labels.len()]));
        }
        self.upload_images(images)?;
        self.labels.write(&self.gpu, labels)
    }

    fn run_for_stats<'a>(&self, dispatches: impl IntoIterator<Item = &'a Dispatch>) -> Result<StepStats> {
        let stats = self.gpu.run_and_read(dispatches, &self.stats)?;
        // The kernel averages over the rows it counted; padding rows (ignored) are not among them.
        let (mean, correct, counted) = (stats[0] as f64, stats[1] as u64, stats[2] as u64);
        Ok(StepStats { loss_sum: mean * counted as f64, correct, count: counted })
    }
}

impl Trainable for GpuModel {
    fn batch_size(&self) -> usize {
        self.batch
    }

    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        let rows = real_rows(labels)?;
        self.upload_batch(images, labels)?;
        self.rows.write(&self.gpu, &[rows as u32])?;
        self.step += 1;
        let config = AdamConfig { lr, ..self.adam_config };
        let trainable = self.params.iter().filter(|p| p.training.is_some());
        for (dispatch, param) in self.adam.iter().zip(trainable) {
            dispatch.update_params(&self.gpu.queue, &adam::AdamParams::new(&config, self.step, param.value.len())?);
        }
        for slot in &self.dropouts {
            let config = DropoutConfig { step: self.step as u32, ..slot.config };
            let params = dropout::DropoutParams::new(&config, slot.len)?;
            self.train[slot.forward].update_params(&self.gpu.queue, &params);
            self.train[slot.backward].update_params(&self.gpu.queue, &params);
        }
        self.run_for_stats(self.train.iter().chain(&self.adam))
    }

    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        self.upload_batch(images, labels)?;
        self.run_for_stats(self.infer.iter().chain([&self.evaluate_loss]))
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        // Prediction reads no labels: only the images go up.
        self.upload_images(images)?;
        self.gpu.run_and_read(self.infer.iter().chain([&self.predict_probabilities]), &self.probabilities)
    }

    fn weights(&self) -> Result<Vec<NamedTensor>> {
        self.params
            .iter()
            .map(|p| {
                Ok(NamedTensor {
                    name: p.info.name.clone(),
                    shape: p.info.shape.clone(),
                    data: p.value.read(&self.gpu)?,
                })
            })
            .collect()
    }

    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        for p in &self.params {
            p.value.write(&self.gpu, &find_weight(weights, &p.info)?.data)?;
        }
        Ok(())
    }
}

impl GpuModel {
    /// Builds the explain pass over the inference forward pass's activations.
    fn build_explain_pass(&self) -> Result<ExplainPass> {
        let cam_layer = explain::grad_cam_layer(&self.layers);
        let pass = BackwardPass {
            gpu: &self.gpu,
            batch: self.batch,
            layers: &self.layers,
            mode: Mode::Infer,
            fused_relu: fused_relus(&self.layers, cam_layer),
        };
        let grads = pass.gradients(true)?;
        let acts: Vec<GpuTensor> =
            std::iter::once(self.input.clone()).chain(self.infer_forwards.iter().map(|f| f.y.clone())).collect();
        let backward = pass.all_layers(&self.params, &self.param_ranges, &acts, &self.infer_forwards, &grads)?;
        let grad = |i: usize| grads[i].clone().expect("inference gradients reach the input");
        let explain = ExplainPass {
            dispatches: backward.into_iter().rev().flatten().collect(),
            seed: grad(self.layers.len()),
            input_gradient: grad(0),
            cam: cam_layer.map(|i| (acts[i + 1].clone(), grad(i + 1))),
        };
        self.gpu.check_errors()?;
        Ok(explain)
    }
}

impl Explain for GpuModel {
    /// Runs the images in batches of the model's batch size (the last one padded with zero images
    /// and a zero seed), one submit and one readback each.
    fn explain(&mut self, images: &[f32], classes: &[u32]) -> Result<Vec<Explanation>> {
        explain::check_request(self.input_shape, self.outputs.max(2), images, classes)?;
        if classes.is_empty() {
            return Ok(Vec::new());
        }
        if self.explain.is_none() {
            self.explain = Some(self.build_explain_pass()?);
        }
        let pass = self.explain.as_ref().expect("built above");
        let logits = &self.infer_forwards.last().expect("at least one layer").y;
        let mut reads = vec![logits, &pass.input_gradient];
        let mut result = BackwardResult { logits: Vec::new(), input_gradient: Vec::new(), cam: None };
        if let Some((activations, gradients)) = &pass.cam {
            reads.extend([activations, gradients]);
            let shape = activations.shape()[1..].try_into().expect("a convolution's output is [n, c, h, w]");
            result.cam = Some(CamTensors { activations: Vec::new(), gradients: Vec::new(), shape });
        }
        for (chunk, chunk_classes) in images.chunks(self.batch * self.sample_len).zip(classes.chunks(self.batch)) {
            let mut padded = chunk.to_vec();
            padded.resize(self.batch * self.sample_len, 0.0);
            let mut seed = explain::score_gradient(self.outputs, chunk_classes);
            seed.resize(self.batch * self.outputs, 0.0);
            self.input.write(&self.gpu, &padded)?;
            pass.seed.write(&self.gpu, &seed)?;
            let out = self.gpu.run_and_read_all(self.infer.iter().chain(&pass.dispatches), &reads)?;
            // The real rows of each tensor, which leads with the batch.
            let rows = chunk_classes.len();
            let real = |i: usize| &out[i][..out[i].len() / self.batch * rows];
            result.logits.extend_from_slice(real(0));
            result.input_gradient.extend_from_slice(real(1));
            if let Some(cam) = &mut result.cam {
                cam.activations.extend_from_slice(real(2));
                cam.gradients.extend_from_slice(real(3));
            }
        }
        explain::assemble(self.input_shape, self.outputs, classes, &result)
    }
}

/// Uploads every parameter in `layers` order, checking names and shapes against `weights`.
fn upload_params(gpu: &Gpu, layers: &[LayerInfo], weights: &[NamedTensor]) -> Result<Vec<Param>> {
    let mut params = Vec::new();
    for info in layers.iter().flat_map(|l| &l.params) {
        let value = GpuTensor::from_slice(gpu, &info.name, &info.shape, &find_weight(weights, info)?.data)?;
        let training = if info.trainable {
            let zeros = |what: &str| GpuTensor::zeros(gpu, &format!("{} {what}", info.name), &info.shape);
            Some((zeros("gradient")?, zeros("adam m")?, zeros("adam v")?))
        } else {
            None
        };
        params.push(Param { info: info.clone(), value, training });
    }
    Ok(params)
}

//! A sequential model on the CPU reference: the same layers, losses and Adam as the GPU model, in
//! plain loops (`crate::cpu`). `--device cpu` trains with it, and the tests hold the GPU model to it.

use super::explain::{self, BackwardResult, CamTensors, Explain, Explanation};
use super::spec::{Architecture, InputShape, LayerInfo, LayerSpec, ParamInfo};
use super::{NamedTensor, StepStats, TrainOptions, Trainable, check_batch_size, find_weight, layer_seed, real_rows};
use crate::cpu::dropout::DropoutConfig;
use crate::cpu::loss::LossShape;
use crate::cpu::{activation, adam, batch_norm, conv2d, dense, dropout, loss, max_pool2d};
use crate::shape::{AdamConfig, BatchNormConfig};
use crate::{Error, Result};

struct Param {
    info: ParamInfo,
    value: Vec<f32>,
    /// Adam moments, for trainable parameters.
    moments: Option<(Vec<f32>, Vec<f32>)>,
}

/// What a layer's forward pass keeps for its backward pass.
enum Saved {
    Nothing,
    Argmax(Vec<u32>),
    BatchNorm(batch_norm::SavedStats<f32>),
}

/// What [`CpuModel::backward`] computes.
struct Gradients {
    /// W.r.t. the input images.
    input: Vec<f32>,
    /// Per parameter, in `params` order (training mode only).
    params: Vec<Option<Vec<f32>>>,
    /// W.r.t. the output of the layer asked for.
    kept: Option<Vec<f32>>,
}

/// The model on the CPU. Its batch size only sets how the trainer cuts batches: any number of
/// images can be evaluated or predicted at once.
pub struct CpuModel {
    layers: Vec<LayerInfo>,
    params: Vec<Param>,
    batch: usize,
    input: InputShape,
    sample_len: usize,
    /// Logits per image (1 for a sigmoid model).
    classes: usize,
    class_weights: Vec<f32>,
    adam_config: AdamConfig,
    seed: u64,
    step: u64,
}

impl CpuModel {
    pub fn new(
        architecture: &Architecture,
        batch: usize,
        weights: &[NamedTensor],
        options: &TrainOptions,
    ) -> Result<Self> {
        check_batch_size(batch)?;
        let layers = architecture.layers_info()?;
        let mut params = Vec::new();
        for info in layers.iter().flat_map(|l| &l.params) {
            let w = find_weight(weights, info)?;
            let moments = info.trainable.then(|| (vec![0.0; w.data.len()], vec![0.0; w.data.len()]));
            params.push(Param { info: info.clone(), value: w.data.clone(), moments });
        }
        let classes = architecture.outputs();
        let class_weights = options.class_weights_for(architecture)?;
        Ok(Self {
            sample_len: layers[0].input.iter().product(),
            input: architecture.input,
            layers,
            params,
            batch,
            classes,
            class_weights,
            adam_config: options.adam,
            seed: options.seed,
            step: 0,
        })
    }

    fn param_range(&self, layer: usize) -> std::ops::Range<usize> {
        let start: usize = self.layers[..layer].iter().map(|l| l.params.len()).sum();
        start..start + self.layers[layer].params.len()
    }

    /// Runs every layer on `n` images. Training mode updates batch-norm running statistics and
    /// applies dropout with this step's masks. Returns every activation (input first) and what
    /// each layer saved for its backward pass.
    fn forward(&mut self, images: &[f32], n: usize, training: bool) -> Result<(Vec<Vec<f32>>, Vec<Saved>)> {
        let mut acts = vec![images.to_vec()];
        let mut saved = Vec::new();
        for i in 0..self.layers.len() {
            let range = self.param_range(i);
            let layer = &self.layers[i];
            let x = acts.last().expect("starts with the input");
            let p = &mut self.params[range];
            let (y, s) = match layer.spec {
                LayerSpec::Conv2d { relu, .. } => (
                    conv2d::conv2d_forward(&layer.conv2d_shape(n)?.0, x, &p[0].value, &p[1].value, relu),
                    Saved::Nothing,
                ),
                LayerSpec::MaxPool2d { .. } => {
                    let (y, argmax) = max_pool2d::max_pool2d_forward(&layer.pool2d_shape(n)?, x)?;
                    (y, Saved::Argmax(argmax))
                }
                LayerSpec::BatchNorm => {
                    let shape = layer.batch_norm_shape(n);
                    let config = BatchNormConfig::default();
                    let [gamma, beta, mean, var] = p else { unreachable!("batch norm has four tensors") };
                    if training {
                        let (y, stats) = batch_norm::forward_train(
                            &shape,
                            &config,
                            x,
                            &gamma.value,
                            &beta.value,
                            &mut mean.value,
                            &mut var.value,
                        )?;
                        (y, Saved::BatchNorm(stats))
                    } else {
                        let y = batch_norm::forward_inference(
                            &shape,
                            &config,
                            x,
                            &gamma.value,
                            &beta.value,
                            &mean.value,
                            &var.value,
                        )?;
                        (y, Saved::Nothing)
                    }
                }
                LayerSpec::Relu => (activation::relu_forward(x), Saved::Nothing),
                LayerSpec::Flatten => (x.clone(), Saved::Nothing),
                LayerSpec::Dense { relu, .. } => {
                    (dense::dense_forward(&layer.dense_shape(n), x, &p[0].value, &p[1].value, relu), Saved::Nothing)
                }
                LayerSpec::Dropout { rate } if training => {
                    let config = DropoutConfig { rate, seed: layer_seed(self.seed, i), step: self.step as u32 };
                    (dropout::dropout_forward(&config, x)?, Saved::Nothing)
                }
                LayerSpec::Dropout { .. } => (x.clone(), Saved::Nothing),
            };
            acts.push(y);
            saved.push(s);
        }
        Ok((acts, saved))
    }

    /// The backward pass over `n` images from the logit gradient `dlogits`, through the
    /// activations and saved state of a [`CpuModel::forward`] in the same mode. Training mode
    /// computes every parameter gradient and applies this step's dropout masks; inference mode
    /// (explaining a prediction) only carries the gradient down to the input, through batch norm's
    /// running statistics. `keep`: a layer whose output gradient to return as well.
    fn backward(
        &self,
        n: usize,
        acts: &[Vec<f32>],
        saved: &[Saved],
        dlogits: Vec<f32>,
        training: bool,
        keep: Option<usize>,
    ) -> Result<Gradients> {
        let mut dy = dlogits;
        let mut grads: Vec<Option<Vec<f32>>> = vec![None; self.params.len()];
        let mut kept = None;
        for i in (0..self.layers.len()).rev() {
            if keep == Some(i) {
                kept = Some(dy.clone());
            }
            let range = self.param_range(i);
            let layer = &self.layers[i];
            let p = &self.params[range.clone()];
            let (x, y) = (&acts[i], &acts[i + 1]);
            let unrelu = |relu: bool, dy: &[f32]| if relu { activation::relu_backward(y, dy) } else { dy.to_vec() };
            let dx = match (&layer.spec, &saved[i]) {
                (LayerSpec::Conv2d { relu, .. }, _) => {
                    let g = unrelu(*relu, &dy);
                    let (dx, dw, db) = conv2d::conv2d_backward(&layer.conv2d_shape(n)?.0, x, &p[0].value, &g);
                    if training {
                        grads[range.start] = Some(dw);
                        grads[range.start + 1] = Some(db);
                    }
                    dx
                }
                (LayerSpec::MaxPool2d { .. }, Saved::Argmax(argmax)) => {
                    max_pool2d::max_pool2d_backward(&layer.pool2d_shape(n)?, argmax, &dy)?
                }
                (LayerSpec::BatchNorm, Saved::BatchNorm(stats)) => {
                    let g = batch_norm::backward(&layer.batch_norm_shape(n), x, &p[0].value, stats, &dy)?;
                    grads[range.start] = Some(g.dgamma);
                    grads[range.start + 1] = Some(g.dbeta);
                    g.dx
                }
                (LayerSpec::BatchNorm, Saved::Nothing) => {
                    let [gamma, _, _, var] = p else { unreachable!("batch norm has four tensors") };
                    let shape = layer.batch_norm_shape(n);
                    batch_norm::backward_inference(&shape, &BatchNormConfig::default(), &gamma.value, &var.value, &dy)?
                }
                (LayerSpec::Relu, _) => activation::relu_backward(y, &dy),
                (LayerSpec::Flatten, _) => dy,
                (LayerSpec::Dense { relu, .. }, _) => {
                    let shape = layer.dense_shape(n);
                    let g = unrelu(*relu, &dy);
                    if training {
                        grads[range.start] = Some(dense::dense_backward_weight(&shape, x, &g));
                        grads[range.start + 1] = Some(dense::dense_backward_bias(&shape, &g));
                    }
                    dense::dense_backward_input(&shape, &g, &p[0].value)
                }
                (LayerSpec::Dropout { rate }, _) if training => {
                    let config = DropoutConfig { rate: *rate, seed: layer_seed(self.seed, i), step: self.step as u32 };
                    dropout::dropout_backward(&config, &dy)?
                }
                // Inference: the identity.
                (LayerSpec::Dropout { .. }, _) => dy,
                _ => return Err(Error::Invalid(format!("{}: forward and backward passes disagree", layer.name))),
            };
            dy = dx;
        }
        Ok(Gradients { input: dy, params: grads, kept })
    }

    fn check_batch(&self, images: &[f32], n: usize) -> Result<()> {
        if images.len() != n * self.sample_len {
            return Err(Error::shape(
                "batch",
                format!("{n} images of {} values", self.sample_len),
                format!("{} values", images.len()),
            ));
        }
        Ok(())
    }
}

impl Trainable for CpuModel {
    fn batch_size(&self) -> usize {
        self.batch
    }

    fn train_step(&mut self, images: &[f32], labels: &[u32], lr: f32) -> Result<StepStats> {
        self.check_batch(images, labels.len())?;
        // A short batch is a batch of its real rows.
        let n = real_rows(labels)?;
        self.step += 1;
        let (acts, saved) = self.forward(&images[..n * self.sample_len], n, true)?;
        let shape = LossShape { batch: n, classes: self.classes };
        let out = loss::cross_entropy(shape, acts.last().expect("logits"), &labels[..n], &self.class_weights)?;
        let grads = self.backward(n, &acts, &saved, out.dlogits, true, None)?;
        let config = AdamConfig { lr, ..self.adam_config };
        for (param, grad) in self.params.iter_mut().zip(grads.params) {
            if let (Some((m, v)), Some(g)) = (param.moments.as_mut(), grad) {
                adam::adam_step(&config, self.step, &mut param.value, &g, m, v)?;
            }
        }
        Ok(StepStats { loss_sum: out.loss as f64 * n as f64, correct: out.correct as u64, count: n as u64 })
    }

    fn evaluate(&mut self, images: &[f32], labels: &[u32]) -> Result<StepStats> {
        self.check_batch(images, labels.len())?;
        let n = real_rows(labels)?;
        let (acts, _) = self.forward(&images[..n * self.sample_len], n, false)?;
        let shape = LossShape { batch: n, classes: self.classes };
        let out = loss::cross_entropy(shape, acts.last().expect("logits"), &labels[..n], &self.class_weights)?;
        Ok(StepStats { loss_sum: out.loss as f64 * n as f64, correct: out.correct as u64, count: n as u64 })
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let n = images.len() / self.sample_len;
        self.check_batch(images, n)?;
        let (acts, _) = self.forward(images, n, false)?;
        loss::probabilities(LossShape { batch: n, classes: self.classes }, acts.last().expect("logits"))
    }

    fn weights(&self) -> Result<Vec<NamedTensor>> {
        Ok(self
            .params
            .iter()
            .map(|p| NamedTensor { name: p.info.name.clone(), shape: p.info.shape.clone(), data: p.value.clone() })
            .collect())
    }

    fn set_weights(&mut self, weights: &[NamedTensor]) -> Result<()> {
        for p in &mut self.params {
            p.value.clone_from(&find_weight(weights, &p.info)?.data);
        }
        Ok(())
    }
}

impl Explain for CpuModel {
    fn explain(&mut self, images: &[f32], classes: &[u32]) -> Result<Vec<Explanation>> {
        let n = explain::check_request(self.input, self.classes.max(2), images, classes)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (mut acts, saved) = self.forward(images, n, false)?;
        let cam_layer = explain::grad_cam_layer(&self.layers);
        let seed = explain::score_gradient(self.classes, classes);
        let grads = self.backward(n, &acts, &saved, seed, false, cam_layer)?;
        let cam = match (cam_layer, grads.kept) {
            (Some(i), Some(gradients)) => Some(CamTensors {
                shape: self.layers[i].output[..].try_into().expect("a convolution's output is [c, h, w]"),
                activations: std::mem::take(&mut acts[i + 1]),
                gradients,
            }),
            _ => None,
        };
        let logits = acts.pop().expect("logits");
        explain::assemble(
            self.input,
            self.classes,
            classes,
            &BackwardResult { logits, input_gradient: grads.input, cam },
        )
    }
}

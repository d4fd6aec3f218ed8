//! The GPU model's recording executor: it owns the model's device state (parameters, their
//! gradients and Adam moments, labels, loss statistics) and records every op `walk` gives it as
//! dispatches, labelled with their layer and pass, to replay each step.

use std::sync::Arc;

use crate::gpu::ops::{activation, adam, batch_norm, conv2d, dense, dropout, loss, max_pool2d};
use crate::gpu::{Dispatch, Gpu, GpuTensor};
use crate::model::NamedTensor;
use crate::model::op::BatchNormParams;
use crate::model::plan::find_weight;
use crate::model::spec::ParamInfo;
use crate::model::walk::{Executor, Pass};
use crate::shape::{AdamConfig, BatchNormConfig, BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Pool2dShape};
use crate::{Error, Result};

/// One parameter or running statistic, with its gradient and Adam moments when trainable.
pub(super) struct Param {
    pub(super) info: ParamInfo,
    pub(super) value: GpuTensor,
    /// (gradient, first moment, second moment).
    pub(super) training: Option<(GpuTensor, GpuTensor, GpuTensor)>,
}

impl Param {
    fn gradient(&self) -> Result<&GpuTensor> {
        self.training
            .as_ref()
            .map(|t| &t.0)
            .ok_or_else(|| Error::Invalid(format!("{} is not trainable: it has no gradient", self.info.name)))
    }
}

/// Dispatches recorded in order, each labelled with its layer and pass, and the ones whose uniform
/// parameters change every step.
#[derive(Default)]
pub(super) struct Recording {
    pub(super) dispatches: Vec<Dispatch>,
    /// Per dispatch: "conv1 forward", "loss", ...
    pub(super) labels: Vec<String>,
    /// (dispatch, mask) of every dropout dispatch: the step of its mask changes every step.
    pub(super) dropouts: Vec<(usize, DropoutConfig, usize)>,
    /// (dispatch, parameter) of every Adam dispatch: its bias correction and rate change.
    pub(super) adams: Vec<(usize, usize)>,
}

/// The recording executor: it owns the model's device state and records each op it is given.
pub(super) struct Recorder {
    pub(super) gpu: Arc<Gpu>,
    pub(super) params: Vec<Param>,
    pub(super) labels: GpuTensor,
    pub(super) class_weights: GpuTensor,
    /// [1] u32: the real rows of the training batch (the rest padding), written every step.
    pub(super) rows: GpuTensor,
    pub(super) stats: GpuTensor,
    pub(super) adam: AdamConfig,
    /// The layer and pass of the ops being recorded.
    pub(super) at: String,
    pub(super) recording: Recording,
}

impl Recorder {
    fn push(&mut self, dispatch: Dispatch) {
        self.recording.dispatches.push(dispatch);
        self.recording.labels.push(self.at.clone());
    }

    fn extend(&mut self, dispatches: Vec<Dispatch>) {
        for d in dispatches {
            self.push(d);
        }
    }

    /// A zero tensor of `dims`, named after the op being recorded.
    fn tensor(&self, what: &str, dims: &[usize]) -> Result<GpuTensor> {
        GpuTensor::zeros(&self.gpu, &format!("{} {what}", self.at), dims)
    }

    /// Allocates the op's result `what` of `dims` and records the one dispatch `build` makes
    /// writing it.
    fn record_into(
        &mut self,
        what: &str,
        dims: &[usize],
        build: impl FnOnce(&Self, &GpuTensor) -> Result<Dispatch>,
    ) -> Result<GpuTensor> {
        let out = self.tensor(what, dims)?;
        let dispatch = build(self, &out)?;
        self.push(dispatch);
        Ok(out)
    }

    fn value(&self, param: usize) -> &GpuTensor {
        &self.params[param].value
    }

    fn gradient(&self, param: usize) -> Result<&GpuTensor> {
        self.params[param].gradient()
    }

    /// What has been recorded since the last call.
    pub(super) fn take(&mut self) -> Recording {
        std::mem::take(&mut self.recording)
    }

    fn batch_norm_weights(&self, p: &BatchNormParams) -> [&GpuTensor; 4] {
        [p.gamma, p.beta, p.running_mean, p.running_var].map(|i| self.value(i))
    }
}

impl Executor for Recorder {
    type Tensor = GpuTensor;
    type Argmax = GpuTensor;
    type BatchStats = batch_norm::SavedStats;

    fn enter(&mut self, layer: &str, pass: Pass) {
        self.at = pass.label(layer);
    }

    fn conv2d(
        &mut self,
        shape: &Conv2dShape,
        x: &GpuTensor,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<GpuTensor> {
        let y = self.tensor("output", &shape.output_dims())?;
        let d = conv2d::forward(&self.gpu, shape, x, self.value(weight), self.value(bias), &y, relu)?;
        self.extend(d);
        Ok(y)
    }

    fn max_pool2d(&mut self, shape: &Pool2dShape, x: &GpuTensor) -> Result<(GpuTensor, GpuTensor)> {
        let y = self.tensor("output", &shape.output_dims())?;
        let argmax = self.tensor("argmax", &shape.output_dims())?;
        let d = max_pool2d::forward(&self.gpu, shape, x, &y, &argmax)?;
        self.push(d);
        Ok((y, argmax))
    }

    fn batch_norm_train(
        &mut self,
        shape: &BatchNormShape,
        x: &GpuTensor,
        p: &BatchNormParams,
    ) -> Result<(GpuTensor, batch_norm::SavedStats)> {
        let y = self.tensor("output", x.shape())?;
        let [gamma, beta, running_mean, running_var] = self.batch_norm_weights(p);
        let weights = batch_norm::Weights { gamma, beta, running_mean, running_var };
        let config = BatchNormConfig::default();
        let f = batch_norm::forward_train(&self.gpu, shape, &config, x, &weights, &self.rows, &y)?;
        self.extend(f.dispatches);
        Ok((y, f.saved))
    }

    fn batch_norm_infer(&mut self, shape: &BatchNormShape, x: &GpuTensor, p: &BatchNormParams) -> Result<GpuTensor> {
        let y = self.tensor("output", x.shape())?;
        let [gamma, beta, running_mean, running_var] = self.batch_norm_weights(p);
        let weights = batch_norm::Weights { gamma, beta, running_mean, running_var };
        let d = batch_norm::forward_inference(&self.gpu, shape, &BatchNormConfig::default(), x, &weights, &y)?;
        self.push(d);
        Ok(y)
    }

    fn relu(&mut self, x: &GpuTensor) -> Result<GpuTensor> {
        self.record_into("output", x.shape(), |e, out| activation::relu(&e.gpu, x, out))
    }

    fn reshape(&mut self, x: &GpuTensor, dims: &[usize]) -> Result<GpuTensor> {
        x.reshaped(dims)
    }

    fn dense(
        &mut self,
        shape: &DenseShape,
        x: &GpuTensor,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<GpuTensor> {
        self.record_into("output", &[shape.batch, shape.outputs], |e, out| {
            dense::forward(&e.gpu, shape, x, e.value(weight), e.value(bias), out, relu)
        })
    }

    fn dropout(&mut self, config: &DropoutConfig, x: &GpuTensor) -> Result<GpuTensor> {
        let y = self.tensor("output", x.shape())?;
        let d = dropout::forward(&self.gpu, config, x, &y)?;
        self.recording.dropouts.push((self.recording.dispatches.len(), *config, x.len()));
        self.push(d);
        Ok(y)
    }

    fn cross_entropy(&mut self, logits: &GpuTensor) -> Result<GpuTensor> {
        self.record_into("logit gradient", logits.shape(), |e, out| {
            loss::cross_entropy(&e.gpu, logits, &e.labels, &e.class_weights, out, &e.stats)
        })
    }

    fn probabilities(&mut self, logits: &GpuTensor) -> Result<GpuTensor> {
        self.record_into("output", logits.shape(), |e, out| loss::probabilities(&e.gpu, logits, out))
    }

    fn relu_backward(&mut self, y: &GpuTensor, dy: &GpuTensor) -> Result<GpuTensor> {
        self.record_into("pre-activation gradient", dy.shape(), |e, out| activation::relu_backward(&e.gpu, y, dy, out))
    }

    fn conv2d_backward(
        &mut self,
        shape: &Conv2dShape,
        x: &GpuTensor,
        dy: &GpuTensor,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<GpuTensor>> {
        if params {
            let (dw, db) = (self.gradient(weight)?, self.gradient(bias)?);
            let d = conv2d::backward_weight(&self.gpu, shape, x, dy, dw, db)?;
            self.extend(d);
        }
        if !input {
            return Ok(None);
        }
        let dx = self.tensor("input gradient", &shape.input_dims())?;
        let d = conv2d::backward_input(&self.gpu, shape, dy, self.value(weight), &dx)?;
        self.extend(d);
        Ok(Some(dx))
    }

    fn max_pool2d_backward(
        &mut self,
        shape: &Pool2dShape,
        argmax: &GpuTensor,
        y: &GpuTensor,
        dy: &GpuTensor,
        relu_mask: bool,
    ) -> Result<GpuTensor> {
        self.record_into("input gradient", &shape.input_dims(), |e, out| {
            max_pool2d::backward(&e.gpu, shape, argmax, y, dy, out, relu_mask)
        })
    }

    fn batch_norm_backward(
        &mut self,
        shape: &BatchNormShape,
        x: &GpuTensor,
        p: &BatchNormParams,
        stats: &batch_norm::SavedStats,
        dy: &GpuTensor,
    ) -> Result<GpuTensor> {
        let dx = self.tensor("input gradient", x.shape())?;
        let grads = batch_norm::Grads { dx: &dx, dgamma: self.gradient(p.gamma)?, dbeta: self.gradient(p.beta)? };
        let d = batch_norm::backward(&self.gpu, shape, x, self.value(p.gamma), stats, dy, &grads)?;
        self.extend(d);
        Ok(dx)
    }

    fn batch_norm_backward_infer(
        &mut self,
        shape: &BatchNormShape,
        p: &BatchNormParams,
        dy: &GpuTensor,
    ) -> Result<GpuTensor> {
        let dx = self.tensor("input gradient", dy.shape())?;
        let (gamma, var) = (self.value(p.gamma), self.value(p.running_var));
        let d = batch_norm::backward_inference(&self.gpu, shape, &BatchNormConfig::default(), gamma, var, dy, &dx)?;
        self.push(d);
        Ok(dx)
    }

    fn dense_backward(
        &mut self,
        shape: &DenseShape,
        x: &GpuTensor,
        dy: &GpuTensor,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<GpuTensor>> {
        if params {
            let dw = dense::backward_weight(&self.gpu, shape, x, dy, self.gradient(weight)?)?;
            let db = dense::backward_bias(&self.gpu, shape, dy, self.gradient(bias)?)?;
            self.extend(vec![dw, db]);
        }
        if !input {
            return Ok(None);
        }
        let dx = self.tensor("input gradient", &[shape.batch, shape.inputs])?;
        let d = dense::backward_input(&self.gpu, shape, dy, self.value(weight), &dx)?;
        self.push(d);
        Ok(Some(dx))
    }

    fn dropout_backward(&mut self, config: &DropoutConfig, dy: &GpuTensor) -> Result<GpuTensor> {
        let dx = self.tensor("input gradient", dy.shape())?;
        let d = dropout::backward(&self.gpu, config, dy, &dx)?;
        self.recording.dropouts.push((self.recording.dispatches.len(), *config, dy.len()));
        self.push(d);
        Ok(dx)
    }

    fn adam(&mut self, param: usize) -> Result<()> {
        let p = &self.params[param];
        let (g, m, v) =
            p.training.as_ref().ok_or_else(|| Error::Invalid(format!("{} is not trainable", p.info.name)))?;
        // Step 1's parameters; every step writes its own before it runs.
        let d = adam::step(&self.gpu, &self.adam, 1, &p.value, g, m, v)?;
        self.recording.adams.push((self.recording.dispatches.len(), param));
        self.push(d);
        Ok(())
    }
}

/// Uploads every parameter in plan order, checking names and shapes against `weights`.
pub(super) fn upload_params(gpu: &Gpu, params: &[ParamInfo], weights: &[NamedTensor]) -> Result<Vec<Param>> {
    let mut out = Vec::with_capacity(params.len());
    for info in params {
        let value = GpuTensor::from_slice(gpu, &info.name, &info.shape, &find_weight(weights, info)?.data)?;
        let training = if info.trainable {
            let zeros = |what: &str| GpuTensor::zeros(gpu, &format!("{} {what}", info.name), &info.shape);
            Some((zeros("gradient")?, zeros("adam m")?, zeros("adam v")?))
        } else {
            None
        };
        out.push(Param { info: info.clone(), value, training });
    }
    Ok(out)
}

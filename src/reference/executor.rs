//! The reference executor: each op computed at once by the plain loops of `crate::reference`,
//! the oracle every other backend is tested against (`--device reference`).

use crate::Result;
use crate::model::host::{HostExecutor, HostModel, HostState};
use crate::model::op::BatchNormParams;
use crate::model::walk::{Executor, Pass};
use crate::reference::{activation, adam, batch_norm, conv2d, dense, dropout, max_pool2d};
use crate::shape::{BatchNormConfig, BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Pool2dShape};

/// The reference executor; its tensors are host vectors.
pub struct Reference {
    s: HostState,
}

/// A model on the CPU reference.
pub type ReferenceModel = HostModel<Reference>;

impl HostExecutor for Reference {
    fn new(state: HostState) -> Self {
        Self { s: state }
    }
    fn state(&self) -> &HostState {
        &self.s
    }
    fn state_mut(&mut self) -> &mut HostState {
        &mut self.s
    }
    fn tensor(&mut self, values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }
}

impl Executor for Reference {
    type Tensor = Vec<f32>;
    type Argmax = Vec<u32>;
    type BatchStats = batch_norm::SavedStats<f32>;

    fn enter(&mut self, layer: &str, pass: Pass) {
        self.s.enter(layer, pass);
    }

    fn conv2d(
        &mut self,
        shape: &Conv2dShape,
        x: &Vec<f32>,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<Vec<f32>> {
        Ok(conv2d::forward(shape, x, &self.s.values[weight], &self.s.values[bias], relu))
    }

    fn max_pool2d(&mut self, shape: &Pool2dShape, x: &Vec<f32>) -> Result<(Vec<f32>, Vec<u32>)> {
        max_pool2d::forward(shape, x)
    }

    fn batch_norm_train(
        &mut self,
        shape: &BatchNormShape,
        x: &Vec<f32>,
        p: &BatchNormParams,
    ) -> Result<(Vec<f32>, Self::BatchStats)> {
        let [gamma, beta, mean, var] = self.s.batch_norm_params_mut(p)?;
        batch_norm::forward_train(shape, &BatchNormConfig::default(), x, gamma, beta, mean, var)
    }

    fn batch_norm_infer(&mut self, shape: &BatchNormShape, x: &Vec<f32>, p: &BatchNormParams) -> Result<Vec<f32>> {
        let v = &self.s.values;
        let config = BatchNormConfig::default();
        batch_norm::forward_inference(shape, &config, x, &v[p.gamma], &v[p.beta], &v[p.running_mean], &v[p.running_var])
    }

    fn relu(&mut self, x: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(activation::relu(x))
    }

    fn reshape(&mut self, x: &Vec<f32>, _dims: &[usize]) -> Result<Vec<f32>> {
        Ok(x.clone())
    }

    fn dense(&mut self, shape: &DenseShape, x: &Vec<f32>, weight: usize, bias: usize, relu: bool) -> Result<Vec<f32>> {
        Ok(dense::forward(shape, x, &self.s.values[weight], &self.s.values[bias], relu))
    }

    fn dropout(&mut self, config: &DropoutConfig, x: &Vec<f32>) -> Result<Vec<f32>> {
        dropout::forward(&self.s.mask(config), x)
    }

    fn cross_entropy(&mut self, logits: &Vec<f32>) -> Result<Vec<f32>> {
        self.s.cross_entropy(logits)
    }

    fn probabilities(&mut self, logits: &Vec<f32>) -> Result<Vec<f32>> {
        self.s.probabilities(logits)
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
        let (dx, dw, db) = conv2d::backward(shape, x, &self.s.values[weight], dy);
        if params {
            self.s.grads[weight] = dw;
            self.s.grads[bias] = db;
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
            max_pool2d::backward_relu(shape, argmax, y, dy)
        } else {
            max_pool2d::backward(shape, argmax, dy)
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
        let g = batch_norm::backward(shape, x, &self.s.values[p.gamma], stats, dy)?;
        self.s.grads[p.gamma] = g.dgamma;
        self.s.grads[p.beta] = g.dbeta;
        Ok(g.dx)
    }

    fn batch_norm_backward_infer(
        &mut self,
        shape: &BatchNormShape,
        p: &BatchNormParams,
        dy: &Vec<f32>,
    ) -> Result<Vec<f32>> {
        let (gamma, var) = (&self.s.values[p.gamma], &self.s.values[p.running_var]);
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
            self.s.grads[weight] = dense::backward_weight(shape, x, dy);
            self.s.grads[bias] = dense::backward_bias(shape, dy);
        }
        Ok(input.then(|| dense::backward_input(shape, dy, &self.s.values[weight])))
    }

    fn dropout_backward(&mut self, config: &DropoutConfig, dy: &Vec<f32>) -> Result<Vec<f32>> {
        dropout::backward(&self.s.mask(config), dy)
    }

    fn adam(&mut self, param: usize) -> Result<()> {
        let (m, v) = &mut self.s.moments[param];
        adam::step(&self.s.adam, self.s.step, &mut self.s.values[param], &self.s.grads[param], m, v)
    }
}

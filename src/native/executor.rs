//! The native executor: each op computed at once by `crate::native` on every core, into buffers
//! from its pool, so that after the first step a training step allocates nothing large
//! (`--device cpu`).

use std::ops::Deref;
use std::sync::Arc;

use crate::model::host::{HostExecutor, HostModel, HostState};
use crate::model::op::BatchNormParams;
use crate::model::walk::{Executor, Pass};
use crate::native::buffers::{Buffer, BufferPool};
use crate::native::conv2d::OutputGradient;
use crate::native::{batch_norm, conv_pool, conv2d, dense, elementwise, max_pool2d};
use crate::shape::{BatchNormConfig, BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Pool2dShape};
use crate::{Error, Result};

/// A tensor of the native executor: a pooled buffer, shared (a clone or a reshape copies nothing).
#[derive(Clone)]
pub struct NativeTensor(Arc<Buffer<f32>>);

impl Deref for NativeTensor {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

/// The native executor.
pub struct Native {
    s: HostState,
    pool: BufferPool<f32>,
    argmax_pool: BufferPool<u32>,
}

/// A model on the native CPU backend.
pub type NativeModel = HostModel<Native>;

impl HostExecutor for Native {
    fn new(state: HostState) -> Self {
        Self { s: state, pool: BufferPool::default(), argmax_pool: BufferPool::default() }
    }
    fn state(&self) -> &HostState {
        &self.s
    }
    fn state_mut(&mut self) -> &mut HostState {
        &mut self.s
    }
    fn tensor(&mut self, values: &[f32]) -> NativeTensor {
        self.output(values.len(), |out| out.copy_from_slice(values))
    }
    fn finished(&mut self) {
        self.pool.trim();
        self.argmax_pool.trim();
    }
}

impl Native {
    /// A tensor of `len` values that `write` fills (every element).
    fn output(&self, len: usize, write: impl FnOnce(&mut [f32])) -> NativeTensor {
        let mut buffer = self.pool.take(len);
        write(&mut buffer);
        NativeTensor(Arc::new(buffer))
    }

    /// As [`Native::output`] for a writer that can fail.
    fn try_output(&self, len: usize, write: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<NativeTensor> {
        let mut buffer = self.pool.take(len);
        write(&mut buffer)?;
        Ok(NativeTensor(Arc::new(buffer)))
    }

    /// Parameter `read`'s values, and the gradients of `weight` and `bias` sized to their
    /// parameters (allocated on the first step only).
    fn with_grads(&mut self, read: usize, weight: usize, bias: usize) -> Result<(&[f32], &mut [f32], &mut [f32])> {
        let HostState { values, grads, .. } = &mut self.s;
        for param in [weight, bias] {
            grads[param].resize(values[param].len(), 0.0);
        }
        let [w, b] = grads
            .get_disjoint_mut([weight, bias])
            .map_err(|e| Error::Invalid(format!("parameters {weight} and {bias}: {e}")))?;
        Ok((&values[read], w, b))
    }

    /// [`Executor::conv2d_backward`] from `dy`, checked against the shape where it is given whole.
    fn conv2d_backward_from(
        &mut self,
        s: &Conv2dShape,
        x: &NativeTensor,
        dy: OutputGradient,
        (weight, bias): (usize, usize),
        params: bool,
        input: bool,
    ) -> Result<Option<NativeTensor>> {
        self.check_conv2d(s, x, weight, bias)?;
        if let OutputGradient::Given(dy) = dy {
            check("conv2d dy", &s.output_dims(), dy.len())?;
        }
        let mut dx = input.then(|| self.pool.take(x.len()));
        if params {
            let (w, dw, db) = self.with_grads(weight, weight, bias)?;
            conv2d::backward(s, x, w, dy, dx.as_deref_mut(), Some((dw, db)))?;
        } else {
            conv2d::backward(s, x, &self.s.values[weight], dy, dx.as_deref_mut(), None)?;
        }
        Ok(dx.map(|dx| NativeTensor(Arc::new(dx))))
    }

    /// [`check`]s a convolution's input, weight and bias against its shape.
    fn check_conv2d(&self, s: &Conv2dShape, x: &NativeTensor, weight: usize, bias: usize) -> Result<()> {
        check("conv2d x", &s.input_dims(), x.len())?;
        check("conv2d weight", &s.weight_dims(), self.s.values[weight].len())?;
        check("conv2d bias", &[s.out_channels], self.s.values[bias].len())
    }
}

/// Fails unless `what` holds as many values as `dims` name: shapes come from a checked plan, so
/// this guards the GEMMs' bounds rather than users' input.
fn check(what: &str, dims: &[usize], len: usize) -> Result<()> {
    if dims.iter().product::<usize>() != len {
        return Err(Error::shape(what, dims, format!("{len} values")));
    }
    Ok(())
}

impl Executor for Native {
    type Tensor = NativeTensor;
    type Argmax = Buffer<u32>;
    type BatchStats = batch_norm::BatchStats;

    fn enter(&mut self, layer: &str, pass: Pass) {
        self.s.enter(layer, pass);
    }

    fn conv2d(
        &mut self,
        s: &Conv2dShape,
        x: &NativeTensor,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<NativeTensor> {
        self.check_conv2d(s, x, weight, bias)?;
        let (w, b) = (&self.s.values[weight], &self.s.values[bias]);
        Ok(self.output(s.output_dims().iter().product(), |y| conv2d::forward(s, x, w, b, relu, y)))
    }

    fn max_pool2d(&mut self, s: &Pool2dShape, x: &NativeTensor) -> Result<(NativeTensor, Buffer<u32>)> {
        s.validate()?;
        check("max_pool2d x", &s.input_dims(), x.len())?;
        let len = s.output_dims().iter().product();
        let mut argmax = self.argmax_pool.take(len);
        let y = self.output(len, |y| max_pool2d::forward(s, x, y, &mut argmax));
        Ok((y, argmax))
    }

    fn conv2d_relu_max_pool2d(
        &mut self,
        conv: &Conv2dShape,
        pool: &Pool2dShape,
        x: &NativeTensor,
        weight: usize,
        bias: usize,
    ) -> Result<(NativeTensor, Buffer<u32>)> {
        pool.validate()?;
        self.check_conv2d(conv, x, weight, bias)?;
        if conv.output_dims() != pool.input_dims() {
            return Err(Error::shape("max_pool2d x", pool.input_dims(), conv.output_dims()));
        }
        let (w, b) = (&self.s.values[weight], &self.s.values[bias]);
        let len = pool.output_dims().iter().product();
        let mut argmax = self.argmax_pool.take(len);
        let y = self.output(len, |y| conv_pool::forward(conv, pool, x, w, b, y, &mut argmax));
        Ok((y, argmax))
    }

    fn batch_norm_train(
        &mut self,
        s: &BatchNormShape,
        x: &NativeTensor,
        p: &BatchNormParams,
    ) -> Result<(NativeTensor, batch_norm::BatchStats)> {
        let mut y = self.pool.take(x.len());
        let [gamma, beta, mean, var] = self.s.batch_norm_params_mut(p)?;
        let stats = batch_norm::forward_train(s, &BatchNormConfig::default(), x, gamma, beta, mean, var, &mut y)?;
        Ok((NativeTensor(Arc::new(y)), stats))
    }

    fn batch_norm_infer(&mut self, s: &BatchNormShape, x: &NativeTensor, p: &BatchNormParams) -> Result<NativeTensor> {
        let v = &self.s.values;
        let (gamma, beta, mean, var) = (&v[p.gamma], &v[p.beta], &v[p.running_mean], &v[p.running_var]);
        let config = BatchNormConfig::default();
        self.try_output(x.len(), |y| batch_norm::forward_inference(s, &config, x, gamma, beta, mean, var, y))
    }

    fn relu(&mut self, x: &NativeTensor) -> Result<NativeTensor> {
        Ok(self.output(x.len(), |y| elementwise::relu(x, y)))
    }

    fn reshape(&mut self, x: &NativeTensor, _dims: &[usize]) -> Result<NativeTensor> {
        Ok(x.clone())
    }

    fn dense(
        &mut self,
        s: &DenseShape,
        x: &NativeTensor,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<NativeTensor> {
        check("dense x", &[s.batch, s.inputs], x.len())?;
        check("dense weight", &[s.inputs, s.outputs], self.s.values[weight].len())?;
        check("dense bias", &[s.outputs], self.s.values[bias].len())?;
        let (w, b) = (&self.s.values[weight], &self.s.values[bias]);
        Ok(self.output(s.batch * s.outputs, |y| dense::forward(s, x, w, b, relu, y)))
    }

    fn dropout(&mut self, config: &DropoutConfig, x: &NativeTensor) -> Result<NativeTensor> {
        let config = self.s.mask(config);
        self.try_output(x.len(), |y| elementwise::dropout(&config, x, y))
    }

    fn cross_entropy(&mut self, logits: &NativeTensor) -> Result<NativeTensor> {
        let dlogits = self.s.cross_entropy(logits)?;
        Ok(self.tensor(&dlogits))
    }

    fn probabilities(&mut self, logits: &NativeTensor) -> Result<NativeTensor> {
        let probabilities = self.s.probabilities(logits)?;
        Ok(self.tensor(&probabilities))
    }

    fn relu_backward(&mut self, y: &NativeTensor, dy: &NativeTensor) -> Result<NativeTensor> {
        check("relu dy", &[y.len()], dy.len())?;
        Ok(self.output(y.len(), |dx| elementwise::relu_backward(y, dy, dx)))
    }

    fn conv2d_backward(
        &mut self,
        s: &Conv2dShape,
        x: &NativeTensor,
        dy: &NativeTensor,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<NativeTensor>> {
        self.conv2d_backward_from(s, x, OutputGradient::Given(dy), (weight, bias), params, input)
    }

    fn max_pool2d_backward(
        &mut self,
        s: &Pool2dShape,
        argmax: &Buffer<u32>,
        y: &NativeTensor,
        dy: &NativeTensor,
        relu_mask: bool,
    ) -> Result<NativeTensor> {
        let out = s.output_dims();
        check("max_pool2d argmax", &out, argmax.len())?;
        check("max_pool2d y", &out, y.len())?;
        check("max_pool2d dy", &out, dy.len())?;
        let relu_y = relu_mask.then_some(&y[..]);
        self.try_output(s.input_dims().iter().product(), |dx| max_pool2d::backward(s, argmax, relu_y, dy, dx))
    }

    fn max_pool2d_conv2d_backward(
        &mut self,
        pool: &Pool2dShape,
        argmax: &Buffer<u32>,
        y: &NativeTensor,
        dy: &NativeTensor,
        conv: &Conv2dShape,
        x: &NativeTensor,
        params: (usize, usize),
        train: bool,
        input: bool,
    ) -> Result<Option<NativeTensor>> {
        let out = pool.output_dims();
        check("max_pool2d argmax", &out, argmax.len())?;
        check("max_pool2d y", &out, y.len())?;
        check("max_pool2d dy", &out, dy.len())?;
        if conv.output_dims() != pool.input_dims() {
            return Err(Error::shape("max_pool2d x", pool.input_dims(), conv.output_dims()));
        }
        let pooled = OutputGradient::Pooled { pool, argmax, y, dy };
        self.conv2d_backward_from(conv, x, pooled, params, train, input)
    }

    fn batch_norm_backward(
        &mut self,
        s: &BatchNormShape,
        x: &NativeTensor,
        p: &BatchNormParams,
        stats: &batch_norm::BatchStats,
        dy: &NativeTensor,
    ) -> Result<NativeTensor> {
        let mut dx = self.pool.take(x.len());
        let (gamma, dgamma, dbeta) = self.with_grads(p.gamma, p.gamma, p.beta)?;
        batch_norm::backward(s, x, gamma, stats, dy, &mut dx, dgamma, dbeta)?;
        Ok(NativeTensor(Arc::new(dx)))
    }

    fn batch_norm_backward_infer(
        &mut self,
        s: &BatchNormShape,
        p: &BatchNormParams,
        dy: &NativeTensor,
    ) -> Result<NativeTensor> {
        let (gamma, var) = (&self.s.values[p.gamma], &self.s.values[p.running_var]);
        let config = BatchNormConfig::default();
        self.try_output(dy.len(), |dx| batch_norm::backward_inference(s, &config, gamma, var, dy, dx))
    }

    fn dense_backward(
        &mut self,
        s: &DenseShape,
        x: &NativeTensor,
        dy: &NativeTensor,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<NativeTensor>> {
        check("dense x", &[s.batch, s.inputs], x.len())?;
        check("dense dy", &[s.batch, s.outputs], dy.len())?;
        check("dense weight", &[s.inputs, s.outputs], self.s.values[weight].len())?;
        check("dense bias", &[s.outputs], self.s.values[bias].len())?;
        if params {
            let (_, dw, db) = self.with_grads(weight, weight, bias)?;
            dense::backward_params(s, x, dy, dw, db);
        }
        let w = &self.s.values[weight];
        Ok(input.then(|| self.output(x.len(), |dx| dense::backward_input(s, dy, w, dx))))
    }

    fn dropout_backward(&mut self, config: &DropoutConfig, dy: &NativeTensor) -> Result<NativeTensor> {
        let config = self.s.mask(config);
        self.try_output(dy.len(), |dx| elementwise::dropout(&config, dy, dx))
    }

    fn adam(&mut self, param: usize) -> Result<()> {
        let HostState { values, grads, moments, adam, step, .. } = &mut self.s;
        let (m, v) = &mut moments[param];
        elementwise::adam(adam, *step, &mut values[param], &grads[param], m, v)
    }
}

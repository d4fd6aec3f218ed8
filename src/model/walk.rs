//! The one walk over a [`Plan`]: forward, loss, backward, Adam and the explain pass, written once
//! and generic over an [`Executor`], which each backend implements. The GPU's executor records
//! dispatches into lists the model replays every step; the CPU reference's computes at once.
//! An op a backend lacks is a missing trait method: a compile error.
//!
//! Parameters are named by their index in [`Plan::params`]; each executor owns their values,
//! gradients and Adam moments. Every op returns a new tensor (the GPU's executor allocates it once,
//! when it records the op), so no tensor a later op needs is overwritten.

use std::time::Instant;

use super::StepProfile;
use super::op::{BatchNormParams, Op};
use super::plan::{Mode, Plan, PlanLayer};
use crate::shape::{BatchNormShape, Conv2dShape, DenseShape, DropoutConfig, Pool2dShape};
use crate::{Error, Result};

/// Which pass of a layer the ops that follow belong to, for the executor's labels and profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    Loss,
    Backward,
    Adam,
}

impl Pass {
    /// "conv1 forward", "dense2 backward"; the loss and the optimizer by their own name.
    pub fn label(self, layer: &str) -> String {
        match self {
            Pass::Forward => format!("{layer} forward"),
            Pass::Backward => format!("{layer} backward"),
            Pass::Loss | Pass::Adam => layer.to_string(),
        }
    }
}

/// Times the parts of a step on an executor that computes at once: each [`Executor::enter`] ends
/// the part before it.
#[derive(Default)]
pub struct Stopwatch {
    running: Option<(String, Instant)>,
    profile: StepProfile,
}

impl Stopwatch {
    /// Ends the running part and starts `label`.
    pub fn lap(&mut self, label: String) {
        self.stop();
        self.running = Some((label, Instant::now()));
    }

    /// Ends the running part and returns every part's time.
    pub fn finish(mut self) -> StepProfile {
        self.stop();
        self.profile
    }

    fn stop(&mut self) {
        if let Some((label, start)) = self.running.take() {
            self.profile.add(&label, start.elapsed().as_secs_f64());
        }
    }
}

/// A backend's operations. Tensors lead with the batch; `Tensor` is whatever names one on the
/// backend (a host vector, a GPU buffer). Gradients of parameters go into the executor's own
/// gradient of that parameter, overwriting it.
pub trait Executor {
    type Tensor: Clone;
    /// Max-pool's argmax indices.
    type Argmax;
    /// What batch norm's training forward pass saves for its backward pass.
    type BatchStats;

    /// The ops that follow are `pass` of layer `layer` (a layer name, or the loss or optimizer).
    fn enter(&mut self, layer: &str, pass: Pass);

    fn conv2d(
        &mut self,
        shape: &Conv2dShape,
        x: &Self::Tensor,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<Self::Tensor>;
    /// The pooled output and the argmax of each window (flat input indices).
    fn max_pool2d(&mut self, shape: &Pool2dShape, x: &Self::Tensor) -> Result<(Self::Tensor, Self::Argmax)>;
    /// A convolution with its ReLU, then a max-pool of its output: what [`Executor::max_pool2d`]
    /// of [`Executor::conv2d`] gives. A backend may fuse the two and not keep the convolution's
    /// output, which a training step never reads.
    fn conv2d_relu_max_pool2d(
        &mut self,
        conv: &Conv2dShape,
        pool: &Pool2dShape,
        x: &Self::Tensor,
        weight: usize,
        bias: usize,
    ) -> Result<(Self::Tensor, Self::Argmax)> {
        let y = self.conv2d(conv, x, weight, bias, true)?;
        self.max_pool2d(pool, &y)
    }
    /// Normalises with the batch's statistics and moves the running ones towards them.
    fn batch_norm_train(
        &mut self,
        shape: &BatchNormShape,
        x: &Self::Tensor,
        params: &BatchNormParams,
    ) -> Result<(Self::Tensor, Self::BatchStats)>;
    fn batch_norm_infer(
        &mut self,
        shape: &BatchNormShape,
        x: &Self::Tensor,
        params: &BatchNormParams,
    ) -> Result<Self::Tensor>;
    fn relu(&mut self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// The same values seen as `dims`.
    fn reshape(&mut self, x: &Self::Tensor, dims: &[usize]) -> Result<Self::Tensor>;
    fn dense(
        &mut self,
        shape: &DenseShape,
        x: &Self::Tensor,
        weight: usize,
        bias: usize,
        relu: bool,
    ) -> Result<Self::Tensor>;
    /// Training-mode dropout with this step's mask of `config` (the executor sets the step).
    fn dropout(&mut self, config: &DropoutConfig, x: &Self::Tensor) -> Result<Self::Tensor>;

    /// The class-weighted cross-entropy of `logits` against the executor's labels: returns the
    /// gradient w.r.t. the logits; the executor keeps the loss statistics.
    fn cross_entropy(&mut self, logits: &Self::Tensor) -> Result<Self::Tensor>;
    /// Sigmoid or softmax probabilities of `logits`.
    fn probabilities(&mut self, logits: &Self::Tensor) -> Result<Self::Tensor>;

    /// `dy` where `y > 0`: a ReLU's backward pass from its output.
    fn relu_backward(&mut self, y: &Self::Tensor, dy: &Self::Tensor) -> Result<Self::Tensor>;
    /// A convolution's backward pass from the gradient before its ReLU: the weight and bias
    /// gradients when `params` (into the executor's gradients of `weight` and `bias`), and the
    /// input gradient when `input` (else None).
    #[allow(clippy::too_many_arguments)] // the op's operands and the two choices of what to compute
    fn conv2d_backward(
        &mut self,
        shape: &Conv2dShape,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<Self::Tensor>>;
    /// The input gradient of a max-pool; with `relu_mask`, also the backward pass of the ReLU
    /// before it (a window passes its gradient only where its maximum `y` is positive).
    fn max_pool2d_backward(
        &mut self,
        shape: &Pool2dShape,
        argmax: &Self::Argmax,
        y: &Self::Tensor,
        dy: &Self::Tensor,
        relu_mask: bool,
    ) -> Result<Self::Tensor>;
    /// The backward passes of a max-pool and of the convolution with its ReLU before it, as one:
    /// what [`Executor::conv2d_backward`] of [`Executor::max_pool2d_backward`] (with the ReLU's
    /// mask) gives. A backend may fuse the two and never hold the convolution's output gradient.
    #[allow(clippy::too_many_arguments)] // both ops' operands
    fn max_pool2d_conv2d_backward(
        &mut self,
        pool: &Pool2dShape,
        argmax: &Self::Argmax,
        y: &Self::Tensor,
        dy: &Self::Tensor,
        conv: &Conv2dShape,
        x: &Self::Tensor,
        (weight, bias): (usize, usize),
        params: bool,
        input: bool,
    ) -> Result<Option<Self::Tensor>> {
        let g = self.max_pool2d_backward(pool, argmax, y, dy, true)?;
        self.conv2d_backward(conv, x, &g, weight, bias, params, input)
    }
    /// Training mode: the input gradient, and gamma's and beta's gradients.
    fn batch_norm_backward(
        &mut self,
        shape: &BatchNormShape,
        x: &Self::Tensor,
        params: &BatchNormParams,
        stats: &Self::BatchStats,
        dy: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// Inference mode: the affine map of the running statistics, so only the input gradient.
    fn batch_norm_backward_infer(
        &mut self,
        shape: &BatchNormShape,
        params: &BatchNormParams,
        dy: &Self::Tensor,
    ) -> Result<Self::Tensor>;
    /// As [`Executor::conv2d_backward`], for a dense layer.
    #[allow(clippy::too_many_arguments)]
    fn dense_backward(
        &mut self,
        shape: &DenseShape,
        x: &Self::Tensor,
        dy: &Self::Tensor,
        weight: usize,
        bias: usize,
        params: bool,
        input: bool,
    ) -> Result<Option<Self::Tensor>>;
    /// The training-mode dropout mask of `config` applied to `dy`.
    fn dropout_backward(&mut self, config: &DropoutConfig, dy: &Self::Tensor) -> Result<Self::Tensor>;

    /// One Adam step of parameter `param` from its gradient.
    fn adam(&mut self, param: usize) -> Result<()>;
}

/// What one layer's forward pass keeps for its backward pass.
pub enum Saved<E: Executor> {
    Nothing,
    Argmax(E::Argmax),
    BatchStats(E::BatchStats),
}

/// A forward pass: every activation (the input first, then each layer's output) and what each
/// layer saved. A convolution fused with the max-pool after it keeps no output (`None`).
pub struct Forward<E: Executor> {
    pub activations: Vec<Option<E::Tensor>>,
    pub saved: Vec<Saved<E>>,
}

impl<E: Executor> Forward<E> {
    pub fn logits(&self) -> &E::Tensor {
        self.activations.last().and_then(Option::as_ref).expect("the last layer's output is kept")
    }

    /// Activation `i` (layer `i`'s input, layer `i - 1`'s output), which a pass reads only where it
    /// is kept: a fused convolution's output is read by no backward pass, nor by the explain pass.
    fn input_of(&self, i: usize) -> Result<&E::Tensor> {
        self.activations.get(i).and_then(Option::as_ref).ok_or_else(|| {
            Error::Invalid(format!("activation {i} was fused away in the forward pass, yet a later pass reads it"))
        })
    }
}

/// Whether layer `i` (a convolution with its ReLU) and the max-pool after it run as one op: always,
/// except at the Grad-CAM layer in inference, whose output the explain pass reads.
fn fuses_with_pool(plan: &Plan, mode: Mode, i: usize) -> bool {
    let layer = &plan.layers[i];
    layer.relu_fused_into_pool && !(mode == Mode::Infer && plan.grad_cam == Some(i))
}

/// Runs every layer of `plan` in `mode` on `input`.
pub fn forward<E: Executor>(plan: &Plan, exec: &mut E, mode: Mode, input: E::Tensor) -> Result<Forward<E>> {
    let mut activations = vec![Some(input)];
    let mut saved = Vec::with_capacity(plan.layers.len());
    let mut layers = plan.layers.iter().enumerate();
    while let Some((i, layer)) = layers.next() {
        // A convolution run with the pool after it, as one op labelled by both layers ("conv1+pool1").
        let fused = match &layer.op {
            &Op::Conv2d { shape, relu: true, weight, bias } if fuses_with_pool(plan, mode, i) => match layers.next() {
                Some((_, PlanLayer { op: Op::MaxPool2d { shape: pool }, info, .. })) => {
                    Some((shape, weight, bias, pool, &info.name))
                }
                _ => return Err(Error::Invalid(format!("{}: no max-pool follows to fuse with", layer.info.name))),
            },
            _ => None,
        };
        let x = activations.last().and_then(Option::as_ref).expect("a layer's output is kept unless a pool follows");
        if let Some((shape, weight, bias, pool, pool_name)) = fused {
            exec.enter(&format!("{}+{pool_name}", layer.info.name), Pass::Forward);
            let (y, argmax) = exec.conv2d_relu_max_pool2d(&shape, pool, x, weight, bias)?;
            activations.extend([None, Some(y)]);
            saved.extend([Saved::Nothing, Saved::Argmax(argmax)]);
            continue;
        }
        exec.enter(&layer.info.name, Pass::Forward);
        let (y, s) = match (&layer.op, mode) {
            (&Op::Conv2d { shape, relu, weight, bias }, _) => {
                (exec.conv2d(&shape, x, weight, bias, relu)?, Saved::Nothing)
            }
            (Op::MaxPool2d { shape }, _) => {
                let (y, argmax) = exec.max_pool2d(shape, x)?;
                (y, Saved::Argmax(argmax))
            }
            (Op::BatchNorm { shape, params }, Mode::Train) => {
                let (y, stats) = exec.batch_norm_train(shape, x, params)?;
                (y, Saved::BatchStats(stats))
            }
            (Op::BatchNorm { shape, params }, Mode::Infer) => {
                (exec.batch_norm_infer(shape, x, params)?, Saved::Nothing)
            }
            (Op::Relu, _) => (exec.relu(x)?, Saved::Nothing),
            (Op::Flatten, _) => (exec.reshape(x, &layer.output_dims(plan.batch))?, Saved::Nothing),
            (&Op::Dense { shape, relu, weight, bias }, _) => {
                (exec.dense(&shape, x, weight, bias, relu)?, Saved::Nothing)
            }
            (Op::Dropout { config }, Mode::Train) => (exec.dropout(config, x)?, Saved::Nothing),
            // Inference: the identity.
            (Op::Dropout { .. }, Mode::Infer) => (x.clone(), Saved::Nothing),
        };
        activations.push(Some(y));
        saved.push(s);
    }
    Ok(Forward { activations, saved })
}

/// What a backward pass is asked for besides the parameter gradients of training mode.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    /// The gradient w.r.t. the input images.
    pub input: bool,
    /// The gradient w.r.t. this layer's output (after its ReLU): Grad-CAM's.
    pub layer_output: Option<usize>,
}

/// What a backward pass gives back.
pub struct Gradients<E: Executor> {
    pub input: Option<E::Tensor>,
    pub layer_output: Option<E::Tensor>,
}

/// The backward pass of a `forward` in the same `mode`, from the logit gradient `dlogits`. Training
/// mode computes every parameter gradient; inference mode (explaining a prediction) only carries
/// the gradient down, through batch norm's running statistics and dropout's identity.
pub fn backward<E: Executor>(
    plan: &Plan,
    exec: &mut E,
    mode: Mode,
    fwd: &Forward<E>,
    dlogits: E::Tensor,
    wanted: Wanted,
) -> Result<Gradients<E>> {
    let training = mode == Mode::Train;
    let mut dy = dlogits;
    let mut layer_output = None;
    let mut layers = plan.layers.iter().enumerate().rev().peekable();
    while let Some((i, layer)) = layers.next() {
        if wanted.layer_output == Some(i) {
            layer_output = Some(dy.clone());
        }
        // Nobody reads the gradient w.r.t. the images in training.
        let input_wanted = |i: usize| i > 0 || wanted.input;
        // A pool and the convolution whose ReLU it took over run backward as one op ("conv1+pool1"),
        // except at the Grad-CAM layer, whose output gradient is read between the two.
        let conv_before = match (&layer.op, &fwd.saved[i], layers.peek().copied()) {
            (Op::MaxPool2d { shape }, Saved::Argmax(argmax), Some((c, conv)))
                if conv.relu_fused_into_pool && wanted.layer_output != Some(c) =>
            {
                match conv.op {
                    Op::Conv2d { shape: conv_shape, weight, bias, .. } => {
                        Some((shape, argmax, c, conv, conv_shape, (weight, bias)))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((pool, argmax, c, conv, conv_shape, params)) = conv_before {
            layers.next();
            exec.enter(&format!("{}+{}", conv.info.name, layer.info.name), Pass::Backward);
            let (y, x) = (fwd.input_of(i + 1)?, fwd.input_of(c)?);
            let input = input_wanted(c);
            let dx = exec.max_pool2d_conv2d_backward(pool, argmax, y, &dy, &conv_shape, x, params, training, input)?;
            match dx {
                Some(dx) => dy = dx,
                None => break,
            }
            continue;
        }
        exec.enter(&layer.info.name, Pass::Backward);
        let x = || fwd.input_of(i);
        let y = || fwd.input_of(i + 1);
        let input = input_wanted(i);
        // Whether this layer applies the backward pass of its fused ReLU itself: not when the next
        // layer (a pool) did, except at the Grad-CAM layer, whose output gradient is read after
        // its ReLU.
        let own_relu = |relu: bool| relu && !(layer.relu_fused_into_pool && wanted.layer_output != Some(i));
        let dx = match (&layer.op, &fwd.saved[i]) {
            (&Op::Conv2d { shape, relu, weight, bias }, _) => {
                let g = if own_relu(relu) { exec.relu_backward(y()?, &dy)? } else { dy.clone() };
                exec.conv2d_backward(&shape, x()?, &g, weight, bias, training, input)?
            }
            (Op::MaxPool2d { shape }, Saved::Argmax(argmax)) if input => {
                let previous = i.checked_sub(1).map(|p| &plan.layers[p]);
                let relu_mask = previous.is_some_and(|p| p.relu_fused_into_pool && wanted.layer_output != Some(i - 1));
                Some(exec.max_pool2d_backward(shape, argmax, y()?, &dy, relu_mask)?)
            }
            (Op::BatchNorm { shape, params }, Saved::BatchStats(stats)) => {
                Some(exec.batch_norm_backward(shape, x()?, params, stats, &dy)?)
            }
            (Op::BatchNorm { shape, params }, Saved::Nothing) if input => {
                Some(exec.batch_norm_backward_infer(shape, params, &dy)?)
            }
            (Op::Relu, _) if input => Some(exec.relu_backward(y()?, &dy)?),
            (Op::Flatten, _) if input => Some(exec.reshape(&dy, &layer.input_dims(plan.batch))?),
            (&Op::Dense { shape, relu, weight, bias }, _) => {
                let g = if relu { exec.relu_backward(y()?, &dy)? } else { dy.clone() };
                exec.dense_backward(&shape, x()?, &g, weight, bias, training, input)?
            }
            (Op::Dropout { config }, _) if input && training => Some(exec.dropout_backward(config, &dy)?),
            // Inference: the identity.
            (Op::Dropout { .. }, _) if input => Some(dy.clone()),
            // The first layer in training, with no parameters to learn.
            (Op::MaxPool2d { .. } | Op::BatchNorm { .. } | Op::Relu | Op::Flatten | Op::Dropout { .. }, _) => None,
        };
        match dx {
            Some(dx) => dy = dx,
            None => break,
        }
    }
    Ok(Gradients { input: wanted.input.then_some(dy), layer_output })
}

/// One training step on the batch in `input`: forward, loss, backward and Adam. The executor
/// keeps the loss statistics.
pub fn train_step<E: Executor>(plan: &Plan, exec: &mut E, input: E::Tensor) -> Result<()> {
    let fwd = forward(plan, exec, Mode::Train, input)?;
    let dlogits = loss(exec, fwd.logits())?;
    backward(plan, exec, Mode::Train, &fwd, dlogits, Wanted::default())?;
    exec.enter("adam", Pass::Adam);
    for param in plan.trainable() {
        exec.adam(param)?;
    }
    Ok(())
}

/// What the explain pass gives back.
pub struct Explained<E: Executor> {
    /// The gradient of each image's class score w.r.t. its input.
    pub input_gradient: E::Tensor,
    /// The Grad-CAM layer's output and its gradient, when the plan has a convolution.
    pub cam: Option<(E::Tensor, E::Tensor)>,
}

/// The explain pass after an inference [`forward`]: from `seed` (the gradient of each image's class
/// score w.r.t. the logits) down to the input, keeping the Grad-CAM layer's output gradient.
pub fn explain<E: Executor>(plan: &Plan, exec: &mut E, fwd: &Forward<E>, seed: E::Tensor) -> Result<Explained<E>> {
    let wanted = Wanted { input: true, layer_output: plan.grad_cam };
    let grads = backward(plan, exec, Mode::Infer, fwd, seed, wanted)?;
    let cam = match plan.grad_cam.zip(grads.layer_output) {
        Some((i, g)) => Some((fwd.input_of(i + 1)?.clone(), g)),
        None => None,
    };
    Ok(Explained { input_gradient: grads.input.expect("asked for"), cam })
}

/// The loss of `logits` (the executor keeps its statistics); returns the logit gradient.
pub fn loss<E: Executor>(exec: &mut E, logits: &E::Tensor) -> Result<E::Tensor> {
    exec.enter("loss", Pass::Loss);
    exec.cross_entropy(logits)
}

/// The class probabilities of `logits`.
pub fn probabilities<E: Executor>(exec: &mut E, logits: &E::Tensor) -> Result<E::Tensor> {
    exec.enter("probabilities", Pass::Loss);
    exec.probabilities(logits)
}

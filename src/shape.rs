//! The op contract: every operation's shapes and hyper-parameters and their checks, shared by the
//! CPU reference and the GPU kernels (neither imports the other).
//!
//! All image tensors are NCHW, row-major (the last index varies fastest).

use crate::error::{Error, Result};

/// Keras's padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding: the output shrinks by `kernel - 1` (before striding).
    Valid,
    /// Zero padding so that `out = ceil(in / stride)`; an odd total puts the extra row/column
    /// at the bottom/right, as TensorFlow does.
    Same,
}

/// Output size and leading padding of one spatial dimension.
pub fn conv_out_dim(input: usize, kernel: usize, stride: usize, padding: Padding) -> (usize, usize) {
    match padding {
        Padding::Valid => {
            if input < kernel {
                (0, 0)
            } else {
                ((input - kernel) / stride + 1, 0)
            }
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(input);
            (out, total / 2)
        }
    }
}

/// A 2-D convolution `y = conv(x, w) + b`.
/// `x`: [batch, in_channels, in_h, in_w]; `w`: [out_channels, in_channels, kernel_h, kernel_w];
/// `b`: \[out_channels\]; `y`: [batch, out_channels, out_h, out_w].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: Padding,
}

impl Conv2dShape {
    pub fn out_h(&self) -> usize {
        conv_out_dim(self.in_h, self.kernel_h, self.stride, self.padding).0
    }
    pub fn out_w(&self) -> usize {
        conv_out_dim(self.in_w, self.kernel_w, self.stride, self.padding).0
    }
    pub fn pad_top(&self) -> usize {
        conv_out_dim(self.in_h, self.kernel_h, self.stride, self.padding).1
    }
    pub fn pad_left(&self) -> usize {
        conv_out_dim(self.in_w, self.kernel_w, self.stride, self.padding).1
    }
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }
    pub fn weight_dims(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels, self.kernel_h, self.kernel_w]
    }
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h(), self.out_w()]
    }
    /// Multiply-adds of the forward pass times two.
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.batch * self.out_channels * self.out_h() * self.out_w()) as f64
            * (self.in_channels * self.kernel_h * self.kernel_w) as f64
    }
    pub fn validate(&self) -> Result<()> {
        let dims = [
            self.batch,
            self.in_channels,
            self.in_h,
            self.in_w,
            self.out_channels,
            self.kernel_h,
            self.kernel_w,
            self.stride,
        ];
        if dims.contains(&0) {
            return Err(Error::Invalid(format!("conv2d: every size must be positive, got {self:?}")));
        }
        if self.out_h() == 0 || self.out_w() == 0 {
            return Err(Error::Invalid(format!(
                "conv2d: a {}x{} kernel does not fit a {}x{} input with valid padding",
                self.kernel_h, self.kernel_w, self.in_h, self.in_w
            )));
        }
        Ok(())
    }
}

/// Max-pooling over `pool x pool` windows moved by `stride`, valid padding (Keras's default).
/// `x`: [batch, channels, in_h, in_w]; `y` and the saved argmax: [batch, channels, out_h, out_w].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub pool: usize,
    pub stride: usize,
}

impl Pool2dShape {
    pub fn out_h(&self) -> usize {
        conv_out_dim(self.in_h, self.pool, self.stride, Padding::Valid).0
    }
    pub fn out_w(&self) -> usize {
        conv_out_dim(self.in_w, self.pool, self.stride, Padding::Valid).0
    }
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.in_h, self.in_w]
    }
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_h(), self.out_w()]
    }
    pub fn validate(&self) -> Result<()> {
        if [self.batch, self.channels, self.in_h, self.in_w, self.pool, self.stride].contains(&0) {
            return Err(Error::Invalid(format!("max_pool2d: every size must be positive, got {self:?}")));
        }
        if self.out_h() == 0 || self.out_w() == 0 {
            return Err(Error::Invalid(format!(
                "max_pool2d: a {0}x{0} window does not fit a {1}x{2} input",
                self.pool, self.in_h, self.in_w
            )));
        }
        Ok(())
    }
}

/// A fully connected layer `y = x @ w + b` (Keras's layout).
/// `x`: [batch, inputs]; `w`: [inputs, outputs]; `b`: \[outputs\]; `y`: [batch, outputs].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DenseShape {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

impl DenseShape {
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.batch * self.inputs * self.outputs) as f64
    }
}

/// Batch normalisation over the channels of [batch, channels, spatial] (spatial = H*W, or 1 after a
/// dense layer). Statistics are taken over batch and spatial positions, per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchNormShape {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
}

impl BatchNormShape {
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails unless every size is positive, the element count fits the kernels' 32-bit indices,
    /// each of the `full` tensors (name, length) holds [`len`](Self::len) elements and each of the
    /// `per_channel` ones `channels`.
    pub fn check(&self, full: &[(&str, usize)], per_channel: &[(&str, usize)]) -> Result<()> {
        if self.batch == 0 || self.channels == 0 || self.spatial == 0 {
            return Err(Error::Invalid(format!("batch_norm: every size must be positive, got {self:?}")));
        }
        if u32::try_from(self.len()).is_err() {
            return Err(Error::Invalid(format!("batch_norm: {self:?} has more elements than 32-bit indices reach")));
        }
        let expected = full
            .iter()
            .map(|&(what, len)| (what, len, self.len()))
            .chain(per_channel.iter().map(|&(what, len)| (what, len, self.channels)));
        for (what, len, expected) in expected {
            if len != expected {
                return Err(Error::shape(
                    format!("batch_norm {what} for {self:?}"),
                    format!("{expected} elements"),
                    format!("{len} elements"),
                ));
            }
        }
        Ok(())
    }

    /// The checks of a forward pass: `config`, then the `full` tensors (name, length: x, and y
    /// where the caller allocated it) and the lengths of gamma, beta, running mean and variance.
    pub fn check_forward(
        &self,
        config: &BatchNormConfig,
        full: &[(&str, usize)],
        [gamma, beta, running_mean, running_var]: [usize; 4],
    ) -> Result<()> {
        config.validate()?;
        self.check(
            full,
            &[("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)],
        )
    }
}

/// Hyper-parameters of batch normalisation (Keras's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Running average: `running = momentum * running + (1 - momentum) * batch_stat`.
    pub momentum: f32,
    pub epsilon: f32,
}

impl BatchNormConfig {
    /// Fails unless the momentum lies in [0, 1] and epsilon is positive (so that a channel of zero
    /// variance still normalises to finite values).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.momentum) || self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return Err(Error::Invalid(format!(
                "batch_norm: momentum must lie in [0, 1] and epsilon be positive, got {self:?}"
            )));
        }
        Ok(())
    }
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self { momentum: 0.99, epsilon: 1e-3 }
    }
}

/// Hyper-parameters of one Adam step. Weight decay is decoupled (AdamW): `p -= lr * wd * p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    /// Keras's defaults.
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weight_decay: 0.0 }
    }
}

impl AdamConfig {
    /// The bias-corrected step size of step `step` (1-based, as Keras's `iterations + 1`), in f64:
    /// `lr * sqrt(1 - beta2^step) / (1 - beta1^step)`.
    pub fn alpha(&self, step: u64) -> Result<f64> {
        if step == 0 {
            return Err(Error::Invalid("adam: steps count from 1 (step 0 divides by 1 - beta1^0 = 0)".into()));
        }
        // powf: exact for the small integer steps where it matters, and no i32 overflow past 2^31.
        let t = step as f64;
        let (beta1, beta2) = (self.beta1 as f64, self.beta2 as f64);
        Ok(self.lr as f64 * (1.0 - beta2.powf(t)).sqrt() / (1.0 - beta1.powf(t)))
    }

    /// Fails unless the gradient and both moments (`others`: name, length) have `len` elements, as
    /// the parameters.
    pub fn check_lengths(len: usize, others: &[(&str, usize)]) -> Result<()> {
        for &(what, got) in others {
            if got != len {
                return Err(Error::shape(
                    format!("adam {what}"),
                    format!("{len} elements, as the parameters"),
                    format!("{got} elements"),
                ));
            }
        }
        Ok(())
    }
}

/// Dropout's rate and the key of one mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutConfig {
    /// Probability that an element is zeroed, in [0, 1).
    pub rate: f32,
    /// Seed of the run.
    pub seed: u64,
    /// Training step (or any counter): each step draws a new mask from the same seed.
    pub step: u32,
}

impl DropoutConfig {
    /// Checks the rate and that `len` elements can be indexed by the u32 the hash takes, and
    /// returns `len` as that u32.
    pub fn validate(&self, len: usize) -> Result<u32> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::Invalid(format!("dropout: the rate must be in [0, 1), got {}", self.rate)));
        }
        u32::try_from(len)
            .map_err(|_| Error::Invalid(format!("dropout: {len} elements, over the 2^32 the mask indexes")))
    }

    /// Elements whose hash is below this are dropped: `round(rate * 2^32)`, so the test is done in
    /// integers and the CPU and GPU cannot round it differently.
    pub fn threshold(&self) -> u32 {
        // Exact in f64; below 2^32 for any f32 rate < 1 (at most 1 - 2^-24).
        (f64::from(self.rate) * 4294967296.0).round() as u32
    }

    /// `1 / (1 - rate)` in f32, the factor both backends multiply kept elements by.
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.rate)
    }

    /// Whether element `index` is kept.
    pub fn keeps(&self, index: u32) -> bool {
        dropout_hash(self.seed, self.step, index) >= self.threshold()
    }
}

/// A uniform u32 for element `index` of the mask of (`seed`, `step`): the first word of pcg4d
/// (Jarzynski and Olano, "Hash Functions for GPU Rendering", JCGT 2020) of
/// (index, step, seed low word, seed high word). `shaders/dropout.wgsl` computes the same.
pub fn dropout_hash(seed: u64, step: u32, index: u32) -> u32 {
    let mut v =
        [index, step, seed as u32, (seed >> 32) as u32].map(|c| c.wrapping_mul(1664525).wrapping_add(1013904223));
    let mix = |v: &mut [u32; 4]| {
        v[0] = v[0].wrapping_add(v[1].wrapping_mul(v[3]));
        v[1] = v[1].wrapping_add(v[2].wrapping_mul(v[0]));
        v[2] = v[2].wrapping_add(v[0].wrapping_mul(v[1]));
        v[3] = v[3].wrapping_add(v[1].wrapping_mul(v[2]));
    };
    mix(&mut v);
    v = v.map(|c| c ^ (c >> 16));
    mix(&mut v);
    v[0]
}

/// Logits of shape [batch, classes], row-major. `classes == 1` means sigmoid + binary
/// cross-entropy (the label is the target, 0 or 1); `classes >= 2` softmax + categorical
/// cross-entropy (the label is the class index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LossShape {
    pub batch: usize,
    pub classes: usize,
}

impl LossShape {
    /// Whether this is the sigmoid + binary cross-entropy case.
    pub fn is_binary(&self) -> bool {
        self.classes == 1
    }

    /// Number of class weights and the bound on labels: two for a binary loss (targets 0 and 1).
    pub fn label_count(&self) -> usize {
        self.classes.max(2)
    }

    /// Checks that the sizes are positive and fit the kernels' u32 indices, and the logits' length.
    pub fn validate(&self, logits: usize) -> Result<()> {
        if self.batch == 0 || self.classes == 0 {
            return Err(Error::Invalid(format!("loss: batch and classes must be positive, got {self:?}")));
        }
        if self.batch.saturating_mul(self.classes) > u32::MAX as usize {
            return Err(Error::Invalid(format!("loss: {self:?} has more than 2^32 logits")));
        }
        check_loss_len(self, "logits", self.batch * self.classes, logits)
    }

    /// [`validate`](Self::validate), and the lengths of the labels and class weights.
    pub fn validate_with_labels(&self, logits: usize, labels: usize, class_weights: usize) -> Result<()> {
        self.validate(logits)?;
        check_loss_len(self, "labels", self.batch, labels)?;
        check_loss_len(self, "class weights", self.label_count(), class_weights)
    }
}

fn check_loss_len(shape: &LossShape, what: &str, want: usize, got: usize) -> Result<()> {
    if want != got {
        return Err(Error::shape(
            format!("loss {what} for {shape:?}"),
            format!("{want} elements"),
            format!("{got} elements"),
        ));
    }
    Ok(())
}

//! Shapes and hyper-parameters of the operations, shared by the CPU reference and the GPU kernels.
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
/// `b`: [out_channels]; `y`: [batch, out_channels, out_h, out_w].
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
/// `x`: [batch, inputs]; `w`: [inputs, outputs]; `b`: [outputs]; `y`: [batch, outputs].
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
}

/// Hyper-parameters of batch normalisation (Keras's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Running average: `running = momentum * running + (1 - momentum) * batch_stat`.
    pub momentum: f32,
    pub epsilon: f32,
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

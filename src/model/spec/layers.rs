//! The types of an architecture: its layers, its input, its parameters, and each layer's inferred
//! shapes.

use std::fmt;
use std::str::FromStr;

use super::cursor::Cursor;
use crate::shape::Padding;
use crate::{Error, Result};

/// One layer of a sequential model.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// 2-D convolution with bias, square kernel, optionally followed by ReLU.
    Conv2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
        relu: bool,
    },
    /// Max-pooling over square windows, valid padding.
    MaxPool2d {
        pool: usize,
        stride: usize,
    },
    /// Batch normalisation over the channels (after a convolution) or the features (after a dense layer).
    BatchNorm,
    Relu,
    /// Channels x height x width to one flat vector, in that (NCHW) order.
    Flatten,
    /// Fully connected layer with bias, optionally followed by ReLU. The last layer is always a linear
    /// dense layer: the output head.
    Dense {
        units: usize,
        relu: bool,
    },
    /// Inverted dropout with `rate` in [0, 1) (identity at inference).
    Dropout {
        rate: f32,
    },
}

/// Declares [`LayerKind`] and [`LayerKind::ALL`] from one list, so that `ALL` cannot miss a kind.
macro_rules! layer_kinds {
    ($($kind:ident),* $(,)?) => {
        /// What a [`LayerSpec`] is, without its parameters: one per variant, each defined (its token,
        /// its shape inference) in its own module of `spec::kinds`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum LayerKind {
            $($kind),*
        }

        impl LayerKind {
            /// Every kind, in the order the grammar lists them.
            pub const ALL: &'static [LayerKind] = &[$(LayerKind::$kind),*];
        }
    };
}

layer_kinds!(Conv2d, MaxPool2d, BatchNorm, Relu, Flatten, Dense, Dropout);

/// A layer kind's token, names and role, as its module in `spec::kinds` defines them.
pub(super) struct Definition {
    /// What its tokens start with: `c`, `drop`.
    pub prefix: &'static str,
    /// What follows the prefix.
    pub grammar: Grammar,
    /// The token's syntax as the docs write it: `d<units>[lin]`.
    pub syntax: &'static str,
    /// What the layer is, after its syntax in the docs: `dense`, `batch norm`.
    pub title: &'static str,
    /// Canonical tokens, each printed back as written.
    pub examples: &'static [&'static str],
    /// The first part of its Keras-like layer names: `conv` of `conv1`.
    pub name: &'static str,
    /// The Keras class, for the summary.
    pub keras_type: &'static str,
    /// Whether its output is a learned spatial feature map, what Grad-CAM weighs.
    pub learns_feature_maps: bool,
}

/// What follows a kind's prefix in its token.
pub(super) enum Grammar {
    /// Nothing: the token is the prefix alone (`bn`).
    Word(LayerSpec),
    /// Parameters read from what follows the prefix; None when they are not of the kind's form.
    Parameters(fn(&mut Cursor) -> Option<LayerSpec>),
}

/// The shape of one input sample: channels x height x width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// A sequential model: its input shape and its layers, ending with a dense output head whose logits
/// go through a sigmoid (1 unit, binary cross-entropy) or a softmax (2 or more, categorical cross-entropy).
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    pub input: InputShape,
    pub layers: Vec<LayerSpec>,
}

/// How a parameter starts, as Keras's defaults for its layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform in `[-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform {
        fan_in: usize,
        fan_out: usize,
    },
    Zeros,
    Ones,
}

/// One parameter (or running statistic) of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// `<layer>.<role>`, e.g. `conv1.weight`, `bn1.running_var`.
    pub name: String,
    pub shape: Vec<usize>,
    /// False for batch normalisation's running statistics, which Adam does not update.
    pub trainable: bool,
    pub init: Init,
}

/// One layer with its inferred shapes and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// Keras-like: `conv1`, `pool1`, `bn1`, `relu1`, `flatten1`, `dense1`, `dropout1`.
    pub name: String,
    pub spec: LayerSpec,
    /// Per-sample shapes: [channels, height, width] or \[features\].
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub params: Vec<ParamInfo>,
}

impl InputShape {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width }
    }

    /// Values per sample: channels * height * width.
    pub fn elements(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl fmt::Display for InputShape {
    /// `CxHxW`, e.g. `3x256x256`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

impl FromStr for InputShape {
    type Err = Error;

    /// Parses `CxHxW`, e.g. `1x48x48`.
    fn from_str(text: &str) -> Result<Self> {
        let sizes: Option<Vec<usize>> = text.split('x').map(|part| part.parse().ok()).collect();
        match sizes.as_deref() {
            Some(&[channels, height, width]) => Ok(Self { channels, height, width }),
            _ => Err(Error::Invalid(format!(
                "input shape {text:?}: expected channels x height x width as CxHxW, e.g. 3x256x256"
            ))),
        }
    }
}

impl ParamInfo {
    /// Number of values.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

impl Architecture {
    /// The same layers on another input size (check it with [`Architecture::layers_info`]).
    pub fn with_input(self, input: InputShape) -> Architecture {
        Architecture { input, ..self }
    }

    /// The same architecture with an output head for `classes` classes: one sigmoid unit for two,
    /// a softmax unit per class for more. Errors when the last layer is not a dense layer or
    /// `classes` is under 2.
    pub fn with_classes(mut self, classes: usize) -> Result<Architecture> {
        let units = if classes == 2 { 1 } else { classes };
        match self.layers.last_mut() {
            Some(LayerSpec::Dense { units: head, .. }) if classes >= 2 => {
                *head = units;
                Ok(self)
            }
            _ => Err(Error::Invalid(format!(
                "architecture {self}: cannot give it a head for {classes} classes (it needs a final dense layer and 2 or more classes)"
            ))),
        }
    }

    /// Units of the output head: 1 for a binary (sigmoid) model, else the classes (softmax); 0 when
    /// the last layer is not dense (an invalid architecture, which [`Architecture::layers_info`] reports).
    pub fn outputs(&self) -> usize {
        match self.layers.last() {
            Some(LayerSpec::Dense { units, .. }) => *units,
            _ => 0,
        }
    }

    /// Number of classes: the head's units, or 2 for a binary model's single sigmoid output.
    pub fn classes(&self) -> usize {
        self.outputs().max(2)
    }
}

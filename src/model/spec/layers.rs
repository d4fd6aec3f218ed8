//! The types of an architecture: its input and its layers, and each layer's inferred shapes.

use std::fmt;
use std::str::FromStr;

use super::kinds::{Dense, LayerSpec};
use super::params::ParamInfo;
use crate::{Error, Result};

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
            Some(LayerSpec::Dense(Dense { units: head, .. })) if classes >= 2 => {
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
            Some(LayerSpec::Dense(Dense { units, .. })) => *units,
            _ => 0,
        }
    }

    /// Number of classes: the head's units, or 2 for a binary model's single sigmoid output.
    pub fn classes(&self) -> usize {
        self.outputs().max(2)
    }
}

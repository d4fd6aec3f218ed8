//! The layer kinds, one module each: its token (written and read), its names and its shape
//! inference. The exhaustive matches here tie each [`LayerSpec`] variant to its [`LayerKind`] and
//! its module, so a new variant does not compile until it has all three; the tests walk
//! [`LayerKind::ALL`] to check that each kind parses, prints back and runs on every backend.

mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod max_pool2d;
mod relu;

use super::infer::LayerOutput;
use super::layers::{Definition, Grammar, LayerKind, LayerSpec};

impl LayerKind {
    pub(super) fn definition(self) -> &'static Definition {
        match self {
            LayerKind::Conv2d => &conv2d::DEFINITION,
            LayerKind::MaxPool2d => &max_pool2d::DEFINITION,
            LayerKind::BatchNorm => &batch_norm::DEFINITION,
            LayerKind::Relu => &relu::DEFINITION,
            LayerKind::Flatten => &flatten::DEFINITION,
            LayerKind::Dense => &dense::DEFINITION,
            LayerKind::Dropout => &dropout::DEFINITION,
        }
    }

    /// The token's syntax as the docs write it: `d<units>[lin]`, `bn`.
    pub fn syntax(self) -> &'static str {
        self.definition().syntax
    }

    /// What the layer is, as the docs name it after its syntax: `dense`, `batch norm`.
    pub fn title(self) -> &'static str {
        self.definition().title
    }

    /// Canonical tokens of the kind, each printed back as written: `c32`, `c32x5s2same`.
    pub fn examples(self) -> &'static [&'static str] {
        self.definition().examples
    }

    /// The token's form as parse errors give it: `d<units>[lin], e.g. d128`; `bn (batch norm)`.
    pub fn form(self) -> String {
        let definition = self.definition();
        match definition.grammar {
            Grammar::Word(_) => format!("{} ({})", definition.syntax, definition.title),
            Grammar::Parameters(_) => format!("{}, e.g. {}", definition.syntax, definition.examples.join(" or ")),
        }
    }

    /// Whether its output is a learned spatial feature map, what Grad-CAM weighs: a convolution's.
    pub fn learns_feature_maps(self) -> bool {
        self.definition().learns_feature_maps
    }
}

impl LayerSpec {
    pub fn kind(&self) -> LayerKind {
        match self {
            LayerSpec::Conv2d { .. } => LayerKind::Conv2d,
            LayerSpec::MaxPool2d { .. } => LayerKind::MaxPool2d,
            LayerSpec::BatchNorm => LayerKind::BatchNorm,
            LayerSpec::Relu => LayerKind::Relu,
            LayerSpec::Flatten => LayerKind::Flatten,
            LayerSpec::Dense { .. } => LayerKind::Dense,
            LayerSpec::Dropout { .. } => LayerKind::Dropout,
        }
    }

    /// The layer's token in a spec string. The head is written without `lin`: the last layer is
    /// linear by definition.
    pub(super) fn token(&self, is_head: bool) -> String {
        match *self {
            LayerSpec::Conv2d { filters, kernel, stride, padding, relu } => {
                conv2d::token(filters, kernel, stride, padding, relu)
            }
            LayerSpec::MaxPool2d { pool, stride } => max_pool2d::token(pool, stride),
            LayerSpec::Dense { units, relu } => dense::token(units, relu, is_head),
            LayerSpec::Dropout { rate } => dropout::token(rate),
            LayerSpec::BatchNorm | LayerSpec::Relu | LayerSpec::Flatten => self.kind().definition().prefix.into(),
        }
    }

    /// The layer's output shape and parameters (named `<name>.<role>`) for a per-sample `input`
    /// shape; the error is the reason.
    pub(super) fn infer(&self, name: &str, input: &[usize], is_head: bool) -> Result<LayerOutput, String> {
        match *self {
            LayerSpec::Conv2d { filters, kernel, stride, padding, .. } => {
                conv2d::infer(name, input, filters, kernel, stride, padding)
            }
            LayerSpec::MaxPool2d { pool, stride } => max_pool2d::infer(input, pool, stride),
            LayerSpec::BatchNorm => Ok(batch_norm::infer(name, input)),
            LayerSpec::Relu => Ok(LayerOutput { shape: input.to_vec(), params: Vec::new() }),
            LayerSpec::Flatten => flatten::infer(input),
            LayerSpec::Dense { units, relu } => dense::infer(name, input, units, relu, is_head),
            LayerSpec::Dropout { rate } => dropout::infer(input, rate),
        }
    }
}

//! `bn`: batch normalisation over the channels (after a convolution) or the features (after a
//! dense layer).

use super::super::infer::{LayerOutput, param};
use super::super::layers::{Definition, Grammar, Init, LayerSpec};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "bn",
    grammar: Grammar::Word(LayerSpec::BatchNorm),
    syntax: "bn",
    title: "batch norm",
    examples: &["bn"],
    name: "bn",
    keras_type: "BatchNormalization",
    learns_feature_maps: false,
};

/// The input's shape, with gamma, beta and the running statistics (frozen) per channel or feature.
pub(super) fn infer(name: &str, input: &[usize]) -> LayerOutput {
    // Channels of [C, H, W] or features of [N]: the first dimension either way.
    let features = vec![input[0]];
    LayerOutput {
        shape: input.to_vec(),
        params: vec![
            param(name, "gamma", features.clone(), true, Init::Ones),
            param(name, "beta", features.clone(), true, Init::Zeros),
            param(name, "running_mean", features.clone(), false, Init::Zeros),
            param(name, "running_var", features, false, Init::Ones),
        ],
    }
}

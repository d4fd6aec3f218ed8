//! `r`: ReLU, on its own (convolutions and dense layers fuse theirs).

use super::super::layers::{Definition, Grammar, LayerSpec};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "r",
    grammar: Grammar::Word(LayerSpec::Relu),
    syntax: "r",
    title: "ReLU",
    examples: &["r"],
    name: "relu",
    keras_type: "ReLU",
    learns_feature_maps: false,
};

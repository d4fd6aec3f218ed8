//! `f`: channels x height x width to one flat vector, in that (NCHW) order.

use super::super::infer::{LayerOutput, checked_elements, dims};
use super::super::layers::{Definition, Grammar, LayerSpec};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "f",
    grammar: Grammar::Word(LayerSpec::Flatten),
    syntax: "f",
    title: "flatten",
    examples: &["f"],
    name: "flatten",
    keras_type: "Flatten",
    learns_feature_maps: false,
};

/// [channels * height * width] of a spatial input.
pub(super) fn infer(input: &[usize]) -> Result<LayerOutput, String> {
    if input.len() == 1 {
        return Err(format!("its input {} is already flat", dims(input)));
    }
    Ok(LayerOutput { shape: vec![checked_elements(input)?], params: Vec::new() })
}

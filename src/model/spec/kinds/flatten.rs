//! `f`: channels x height x width to one flat vector, in that (NCHW) order.

use super::checks::{checked_elements, dims};
use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{Op, OpSite};

/// Channels x height x width to one flat vector, in that (NCHW) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten;

impl Kind for Flatten {
    const DEFINITION: Definition = Definition {
        prefix: "f",
        grammar: Grammar::Word(LayerSpec::Flatten(Flatten)),
        syntax: "f",
        title: "flatten",
        examples: &["f"],
        name: "flatten",
        keras_type: "Flatten",
        learns_feature_maps: false,
    };

    /// [channels * height * width] of a spatial input.
    fn infer(&self, _name: &str, input: &[usize], _is_head: bool) -> Result<LayerOutput, String> {
        if input.len() == 1 {
            return Err(format!("its input {} is already flat", dims(input)));
        }
        Ok(LayerOutput { shape: vec![checked_elements(input)?], params: Vec::new() })
    }

    fn op(&self, _input: &[usize], _output: &[usize], _site: OpSite) -> Result<Op, String> {
        Ok(Op::Flatten)
    }
}

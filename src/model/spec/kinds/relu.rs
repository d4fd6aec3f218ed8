//! `r`: ReLU, on its own (convolutions and dense layers fuse theirs).

use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{Op, OpSite};

/// ReLU on its own layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relu;

impl Kind for Relu {
    const DEFINITION: Definition = Definition {
        prefix: "r",
        grammar: Grammar::Word(LayerSpec::Relu(Relu)),
        syntax: "r",
        title: "ReLU",
        examples: &["r"],
        name: "relu",
        keras_type: "ReLU",
        learns_feature_maps: false,
    };

    fn infer(&self, _name: &str, input: &[usize], _is_head: bool) -> Result<LayerOutput, String> {
        Ok(LayerOutput::unchanged(input))
    }

    fn op(&self, _input: &[usize], _output: &[usize], _site: OpSite) -> Result<Op, String> {
        Ok(Op::Relu)
    }
}

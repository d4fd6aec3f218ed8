//! `drop<rate>`: inverted dropout with `rate` in [0, 1), the identity at inference.

use super::super::cursor::Cursor;
use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{Op, OpSite};
use crate::shape::DropoutConfig;

/// Inverted dropout with `rate` in [0, 1) (identity at inference).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub rate: f32,
}

/// After `drop`: the rate, the rest of the token.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    cursor.rest().map(|rate| Dropout { rate }.into())
}

impl Kind for Dropout {
    const DEFINITION: Definition = Definition {
        prefix: "drop",
        grammar: Grammar::Parameters(parse),
        syntax: "drop<rate>",
        title: "dropout",
        examples: &["drop0.5"],
        name: "dropout",
        keras_type: "Dropout",
        learns_feature_maps: false,
    };

    fn token(&self, _is_head: bool) -> String {
        format!("drop{}", self.rate)
    }

    /// The input's shape, no parameters.
    fn infer(&self, _name: &str, input: &[usize], _is_head: bool) -> Result<LayerOutput, String> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(format!("rate {} is outside [0, 1)", self.rate));
        }
        Ok(LayerOutput::unchanged(input))
    }

    /// Its masks drawn from the layer's seed and the step.
    fn op(&self, _input: &[usize], _output: &[usize], site: OpSite) -> Result<Op, String> {
        Ok(Op::Dropout { config: DropoutConfig { rate: self.rate, seed: site.seed, step: 0 } })
    }
}

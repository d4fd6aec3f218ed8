//! `drop<rate>`: inverted dropout with `rate` in [0, 1), the identity at inference.

use super::super::cursor::Cursor;
use super::super::infer::LayerOutput;
use super::super::layers::{Definition, Grammar, LayerSpec};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "drop",
    grammar: Grammar::Parameters(parse),
    syntax: "drop<rate>",
    title: "dropout",
    examples: &["drop0.5"],
    name: "dropout",
    keras_type: "Dropout",
    learns_feature_maps: false,
};

/// After `drop`: the rate, the rest of the token.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    cursor.rest().map(|rate| LayerSpec::Dropout { rate })
}

pub(super) fn token(rate: f32) -> String {
    format!("drop{rate}")
}

/// The input's shape, no parameters.
pub(super) fn infer(input: &[usize], rate: f32) -> Result<LayerOutput, String> {
    if !(0.0..1.0).contains(&rate) {
        return Err(format!("rate {rate} is outside [0, 1)"));
    }
    Ok(LayerOutput { shape: input.to_vec(), params: Vec::new() })
}

//! `d<units>[lin]`: fully connected with bias, followed by ReLU unless `lin` or it is the output
//! head, the last layer, whose logits are linear.

use super::super::cursor::Cursor;
use super::super::infer::{LayerOutput, checked_elements, dims, param};
use super::super::layers::{Definition, Grammar, Init, LayerSpec};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "d",
    grammar: Grammar::Parameters(parse),
    syntax: "d<units>[lin]",
    title: "dense",
    examples: &["d128"],
    name: "dense",
    keras_type: "Dense",
    learns_feature_maps: false,
};

/// After `d`: `<units>[lin]`.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    let units = cursor.number()?;
    let relu = !cursor.eat("lin");
    Some(LayerSpec::Dense { units, relu })
}

/// The token; the head is written without `lin`, being linear by definition.
pub(super) fn token(units: usize, relu: bool, is_head: bool) -> String {
    if relu || is_head { format!("d{units}") } else { format!("d{units}lin") }
}

/// [units] with a weight [inputs, units] and a bias, of a flat input.
pub(super) fn infer(
    name: &str,
    input: &[usize],
    units: usize,
    relu: bool,
    is_head: bool,
) -> Result<LayerOutput, String> {
    let &[inputs] = input else {
        return Err(format!("expects a flat input: add `f` before it (its input is {})", dims(input)));
    };
    if units == 0 {
        return Err("units must be positive".into());
    }
    if is_head && relu {
        return Err("is the output head: its logits must be linear, without ReLU".into());
    }
    let weight = vec![inputs, units];
    checked_elements(&weight)?;
    Ok(LayerOutput {
        shape: vec![units],
        params: vec![
            param(name, "weight", weight, true, Init::GlorotUniform { fan_in: inputs, fan_out: units }),
            param(name, "bias", vec![units], true, Init::Zeros),
        ],
    })
}

//! `d<units>[lin]`: fully connected with bias, followed by ReLU unless `lin` or it is the output
//! head, the last layer, whose logits are linear.

use super::super::cursor::Cursor;
use super::super::params::{Init, ParamInfo};
use super::checks::{checked_elements, dims};
use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{Op, OpSite};
use crate::shape::DenseShape;

/// Fully connected layer with bias, optionally followed by ReLU. The last layer is always a linear
/// dense layer: the output head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    pub units: usize,
    pub relu: bool,
}

/// After `d`: `<units>[lin]`.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    let units = cursor.number()?;
    let relu = !cursor.eat("lin");
    Some(Dense { units, relu }.into())
}

impl Kind for Dense {
    const DEFINITION: Definition = Definition {
        prefix: "d",
        grammar: Grammar::Parameters(parse),
        syntax: "d<units>[lin]",
        title: "dense",
        examples: &["d128"],
        name: "dense",
        keras_type: "Dense",
        learns_feature_maps: false,
    };

    /// The head is written without `lin`, being linear by definition.
    fn token(&self, is_head: bool) -> String {
        let units = self.units;
        if self.relu || is_head { format!("d{units}") } else { format!("d{units}lin") }
    }

    /// [units] with a weight [inputs, units] and a bias, of a flat input.
    fn infer(&self, name: &str, input: &[usize], is_head: bool) -> Result<LayerOutput, String> {
        let Dense { units, relu } = *self;
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
                ParamInfo::new(name, "weight", weight, true, Init::GlorotUniform { fan_in: inputs, fan_out: units }),
                ParamInfo::new(name, "bias", vec![units], true, Init::Zeros),
            ],
        })
    }

    fn op(&self, input: &[usize], output: &[usize], site: OpSite) -> Result<Op, String> {
        let shape = DenseShape { batch: site.batch, inputs: input.iter().product(), outputs: output.iter().product() };
        Ok(Op::Dense { shape, relu: self.relu, weight: site.first_param, bias: site.first_param + 1 })
    }
}

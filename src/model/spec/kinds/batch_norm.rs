//! `bn`: batch normalisation over the channels (after a convolution) or the features (after a
//! dense layer).

use super::super::params::{Init, ParamInfo};
use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{BatchNormParams, Op, OpSite};
use crate::shape::BatchNormShape;

/// Batch normalisation over the first per-sample dimension: the channels after a convolution, the
/// features after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNorm;

impl Kind for BatchNorm {
    const DEFINITION: Definition = Definition {
        prefix: "bn",
        grammar: Grammar::Word(LayerSpec::BatchNorm(BatchNorm)),
        syntax: "bn",
        title: "batch norm",
        examples: &["bn"],
        name: "bn",
        keras_type: "BatchNormalization",
        learns_feature_maps: false,
    };

    /// The input's shape, with gamma, beta and the running statistics (frozen) per channel or
    /// feature.
    fn infer(&self, name: &str, input: &[usize], _is_head: bool) -> Result<LayerOutput, String> {
        // Channels of [C, H, W] or features of [N]: the first dimension either way.
        let features = vec![input[0]];
        Ok(LayerOutput {
            shape: input.to_vec(),
            params: vec![
                ParamInfo::new(name, "gamma", features.clone(), true, Init::Ones),
                ParamInfo::new(name, "beta", features.clone(), true, Init::Zeros),
                ParamInfo::new(name, "running_mean", features.clone(), false, Init::Zeros),
                ParamInfo::new(name, "running_var", features, false, Init::Ones),
            ],
        })
    }

    /// Its parameters in the order its shape inference gives them.
    fn op(&self, input: &[usize], _output: &[usize], site: OpSite) -> Result<Op, String> {
        let p = site.first_param;
        Ok(Op::BatchNorm {
            shape: BatchNormShape { batch: site.batch, channels: input[0], spatial: input[1..].iter().product() },
            params: BatchNormParams { gamma: p, beta: p + 1, running_mean: p + 2, running_var: p + 3 },
        })
    }
}

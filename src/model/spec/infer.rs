//! Shape inference over the layers (each kind's own is in its module of `kinds`), Keras-like layer
//! names, and the parameters' initial values as Keras's default initialisers draw them.

use std::collections::HashMap;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::layers::{Architecture, Init, InputShape, LayerInfo, LayerSpec, ParamInfo};
use crate::model::weights::NamedTensor;
use crate::{Error, Result};

/// Every tensor's elements must be indexable by the u32 the kernels use.
const MAX_TENSOR_ELEMENTS: usize = u32::MAX as usize;

/// What a kind's shape inference finds.
pub(super) struct LayerOutput {
    pub shape: Vec<usize>,
    pub params: Vec<ParamInfo>,
}

/// Parameter `<layer>.<role>`.
pub(super) fn param(layer: &str, role: &str, shape: Vec<usize>, trainable: bool, init: Init) -> ParamInfo {
    ParamInfo { name: format!("{layer}.{role}"), shape, trainable, init }
}

/// `input` as channels, height, width, or why `what` cannot take it.
pub(super) fn spatial(input: &[usize], what: &str) -> std::result::Result<(usize, usize, usize), String> {
    match *input {
        [channels, height, width] => Ok((channels, height, width)),
        _ => Err(format!(
            "{what} needs a channels x height x width input, got the flat {} (it cannot follow `f` or a dense layer)",
            dims(input)
        )),
    }
}

/// Elements of `shape`, or why it is too large.
pub(super) fn checked_elements(shape: &[usize]) -> std::result::Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |product, &d| product.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| format!("a tensor of shape {} is over the 2^32 elements the kernels index", dims(shape)))
}

/// `16x254x254`.
pub(super) fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

impl Architecture {
    /// Every layer with its name, per-sample shapes and parameters; or the first layer that does not
    /// fit, named, with the reason.
    pub fn layers_info(&self) -> Result<Vec<LayerInfo>> {
        let invalid = |reason: String| Error::Invalid(format!("architecture {self} (input {}): {reason}", self.input));
        let InputShape { channels, height, width } = self.input;
        if channels == 0 || height == 0 || width == 0 {
            return Err(invalid("channels, height and width of the input must be positive".into()));
        }
        match self.layers.last() {
            Some(LayerSpec::Dense { .. }) => {}
            Some(last) => {
                return Err(invalid(format!(
                    "the last layer must be the dense output head (e.g. `d1` or `d3`), not `{last}`"
                )));
            }
            None => return Err(invalid("no layers: it must end with a dense output head (e.g. `d1` or `d3`)".into())),
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut shape = vec![channels, height, width];
        let mut infos = Vec::with_capacity(self.layers.len());
        for (index, spec) in self.layers.iter().enumerate() {
            let prefix = spec.kind().definition().name;
            let count = counts.entry(prefix).or_default();
            *count += 1;
            let name = format!("{prefix}{count}");
            let is_head = index + 1 == self.layers.len();
            let LayerOutput { shape: output, params } = spec.infer(&name, &shape, is_head).map_err(|reason| {
                invalid(format!("layer {} {name} (`{}`): {reason}", index + 1, spec.token(is_head)))
            })?;
            infos.push(LayerInfo { name, spec: spec.clone(), input: shape, output: output.clone(), params });
            shape = output;
        }
        Ok(infos)
    }

    /// Every parameter and running statistic, in layer order.
    pub fn params(&self) -> Result<Vec<ParamInfo>> {
        Ok(self.layers_info()?.into_iter().flat_map(|layer| layer.params).collect())
    }

    /// Parameters as Keras initialises them (Glorot uniform weights, zero biases, batch norm's gamma 1,
    /// beta 0, running mean 0, running variance 1), in [`Architecture::params`] order, the same for the
    /// same seed.
    pub fn initial_weights(&self, seed: u64) -> Result<Vec<NamedTensor>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let tensors = self
            .params()?
            .into_iter()
            .map(|param| {
                let len = param.elements();
                let data = match param.init {
                    Init::GlorotUniform { fan_in, fan_out } => {
                        let limit = (6.0 / (fan_in as f64 + fan_out as f64)).sqrt() as f32;
                        (0..len).map(|_| rng.random_range(-limit..limit)).collect()
                    }
                    Init::Zeros => vec![0.0; len],
                    Init::Ones => vec![1.0; len],
                };
                NamedTensor { name: param.name, shape: param.shape, data }
            })
            .collect();
        Ok(tensors)
    }
}

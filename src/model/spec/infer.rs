//! Shape inference over the layers (each kind's own is in its module of `kinds`), Keras-like layer
//! names, and the parameters' initial values as Keras's default initialisers draw them.

use std::collections::HashMap;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::kinds::{LayerOutput, LayerSpec};
use super::layers::{Architecture, InputShape, LayerInfo};
use super::params::{Init, ParamInfo};
use crate::model::weights::NamedTensor;
use crate::{Error, Result};

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
            Some(LayerSpec::Dense(_)) => {}
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

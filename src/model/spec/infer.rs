//! Shape inference: each layer's output shape and parameters, Keras-like layer names, and the
//! parameters' initial values as Keras's default initialisers draw them.

use std::collections::HashMap;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::layers::{Architecture, Init, InputShape, LayerInfo, LayerSpec, ParamInfo};
use crate::model::weights::NamedTensor;
use crate::shape::{Padding, conv_out_dim};
use crate::{Error, Result};

/// Every tensor's elements must be indexable by the u32 the kernels use.
const MAX_TENSOR_ELEMENTS: usize = u32::MAX as usize;

impl LayerSpec {
    /// The first part of the layer's Keras-like name.
    fn name_prefix(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv",
            LayerSpec::MaxPool2d { .. } => "pool",
            LayerSpec::BatchNorm => "bn",
            LayerSpec::Relu => "relu",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Dropout { .. } => "dropout",
        }
    }

    /// The layer's output shape and parameters for a per-sample `input` shape; the error is the reason.
    fn infer(&self, name: &str, input: &[usize], is_head: bool) -> std::result::Result<LayerOutput, String> {
        let param = |role: &str, shape: Vec<usize>, trainable: bool, init: Init| ParamInfo {
            name: format!("{name}.{role}"),
            shape,
            trainable,
            init,
        };
        match *self {
            LayerSpec::Conv2d { filters, kernel, stride, padding, .. } => {
                let (channels, height, width) = spatial(input, "a convolution")?;
                if filters == 0 || kernel == 0 || stride == 0 {
                    return Err(format!(
                        "filters, kernel and stride must be positive, got {filters}, {kernel} and {stride}"
                    ));
                }
                // Bounds the kernel before the output size is computed from it.
                let weight = vec![filters, channels, kernel, kernel];
                checked_elements(&weight)?;
                let (out_h, _) = conv_out_dim(height, kernel, stride, padding);
                let (out_w, _) = conv_out_dim(width, kernel, stride, padding);
                if out_h == 0 || out_w == 0 {
                    return Err(format!(
                        "a {kernel}x{kernel} kernel does not fit its {height}x{width} input with valid padding \
                         (use a smaller kernel or `same`)"
                    ));
                }
                let window = kernel * kernel;
                let glorot = Init::GlorotUniform { fan_in: channels * window, fan_out: filters * window };
                Ok(LayerOutput {
                    shape: vec![filters, out_h, out_w],
                    params: vec![
                        param("weight", weight, true, glorot),
                        param("bias", vec![filters], true, Init::Zeros),
                    ],
                })
            }
            LayerSpec::MaxPool2d { pool, stride } => {
                let (channels, height, width) = spatial(input, "max-pooling")?;
                if pool == 0 || stride == 0 {
                    return Err(format!("pool size and stride must be positive, got {pool} and {stride}"));
                }
                let (out_h, _) = conv_out_dim(height, pool, stride, Padding::Valid);
                let (out_w, _) = conv_out_dim(width, pool, stride, Padding::Valid);
                if out_h == 0 || out_w == 0 {
                    return Err(format!("a {pool}x{pool} window does not fit its {height}x{width} input"));
                }
                Ok(LayerOutput { shape: vec![channels, out_h, out_w], params: Vec::new() })
            }
            LayerSpec::BatchNorm => {
                // Channels of [C, H, W] or features of [N]: the first dimension either way.
                let features = vec![input[0]];
                Ok(LayerOutput {
                    shape: input.to_vec(),
                    params: vec![
                        param("gamma", features.clone(), true, Init::Ones),
                        param("beta", features.clone(), true, Init::Zeros),
                        param("running_mean", features.clone(), false, Init::Zeros),
                        param("running_var", features, false, Init::Ones),
                    ],
                })
            }
            LayerSpec::Relu => Ok(LayerOutput { shape: input.to_vec(), params: Vec::new() }),
            LayerSpec::Flatten => {
                if input.len() == 1 {
                    return Err(format!("its input {} is already flat", dims(input)));
                }
                Ok(LayerOutput { shape: vec![checked_elements(input)?], params: Vec::new() })
            }
            LayerSpec::Dense { units, relu } => {
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
                        param("weight", weight, true, Init::GlorotUniform { fan_in: inputs, fan_out: units }),
                        param("bias", vec![units], true, Init::Zeros),
                    ],
                })
            }
            LayerSpec::Dropout { rate } => {
                if !(0.0..1.0).contains(&rate) {
                    return Err(format!("rate {rate} is outside [0, 1)"));
                }
                Ok(LayerOutput { shape: input.to_vec(), params: Vec::new() })
            }
        }
    }
}

/// What [`LayerSpec::infer`] finds.
struct LayerOutput {
    shape: Vec<usize>,
    params: Vec<ParamInfo>,
}

/// `input` as channels, height, width, or why `what` cannot take it.
fn spatial(input: &[usize], what: &str) -> std::result::Result<(usize, usize, usize), String> {
    match *input {
        [channels, height, width] => Ok((channels, height, width)),
        _ => Err(format!(
            "{what} needs a channels x height x width input, got the flat {} (it cannot follow `f` or a dense layer)",
            dims(input)
        )),
    }
}

/// Elements of `shape`, or why it is too large.
fn checked_elements(shape: &[usize]) -> std::result::Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |product, &d| product.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| format!("a tensor of shape {} is over the 2^32 elements the kernels index", dims(shape)))
}

/// `16x254x254`.
fn dims(shape: &[usize]) -> String {
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
            let count = counts.entry(spec.name_prefix()).or_default();
            *count += 1;
            let name = format!("{}{count}", spec.name_prefix());
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

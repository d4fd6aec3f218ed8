//! Architectures as data: a sequential stack of layers written as a short spec string
//! (`c16-p-c32-p-f-d256-d1`), with shape inference, Keras-like layer and parameter names, Keras's
//! default initialisers and a `model.summary()`-like table.
//!
//! Spec tokens, joined by `-`:
//! - `c<filters>[x<kernel>][s<stride>][same][lin]`: 2-D convolution, kernel 3, stride 1, valid padding
//!   and ReLU unless told (`c32x5s2same`);
//! - `p[<size>[s<stride>]]`: max-pooling, size 2, stride = size;
//! - `bn`: batch normalisation; `r`: ReLU; `f`: flatten;
//! - `d<units>[lin]`: dense with ReLU, except the last layer, which must be dense and is the linear
//!   output head (1 unit: sigmoid and binary cross-entropy; 2 or more: softmax and categorical
//!   cross-entropy);
//! - `drop<rate>`: dropout (`drop0.5`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::model::weights::NamedTensor;
use crate::shape::{Padding, conv_out_dim};
use crate::{Error, Result};

/// One layer of a sequential model.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// 2-D convolution with bias, square kernel, optionally followed by ReLU.
    Conv2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
        relu: bool,
    },
    /// Max-pooling over square windows, valid padding.
    MaxPool2d {
        pool: usize,
        stride: usize,
    },
    /// Batch normalisation over the channels (after a convolution) or the features (after a dense layer).
    BatchNorm,
    Relu,
    /// Channels x height x width to one flat vector, in that (NCHW) order.
    Flatten,
    /// Fully connected layer with bias, optionally followed by ReLU. The last layer is always a linear
    /// dense layer: the output head.
    Dense {
        units: usize,
        relu: bool,
    },
    /// Inverted dropout with `rate` in [0, 1) (identity at inference).
    Dropout {
        rate: f32,
    },
}

/// The shape of one input sample: channels x height x width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// A sequential model: its input shape and its layers, ending with a dense output head whose logits
/// go through a sigmoid (1 unit, binary cross-entropy) or a softmax (2 or more, categorical cross-entropy).
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    pub input: InputShape,
    pub layers: Vec<LayerSpec>,
}

/// How a parameter starts, as Keras's defaults for its layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform in `[-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform {
        fan_in: usize,
        fan_out: usize,
    },
    Zeros,
    Ones,
}

/// One parameter (or running statistic) of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// `<layer>.<role>`, e.g. `conv1.weight`, `bn1.running_var`.
    pub name: String,
    pub shape: Vec<usize>,
    /// False for batch normalisation's running statistics, which Adam does not update.
    pub trainable: bool,
    pub init: Init,
}

/// One layer with its inferred shapes and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// Keras-like: `conv1`, `pool1`, `bn1`, `relu1`, `flatten1`, `dense1`, `dropout1`.
    pub name: String,
    pub spec: LayerSpec,
    /// Per-sample shapes: [channels, height, width] or \[features\].
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub params: Vec<ParamInfo>,
}

/// Names of the built-in architectures, for [`Architecture::preset`].
pub const PRESETS: &[&str] = &["happy-sad", "emotions3", "fer48"];

/// The `fer48` preset's layers.
const FER48: &str = "c32samelin-bn-r-p-c64samelin-bn-r-c64samelin-bn-r-p-c128samelin-bn-r-c128samelin-bn-r-p-\
                     c256samelin-bn-r-p-f-d256-drop0.5-d3";

/// Every tensor's elements must be indexable by the u32 the kernels use.
const MAX_TENSOR_ELEMENTS: usize = u32::MAX as usize;

const CONV_FORM: &str = "c<filters>[x<kernel>][s<stride>][same][lin], e.g. c32 or c32x5s2same";
const POOL_FORM: &str = "p[<size>[s<stride>]], e.g. p or p3s2";
const DENSE_FORM: &str = "d<units>[lin], e.g. d128";
const DROPOUT_FORM: &str = "drop<rate>, e.g. drop0.5";

impl InputShape {
    pub fn new(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width }
    }

    /// Values per sample: channels * height * width.
    pub fn elements(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl fmt::Display for InputShape {
    /// `CxHxW`, e.g. `3x256x256`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

impl FromStr for InputShape {
    type Err = Error;

    /// Parses `CxHxW`, e.g. `1x48x48`.
    fn from_str(text: &str) -> Result<Self> {
        let sizes: Option<Vec<usize>> = text.split('x').map(|part| part.parse().ok()).collect();
        match sizes.as_deref() {
            Some(&[channels, height, width]) => Ok(Self { channels, height, width }),
            _ => Err(Error::Invalid(format!(
                "input shape {text:?}: expected channels x height x width as CxHxW, e.g. 3x256x256"
            ))),
        }
    }
}

impl ParamInfo {
    /// Number of values.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

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

    /// The Keras class of the layer, for the summary.
    fn keras_type(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "Conv2D",
            LayerSpec::MaxPool2d { .. } => "MaxPooling2D",
            LayerSpec::BatchNorm => "BatchNormalization",
            LayerSpec::Relu => "ReLU",
            LayerSpec::Flatten => "Flatten",
            LayerSpec::Dense { .. } => "Dense",
            LayerSpec::Dropout { .. } => "Dropout",
        }
    }

    /// The layer's token in a spec string. The head is written without `lin`: the last layer is
    /// linear by definition.
    fn token(&self, is_head: bool) -> String {
        match *self {
            LayerSpec::Conv2d { filters, kernel, stride, padding, relu } => {
                let mut token = format!("c{filters}");
                if kernel != 3 {
                    token += &format!("x{kernel}");
                }
                if stride != 1 {
                    token += &format!("s{stride}");
                }
                if padding == Padding::Same {
                    token += "same";
                }
                if !relu {
                    token += "lin";
                }
                token
            }
            LayerSpec::MaxPool2d { pool, stride } => match (pool, stride) {
                (2, 2) => "p".into(),
                _ if pool == stride => format!("p{pool}"),
                _ => format!("p{pool}s{stride}"),
            },
            LayerSpec::BatchNorm => "bn".into(),
            LayerSpec::Relu => "r".into(),
            LayerSpec::Flatten => "f".into(),
            LayerSpec::Dense { units, relu } => {
                if relu || is_head {
                    format!("d{units}")
                } else {
                    format!("d{units}lin")
                }
            }
            LayerSpec::Dropout { rate } => format!("drop{rate}"),
        }
    }

    /// Parses one token; the error is the form expected.
    fn parse_token(token: &str) -> std::result::Result<LayerSpec, String> {
        let expected = |form: &str| format!("expected {form}");
        if let Some(rate) = token.strip_prefix("drop") {
            return rate.parse().map(|rate| LayerSpec::Dropout { rate }).map_err(|_| expected(DROPOUT_FORM));
        }
        match token {
            "bn" => return Ok(LayerSpec::BatchNorm),
            "r" => return Ok(LayerSpec::Relu),
            "f" => return Ok(LayerSpec::Flatten),
            _ => {}
        }
        let mut cursor = Cursor(token);
        let parsed = if cursor.eat("c") {
            parse_conv(&mut cursor).ok_or_else(|| expected(CONV_FORM))
        } else if cursor.eat("p") {
            parse_pool(&mut cursor).ok_or_else(|| expected(POOL_FORM))
        } else if cursor.eat("d") {
            parse_dense(&mut cursor).ok_or_else(|| expected(DENSE_FORM))
        } else {
            Err(format!(
                "expected a layer: {CONV_FORM}; {POOL_FORM}; bn (batch norm); r (ReLU); f (flatten); \
                 {DENSE_FORM}; {DROPOUT_FORM}"
            ))
        }?;
        if cursor.0.is_empty() { Ok(parsed) } else { Err(format!("unexpected {:?} at its end", cursor.0)) }
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

impl fmt::Display for LayerSpec {
    /// The layer's token in a spec string, e.g. `c32x5s2same`, `p`, `d128`, `drop0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token(false))
    }
}

/// What [`LayerSpec::infer`] finds.
struct LayerOutput {
    shape: Vec<usize>,
    params: Vec<ParamInfo>,
}

/// Reads a token from the left.
struct Cursor<'a>(&'a str);

impl Cursor<'_> {
    /// Skips `prefix` if the rest starts with it.
    fn eat(&mut self, prefix: &str) -> bool {
        match self.0.strip_prefix(prefix) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    /// Reads a decimal number, if the rest starts with a digit and it fits.
    fn number(&mut self) -> Option<usize> {
        let digits = self.0.len() - self.0.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let value = self.0[..digits].parse().ok()?;
        self.0 = &self.0[digits..];
        Some(value)
    }
}

/// After `c`: `<filters>[x<kernel>][s<stride>][same][lin]`.
fn parse_conv(cursor: &mut Cursor) -> Option<LayerSpec> {
    let filters = cursor.number()?;
    let kernel = if cursor.eat("x") { cursor.number()? } else { 3 };
    // `s` alone starts a stride, `same` is the padding.
    let stride = if !cursor.0.starts_with("same") && cursor.eat("s") { cursor.number()? } else { 1 };
    let padding = if cursor.eat("same") { Padding::Same } else { Padding::Valid };
    let relu = !cursor.eat("lin");
    Some(LayerSpec::Conv2d { filters, kernel, stride, padding, relu })
}

/// After `p`: `[<size>[s<stride>]]`.
fn parse_pool(cursor: &mut Cursor) -> Option<LayerSpec> {
    if cursor.0.is_empty() {
        return Some(LayerSpec::MaxPool2d { pool: 2, stride: 2 });
    }
    let pool = cursor.number()?;
    let stride = if cursor.eat("s") { cursor.number()? } else { pool };
    Some(LayerSpec::MaxPool2d { pool, stride })
}

/// After `d`: `<units>[lin]`.
fn parse_dense(cursor: &mut Cursor) -> Option<LayerSpec> {
    let units = cursor.number()?;
    let relu = !cursor.eat("lin");
    Some(LayerSpec::Dense { units, relu })
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
    /// Parses a spec string (see the module docs) and checks that the layers fit `input`.
    pub fn parse(spec: &str, input: InputShape) -> Result<Architecture> {
        let layers = spec
            .split('-')
            .enumerate()
            .map(|(index, token)| {
                LayerSpec::parse_token(token).map_err(|expected| {
                    Error::Invalid(format!("architecture {spec:?}: token {} {token:?}: {expected}", index + 1))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut architecture = Architecture { input, layers };
        // The head's logits are linear whether or not its token says `lin`.
        if let Some(LayerSpec::Dense { relu, .. }) = architecture.layers.last_mut() {
            *relu = false;
        }
        architecture.layers_info()?;
        Ok(architecture)
    }

    /// A built-in architecture at its own input size (see [`PRESETS`]):
    /// - `happy-sad`: `c16-p-c32-p-c64-p-c32-p-f-d256-d1` at 3x256x256;
    /// - `emotions3`: `c32-p-c64-p-c128-p-f-d128-drop0.5-d3` at 3x128x128;
    /// - `fer48`: a VGG-style stack with batch norm and `same` padding, two convolutions in the
    ///   middle blocks, at 1x48x48 (FER-2013's faces): the setting measured on FER-2013's
    ///   validation faces in the README.
    pub fn preset(name: &str) -> Result<Architecture> {
        let (spec, input) = match name {
            "happy-sad" => ("c16-p-c32-p-c64-p-c32-p-f-d256-d1", InputShape::new(3, 256, 256)),
            "emotions3" => ("c32-p-c64-p-c128-p-f-d128-drop0.5-d3", InputShape::new(3, 128, 128)),
            "fer48" => (FER48, InputShape::new(1, 48, 48)),
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown architecture preset {name:?}: expected one of {}",
                    PRESETS.join(", ")
                )));
            }
        };
        Architecture::parse(spec, input)
    }

    /// The same layers on another input size (check it with [`Architecture::layers_info`]).
    pub fn with_input(self, input: InputShape) -> Architecture {
        Architecture { input, ..self }
    }

    /// The same architecture with an output head for `classes` classes: one sigmoid unit for two,
    /// a softmax unit per class for more. Errors when the last layer is not a dense layer or
    /// `classes` is under 2.
    pub fn with_classes(mut self, classes: usize) -> Result<Architecture> {
        let units = if classes == 2 { 1 } else { classes };
        match self.layers.last_mut() {
            Some(LayerSpec::Dense { units: head, .. }) if classes >= 2 => {
                *head = units;
                Ok(self)
            }
            _ => Err(Error::Invalid(format!(
                "architecture {self}: cannot give it a head for {classes} classes (it needs a final dense layer and 2 or more classes)"
            ))),
        }
    }

    /// Units of the output head: 1 for a binary (sigmoid) model, else the classes (softmax); 0 when
    /// the last layer is not dense (an invalid architecture, which [`Architecture::layers_info`] reports).
    pub fn outputs(&self) -> usize {
        match self.layers.last() {
            Some(LayerSpec::Dense { units, .. }) => *units,
            _ => 0,
        }
    }

    /// Number of classes: the head's units, or 2 for a binary model's single sigmoid output.
    pub fn classes(&self) -> usize {
        self.outputs().max(2)
    }

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

    /// A table like Keras's `model.summary()`: each layer's type, output shape (with the batch as
    /// `None`) and parameter count, then the total, trainable and non-trainable parameters.
    pub fn summary(&self) -> Result<String> {
        let layers = self.layers_info()?;
        let rows: Vec<[String; 3]> = layers
            .iter()
            .map(|layer| {
                let shape: Vec<String> =
                    std::iter::once("None".to_string()).chain(layer.output.iter().map(usize::to_string)).collect();
                let count: usize = layer.params.iter().map(ParamInfo::elements).sum();
                [
                    format!("{} ({})", layer.name, layer.spec.keras_type()),
                    format!("({})", shape.join(", ")),
                    grouped(count as u64),
                ]
            })
            .collect();
        let header = ["Layer (type)".to_string(), "Output Shape".to_string(), "Param #".to_string()];
        let widths: Vec<usize> =
            (0..3).map(|col| rows.iter().chain([&header]).map(|row| row[col].len()).max().unwrap_or(0)).collect();
        let line = |row: &[String; 3]| {
            format!(
                " {:<w0$}   {:<w1$}   {:>w2$}\n",
                row[0],
                row[1],
                row[2],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        };
        let rule_width = widths.iter().sum::<usize>() + 8;
        let params = layers.iter().flat_map(|layer| &layer.params);
        let (trainable, frozen) = params.fold((0u64, 0u64), |(trainable, frozen), param| {
            let n = param.elements() as u64;
            if param.trainable { (trainable + n, frozen) } else { (trainable, frozen + n) }
        });
        let mut table = format!("Architecture: {self} (input {})\n", self.input);
        table += &format!("{}\n", "_".repeat(rule_width));
        table += &line(&header);
        table += &format!("{}\n", "=".repeat(rule_width));
        for row in &rows {
            table += &line(row);
        }
        table += &format!("{}\n", "=".repeat(rule_width));
        for (label, count) in [("Total", trainable + frozen), ("Trainable", trainable), ("Non-trainable", frozen)] {
            table += &format!(" {label} params: {} ({})\n", grouped(count), f32_size(count));
        }
        table += &format!("{}\n", "_".repeat(rule_width));
        Ok(table)
    }
}

impl fmt::Display for Architecture {
    /// The canonical spec string: defaults left out, the head without `lin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.layers.len().saturating_sub(1);
        let tokens: Vec<String> =
            self.layers.iter().enumerate().map(|(index, layer)| layer.token(index == last)).collect();
        f.write_str(&tokens.join("-"))
    }
}

/// `1,648,193`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The memory of `count` f32 values, as Keras prints it: `6.29 MB`.
fn f32_size(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut size = count as f64 * 4.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.2} {}", UNITS[unit])
}

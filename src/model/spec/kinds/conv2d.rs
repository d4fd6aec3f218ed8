//! `c<filters>[x<kernel>][s<stride>][same][lin]`: 2-D convolution with bias and a square kernel,
//! followed by ReLU unless `lin`.

use super::super::cursor::Cursor;
use super::super::params::{Init, ParamInfo};
use super::checks::{checked_elements, spatial};
use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{Op, OpSite};
use crate::shape::{Conv2dShape, Padding, conv_out_dim};

/// 2-D convolution with bias and a square kernel, optionally followed by ReLU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub filters: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: Padding,
    pub relu: bool,
}

/// After `c`: `<filters>[x<kernel>][s<stride>][same][lin]`.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    let filters = cursor.number()?;
    let kernel = if cursor.eat("x") { cursor.number()? } else { 3 };
    // `s` alone starts a stride, `same` is the padding.
    let stride = if !cursor.0.starts_with("same") && cursor.eat("s") { cursor.number()? } else { 1 };
    let padding = if cursor.eat("same") { Padding::Same } else { Padding::Valid };
    let relu = !cursor.eat("lin");
    Some(Conv2d { filters, kernel, stride, padding, relu }.into())
}

impl Kind for Conv2d {
    const DEFINITION: Definition = Definition {
        prefix: "c",
        grammar: Grammar::Parameters(parse),
        syntax: "c<filters>[x<kernel>][s<stride>][same][lin]",
        title: "convolution",
        examples: &["c32", "c32x5s2same"],
        name: "conv",
        keras_type: "Conv2D",
        learns_feature_maps: true,
    };

    /// Defaults left out.
    fn token(&self, _is_head: bool) -> String {
        let Conv2d { filters, kernel, stride, padding, relu } = *self;
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

    /// [filters, out_h, out_w] with a weight [filters, channels, kernel, kernel] and a bias.
    fn infer(&self, name: &str, input: &[usize], _is_head: bool) -> Result<LayerOutput, String> {
        let Conv2d { filters, kernel, stride, padding, .. } = *self;
        let (channels, height, width) = spatial(input, "a convolution")?;
        if filters == 0 || kernel == 0 || stride == 0 {
            return Err(format!("filters, kernel and stride must be positive, got {filters}, {kernel} and {stride}"));
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
                ParamInfo::new(name, "weight", weight, true, glorot),
                ParamInfo::new(name, "bias", vec![filters], true, Init::Zeros),
            ],
        })
    }

    fn op(&self, input: &[usize], _output: &[usize], site: OpSite) -> Result<Op, String> {
        let (in_channels, in_h, in_w) = spatial(input, "a convolution")?;
        let shape = Conv2dShape {
            batch: site.batch,
            in_channels,
            in_h,
            in_w,
            out_channels: self.filters,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        Ok(Op::Conv2d { shape, relu: self.relu, weight: site.first_param, bias: site.first_param + 1 })
    }
}

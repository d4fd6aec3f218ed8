//! `c<filters>[x<kernel>][s<stride>][same][lin]`: 2-D convolution with bias and a square kernel,
//! followed by ReLU unless `lin`.

use super::super::cursor::Cursor;
use super::super::infer::{LayerOutput, checked_elements, param, spatial};
use super::super::layers::{Definition, Grammar, Init, LayerSpec};
use crate::shape::{Padding, conv_out_dim};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "c",
    grammar: Grammar::Parameters(parse),
    syntax: "c<filters>[x<kernel>][s<stride>][same][lin]",
    title: "convolution",
    examples: &["c32", "c32x5s2same"],
    name: "conv",
    keras_type: "Conv2D",
    learns_feature_maps: true,
};

/// After `c`: `<filters>[x<kernel>][s<stride>][same][lin]`.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    let filters = cursor.number()?;
    let kernel = if cursor.eat("x") { cursor.number()? } else { 3 };
    // `s` alone starts a stride, `same` is the padding.
    let stride = if !cursor.0.starts_with("same") && cursor.eat("s") { cursor.number()? } else { 1 };
    let padding = if cursor.eat("same") { Padding::Same } else { Padding::Valid };
    let relu = !cursor.eat("lin");
    Some(LayerSpec::Conv2d { filters, kernel, stride, padding, relu })
}

/// The token, defaults left out.
pub(super) fn token(filters: usize, kernel: usize, stride: usize, padding: Padding, relu: bool) -> String {
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
pub(super) fn infer(
    name: &str,
    input: &[usize],
    filters: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Result<LayerOutput, String> {
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
            param(name, "weight", weight, true, glorot),
            param(name, "bias", vec![filters], true, Init::Zeros),
        ],
    })
}

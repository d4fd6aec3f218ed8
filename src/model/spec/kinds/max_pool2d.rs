//! `p[<size>[s<stride>]]`: max-pooling over square windows with valid padding, size 2 and stride
//! the size unless told.

use super::super::cursor::Cursor;
use super::super::infer::{LayerOutput, spatial};
use super::super::layers::{Definition, Grammar, LayerSpec};
use crate::shape::{Padding, conv_out_dim};

pub(super) const DEFINITION: Definition = Definition {
    prefix: "p",
    grammar: Grammar::Parameters(parse),
    syntax: "p[<size>[s<stride>]]",
    title: "max-pool",
    examples: &["p", "p3s2"],
    name: "pool",
    keras_type: "MaxPooling2D",
    learns_feature_maps: false,
};

/// After `p`: `[<size>[s<stride>]]`.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    if cursor.0.is_empty() {
        return Some(LayerSpec::MaxPool2d { pool: 2, stride: 2 });
    }
    let pool = cursor.number()?;
    let stride = if cursor.eat("s") { cursor.number()? } else { pool };
    Some(LayerSpec::MaxPool2d { pool, stride })
}

/// The token, defaults left out.
pub(super) fn token(pool: usize, stride: usize) -> String {
    match (pool, stride) {
        (2, 2) => "p".into(),
        _ if pool == stride => format!("p{pool}"),
        _ => format!("p{pool}s{stride}"),
    }
}

/// [channels, out_h, out_w], no parameters.
pub(super) fn infer(input: &[usize], pool: usize, stride: usize) -> Result<LayerOutput, String> {
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

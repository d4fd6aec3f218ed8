//! `p[<size>[s<stride>]]`: max-pooling over square windows with valid padding, size 2 and stride
//! the size unless told.

use super::super::cursor::Cursor;
use super::checks::spatial;
use super::{Definition, Grammar, Kind, LayerOutput, LayerSpec};
use crate::model::op::{Op, OpSite};
use crate::shape::{Padding, Pool2dShape, conv_out_dim};

/// Max-pooling over square windows, valid padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    pub pool: usize,
    pub stride: usize,
}

/// After `p`: `[<size>[s<stride>]]`.
fn parse(cursor: &mut Cursor) -> Option<LayerSpec> {
    if cursor.0.is_empty() {
        return Some(MaxPool2d { pool: 2, stride: 2 }.into());
    }
    let pool = cursor.number()?;
    let stride = if cursor.eat("s") { cursor.number()? } else { pool };
    Some(MaxPool2d { pool, stride }.into())
}

impl Kind for MaxPool2d {
    const DEFINITION: Definition = Definition {
        prefix: "p",
        grammar: Grammar::Parameters(parse),
        syntax: "p[<size>[s<stride>]]",
        title: "max-pool",
        examples: &["p", "p3s2"],
        name: "pool",
        keras_type: "MaxPooling2D",
        learns_feature_maps: false,
    };

    /// Defaults left out.
    fn token(&self, _is_head: bool) -> String {
        match (self.pool, self.stride) {
            (2, 2) => "p".into(),
            (pool, stride) if pool == stride => format!("p{pool}"),
            (pool, stride) => format!("p{pool}s{stride}"),
        }
    }

    /// [channels, out_h, out_w], no parameters.
    fn infer(&self, _name: &str, input: &[usize], _is_head: bool) -> Result<LayerOutput, String> {
        let MaxPool2d { pool, stride } = *self;
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

    fn op(&self, input: &[usize], _output: &[usize], site: OpSite) -> Result<Op, String> {
        let (channels, in_h, in_w) = spatial(input, "max-pooling")?;
        let shape = Pool2dShape { batch: site.batch, channels, in_h, in_w, pool: self.pool, stride: self.stride };
        Ok(Op::MaxPool2d { shape })
    }
}

//! The spec string's grammar (see the `spec` module): a layer's token written and read, an
//! architecture parsed and written back in its canonical form.

use std::fmt;

use super::layers::{Architecture, InputShape, LayerSpec};
use crate::shape::Padding;
use crate::{Error, Result};

const CONV_FORM: &str = "c<filters>[x<kernel>][s<stride>][same][lin], e.g. c32 or c32x5s2same";
const POOL_FORM: &str = "p[<size>[s<stride>]], e.g. p or p3s2";
const DENSE_FORM: &str = "d<units>[lin], e.g. d128";
const DROPOUT_FORM: &str = "drop<rate>, e.g. drop0.5";

impl LayerSpec {
    /// The layer's token in a spec string. The head is written without `lin`: the last layer is
    /// linear by definition.
    pub(super) fn token(&self, is_head: bool) -> String {
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
}

impl fmt::Display for LayerSpec {
    /// The layer's token in a spec string, e.g. `c32x5s2same`, `p`, `d128`, `drop0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token(false))
    }
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

impl Architecture {
    /// Parses a spec string (see the [module docs](super)) and checks that the layers fit `input`.
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

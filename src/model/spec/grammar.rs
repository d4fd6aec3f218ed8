//! The spec string's grammar (see the `spec` module): a layer's token read through the table of
//! kinds, an architecture parsed and written back in its canonical form.

use std::fmt;
use std::str::FromStr;

use super::cursor::Cursor;
use super::kinds::{Dense, Grammar, LayerKind, LayerSpec};
use super::layers::{Architecture, InputShape};
use crate::{Error, Result};

impl LayerSpec {
    /// Parses one token; the error is the form expected.
    fn parse_token(token: &str) -> std::result::Result<LayerSpec, String> {
        let definitions = LayerKind::ALL.iter().map(|kind| (kind, kind.definition()));
        let word = definitions.clone().find_map(|(_, definition)| match &definition.grammar {
            Grammar::Word(spec) if definition.prefix == token => Some(spec.clone()),
            _ => None,
        });
        if let Some(spec) = word {
            return Ok(spec);
        }
        // The longest prefix decides: `drop0.5` is a dropout, not a dense layer.
        let with_parameters = definitions
            .filter_map(|(kind, definition)| match definition.grammar {
                Grammar::Parameters(read) => {
                    token.strip_prefix(definition.prefix).map(|rest| (kind, definition, read, rest))
                }
                Grammar::Word(_) => None,
            })
            .max_by_key(|(_, definition, ..)| definition.prefix.len());
        let Some((kind, _, read, rest)) = with_parameters else {
            let forms: Vec<String> = LayerKind::ALL.iter().map(|kind| kind.form()).collect();
            return Err(format!("expected a layer: {}", forms.join("; ")));
        };
        let mut cursor = Cursor(rest);
        let parsed = read(&mut cursor).ok_or_else(|| format!("expected {}", kind.form()))?;
        if cursor.0.is_empty() { Ok(parsed) } else { Err(format!("unexpected {:?} at its end", cursor.0)) }
    }
}

impl FromStr for LayerSpec {
    type Err = Error;

    /// Parses one layer's token, e.g. `c32x5s2same`, `p`, `d128lin`, `drop0.5`.
    fn from_str(token: &str) -> Result<Self> {
        LayerSpec::parse_token(token).map_err(|expected| Error::Invalid(format!("layer {token:?}: {expected}")))
    }
}

impl fmt::Display for LayerSpec {
    /// The layer's token in a spec string, e.g. `c32x5s2same`, `p`, `d128`, `drop0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token(false))
    }
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
        if let Some(LayerSpec::Dense(Dense { relu, .. })) = architecture.layers.last_mut() {
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

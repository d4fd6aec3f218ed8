//! How a model's images become its inputs, as its file records it (`normalisation`, e.g.
//! `rgb/255 stretch`): the image converted to the input's colours, brought to its size as [`Fit`]
//! says, each 8-bit value divided by 255 into [0, 1].

use crate::{Error, Result};

/// How an image is brought to the input size when its aspect ratio differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Fit {
    /// Resized to exactly the input size, distorting the aspect ratio (Keras's default).
    #[default]
    Stretch,
    /// Scaled so the shorter side fits, the longer side cut equally on both ends.
    CenterCrop,
    /// Scaled so the longer side fits, centred on black.
    Pad,
}

impl Fit {
    /// As a model file and `--fit` write it: `stretch`, `crop` or `pad`.
    pub fn name(self) -> &'static str {
        match self {
            Fit::Stretch => "stretch",
            Fit::CenterCrop => "crop",
            Fit::Pad => "pad",
        }
    }
}

impl std::str::FromStr for Fit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stretch" => Ok(Fit::Stretch),
            "crop" | "center-crop" => Ok(Fit::CenterCrop),
            "pad" => Ok(Fit::Pad),
            _ => Err(format!("unknown fit {s:?}: expected stretch, crop or pad")),
        }
    }
}

/// The colours a model takes: three channels or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Rgb,
    Gray,
}

impl Colour {
    pub fn channels(self) -> usize {
        match self {
            Colour::Rgb => 3,
            Colour::Gray => 1,
        }
    }
}

/// How a model's images become its inputs: in `colour`, brought to the input size by `fit`,
/// each 8-bit value divided by 255. Written `rgb/255 stretch`; files from before the fit was
/// recorded say `rgb/255` (stretched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalisation {
    pub colour: Colour,
    pub fit: Fit,
}

impl Normalisation {
    /// For an input of `channels` (1: gray, otherwise RGB) fitted by `fit`.
    pub fn new(channels: usize, fit: Fit) -> Normalisation {
        let colour = if channels == 1 { Colour::Gray } else { Colour::Rgb };
        Normalisation { colour, fit }
    }
}

impl std::fmt::Display for Normalisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let colour = match self.colour {
            Colour::Rgb => "rgb",
            Colour::Gray => "gray",
        };
        write!(f, "{colour}/255 {}", self.fit.name())
    }
}

impl std::str::FromStr for Normalisation {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let unknown = || {
            Error::Invalid(format!(
                "unknown normalisation {text:?}: expected rgb/255 or gray/255, then stretch, crop or pad"
            ))
        };
        let mut words = text.split_whitespace();
        let colour = match words.next() {
            Some("rgb/255") => Colour::Rgb,
            Some("gray/255") => Colour::Gray,
            _ => return Err(unknown()),
        };
        let fit = match words.next() {
            None => Fit::Stretch,
            Some(name) => name.parse().map_err(|_| unknown())?,
        };
        match words.next() {
            None => Ok(Normalisation { colour, fit }),
            Some(_) => Err(unknown()),
        }
    }
}

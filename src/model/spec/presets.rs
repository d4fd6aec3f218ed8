//! The built-in architectures, by name.

use super::layers::{Architecture, InputShape};
use crate::{Error, Result};

/// Names of the built-in architectures, for [`Architecture::preset`].
pub const PRESETS: &[&str] = &["happy-sad", "emotions3", "fer48"];

/// The `fer48` preset's layers.
const FER48: &str = "c32samelin-bn-r-p-c64samelin-bn-r-c64samelin-bn-r-p-c128samelin-bn-r-c128samelin-bn-r-p-\
                     c256samelin-bn-r-p-f-d256-drop0.5-d3";

impl Architecture {
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
}

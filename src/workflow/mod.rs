//! The user's workflow as the `wgcnn` commands, the web server and the examples run it, one job
//! per module: [`train`] a model into a run folder, [`evaluate`] it on labelled images, open a
//! saved model in a [`session`] to predict and explain images, and draw an
//! [`explanation`] as a card.

pub mod evaluate;
pub mod explanation;
pub mod preset;
pub mod session;
pub mod train;

use std::path::Path;

use crate::data::image::InputFormat;
use crate::files::write_atomically;
use crate::model::file::ModelFile;
use crate::{Error, Result};

/// Writes a whole file through a temporary one, the error naming the path.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, bytes).map_err(|e| Error::Invalid(format!("{}: cannot write it: {e}", path.display())))
}

/// A path's last component ("new-faces" for `data/new-faces/`, "a.png" for `faces/a.png`), or the
/// whole path when it has none.
pub fn path_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned())
}

/// How a saved model takes its images: size and channels from its architecture, the fit from its
/// normalisation.
fn input_format(model: &ModelFile) -> Result<InputFormat> {
    let input = model.architecture.input;
    let fit = model.normalisation.fit;
    let format = InputFormat { channels: input.channels, size: (input.height as u32, input.width as u32), fit };
    format.validate()?;
    Ok(format)
}

//! What predict and explain share: the model opened for the image files (not folders) read
//! within the limits, and the error for those that could not be used.

use std::path::{Path, PathBuf};

use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::workflow::session::{INFERENCE_BATCH, ModelSession};

use crate::device::backend;
use crate::errors::Usage;

/// Each image file's bytes, or why it cannot be read (reported like an image that does not
/// decode).
pub type ImageFiles = Vec<Result<Vec<u8>, String>>;

/// The model at `model` on the device `choice` names, for a batch of up to all `images`, and the
/// images' files read within `limits`.
pub fn open_for_images(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    images: &[PathBuf],
) -> anyhow::Result<(ModelSession, ImageFiles)> {
    no_folders(images)?;
    let session = ModelSession::open(model, &backend(choice)?, &[INFERENCE_BATCH.min(images.len())], limits)?;
    let files = images.iter().map(|p| limits.read_file(p).map_err(|e| e.to_string())).collect();
    Ok((session, files))
}

/// The files' bytes as the session takes them (none for a file that could not be read).
pub fn bytes(files: &ImageFiles) -> Vec<&[u8]> {
    files.iter().map(|f| f.as_deref().unwrap_or_default()).collect()
}

/// A folder among the images is a usage error that points to `eval`.
fn no_folders(images: &[PathBuf]) -> anyhow::Result<()> {
    match images.iter().find(|path| path.is_dir()) {
        Some(folder) => Err(Usage(format!(
            "{} is a folder: this command takes image files; `wgcnn eval MODEL FOLDER` takes a folder of \
             class subfolders (or give the files, e.g. {}/*.png)",
            folder.display(),
            folder.display()
        ))
        .into()),
        None => Ok(()),
    }
}

/// The error for images that could not be used: a single image's own message, else one line per
/// image on stderr and a count.
pub fn bad_images(failures: Vec<String>, total: usize) -> anyhow::Result<()> {
    match failures.as_slice() {
        [] => Ok(()),
        [one] if total == 1 => anyhow::bail!("{one}"),
        _ => {
            failures.iter().for_each(|f| eprintln!("wgcnn: {f}"));
            anyhow::bail!("{} of {total} images could not be read as images", failures.len())
        }
    }
}

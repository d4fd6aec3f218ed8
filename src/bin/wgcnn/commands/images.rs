//! What predict and explain share: image files (not folders) read within the limits, and the
//! error for those that could not be used.

use std::path::PathBuf;

use wgcnn::data::image::DecodeLimits;

use crate::errors::Usage;

/// A folder among the images is a usage error that points to `eval`.
pub fn no_folders(images: &[PathBuf]) -> anyhow::Result<()> {
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

/// Each file's bytes within the limits, or why it cannot be read (reported like an image that
/// does not decode).
pub fn read_files(paths: &[PathBuf], limits: &DecodeLimits) -> Vec<Result<Vec<u8>, String>> {
    paths.iter().map(|p| limits.read_file(p).map_err(|e| e.to_string())).collect()
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

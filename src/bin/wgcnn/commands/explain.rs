//! `wgcnn explain`: a heat map card per image of where the evidence for a class lies.

use std::path::{Path, PathBuf};

use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::model::explain::ExplainMethod;
use wgcnn::workflow::session::{INFERENCE_BATCH, ModelSession};

use super::images::{bad_images, no_folders, read_files};
use crate::device::backend;
use crate::errors::typed;

pub fn explain(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    images: &[PathBuf],
    method: ExplainMethod,
    class: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    no_folders(images)?;
    let mut loaded = ModelSession::open(model, &backend(choice)?, &[INFERENCE_BATCH.min(images.len())], limits)?;
    typed(class.map(|name| loaded.class_index(name)).transpose())?;
    let drawn = loaded.method_for(method);
    if let Some(note) = &drawn.note {
        println!("{note}");
    }
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", out.display()))?;
    let files = read_files(images, &limits);
    let bytes: Vec<&[u8]> = files.iter().map(|f| f.as_deref().unwrap_or_default()).collect();
    let explained = loaded.explain_bytes(&bytes, method, class)?;
    let (mut stems, mut failures) = (std::collections::HashMap::new(), Vec::new());
    for ((path, file), result) in images.iter().zip(&files).zip(explained) {
        let e = match file.clone().and_then(|_| result.map_err(|e| e.to_string())) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        // <stem>-<class>-<method>.png, the class explained; two images of the same name (from
        // different folders): the second is <stem>-2-<class>-<method>.png.
        let stem = path.file_stem().map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let seen: &mut usize = stems.entry(stem.clone()).or_default();
        *seen += 1;
        let suffix = if *seen == 1 { String::new() } else { format!("-{seen}") };
        let card = out.join(format!("{stem}{suffix}-{}-{}.png", e.class_name, e.method.name()));
        e.write_card(&card)?;
        println!("{}: {}  -> {}", path.display(), e.caption(), card.display());
    }
    bad_images(failures, images.len())
}

//! `wgcnn explain`: a heat map card per image of where the evidence for a class lies.

use std::path::{Path, PathBuf};

use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::model::explain::ExplainMethod;

use super::images::{bad_images, bytes, open_for_images};
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
    let (mut loaded, files) = open_for_images(choice, limits, model, images)?;
    typed(class.map(|name| loaded.class_index(name)).transpose())?;
    let drawn = loaded.method_for(method);
    if let Some(note) = &drawn.note {
        println!("{note}");
    }
    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", out.display()))?;
    let explained = loaded.explain_bytes(&bytes(&files), method, class)?;
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

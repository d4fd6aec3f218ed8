//! `wgcnn predict`: each image's label and probabilities, as text or JSON, and optionally a grid.

use std::path::{Path, PathBuf};

use wgcnn::data::image::{DecodeLimits, decode_rgb};
use wgcnn::gpu::DeviceChoice;
use wgcnn::report::GridItem;
use wgcnn::workflow;

use super::images::{bad_images, bytes, open_for_images};
use crate::cli::TtaArg;

pub fn predict(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    images: &[PathBuf],
    tta: &TtaArg,
    json: bool,
    grid: Option<&Path>,
) -> anyhow::Result<()> {
    let (mut loaded, files) = open_for_images(choice, limits, model, images)?;
    tta.apply(&mut loaded);
    let predictions = loaded.predict_bytes(&bytes(&files))?;
    let mut failures = Vec::new();
    let mut entries = Vec::new();
    let mut grid_items = Vec::new();
    for ((path, prediction), file) in images.iter().zip(predictions).zip(&files) {
        match file.clone().and_then(|file| prediction.map(|p| (p, file)).map_err(|e| e.to_string())) {
            Ok((p, file)) => {
                if !json {
                    let all: Vec<String> = p.probabilities.iter().map(|(c, v)| format!("{c} {v:.4}")).collect();
                    println!("{}: {} ({:.1}%)  [{}]", path.display(), p.label, p.confidence * 100.0, all.join(", "));
                }
                if grid.is_some() {
                    let truth = path.parent().and_then(|d| d.file_name()).and_then(|d| d.to_str());
                    let correct = truth.filter(|t| loaded.class_names().iter().any(|c| c == t)).map(|t| t == p.label);
                    let image = decode_rgb(&file, &limits)?;
                    let caption = format!("{} {:.1}%", p.label, p.confidence * 100.0);
                    grid_items.push(GridItem { image, file: workflow::path_name(path), caption, correct });
                }
                entries.push(serde_json::json!({ "file": path, "prediction": p }));
            }
            Err(e) => {
                entries.push(serde_json::json!({ "file": path, "error": e }));
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    }
    if let Some(grid) = grid.filter(|_| !grid_items.is_empty()) {
        let title = format!("{} predicted by {}", image_count(grid_items.len()), model.display());
        wgcnn::report::plots::prediction_grid(&grid_items, &title, grid)?;
        if !json {
            println!("wrote {}", grid.display());
        }
    }
    bad_images(failures, images.len())
}

/// "1 image", "12 images".
fn image_count(n: usize) -> String {
    if n == 1 { "1 image".into() } else { format!("{n} images") }
}

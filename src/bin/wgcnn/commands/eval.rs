//! `wgcnn eval`: a saved model scored on a folder, or on a part of its run's split.

use std::path::{Path, PathBuf};

use anyhow::Context;
use wgcnn::data::folder::{ImageFolder, LoadOptions};
use wgcnn::data::image::DecodeLimits;
use wgcnn::gpu::DeviceChoice;
use wgcnn::workflow;
use wgcnn::workflow::session::{INFERENCE_BATCH, ModelSession};
use wgcnn::workflow::train::run_split;

use crate::cli::TtaArg;
use crate::device::backend;

/// What `wgcnn eval` scores a model on.
pub enum EvalData {
    /// Every image of a folder of class subfolders.
    Folder(PathBuf),
    /// A part (train, validation, test) of the split of the run that trained the model.
    RunSplit(String),
}

pub fn eval(
    choice: &DeviceChoice,
    limits: DecodeLimits,
    model: &Path,
    data: &EvalData,
    tta: &TtaArg,
    json: bool,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut loaded = ModelSession::open(model, &backend(choice)?, &[INFERENCE_BATCH], limits)?;
    tta.apply(&mut loaded);
    let (dataset, report, indices, name) = match data {
        EvalData::Folder(dir) => {
            // A subset of the model's classes is a normal test set: one class folder is enough.
            let options = LoadOptions { limits, min_classes: 1, ..LoadOptions::default() };
            let (dataset, report) = ImageFolder::load(dir, &loaded.format(), &options)?;
            let all: Vec<usize> = (0..dataset.len()).collect();
            (dataset, report, all, workflow::path_name(dir))
        }
        EvalData::RunSplit(part) => {
            let run_dir = model.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let found = run_split(run_dir, part)?;
            (found.dataset, found.report, found.indices, format!("{part}-split"))
        }
    };
    if !json {
        print!("{report}");
        println!("test-time augmentation: {}", loaded.test_time_augment());
    }
    let evaluation = loaded
        .evaluate(&dataset, &indices)
        .with_context(|| format!("evaluating {} on {name} ({} images)", model.display(), indices.len()))?;
    let written = match out {
        None => None,
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the folder", out.display()))?;
            let png = out.join(format!("confusion-{name}.png"));
            let title = format!("Confusion matrix: {name} ({} images)", indices.len());
            wgcnn::report::plots::confusion_matrix(&evaluation.confusion, &title, &png)?;
            Some(png)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        println!("\n{}", evaluation.text());
        if let Some(png) = written {
            println!("\nwrote {}", png.display());
        }
    }
    Ok(())
}

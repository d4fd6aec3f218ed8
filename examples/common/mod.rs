//! What both examples share: their data (a folder, or synthetic faces drawn once), training as
//! `wgcnn train` shows it, and the end of a run (the saved model reloaded and checked against the
//! trained one, the test accuracies).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wgcnn::data::image::DecodeLimits;
use wgcnn::data::synth::{Emotion, FacePairing, write_dataset};
use wgcnn::files::read_bounded;
use wgcnn::model::backend::Backend;
use wgcnn::model::file::write_atomically;
use wgcnn::workflow::session::ModelSession;
use wgcnn::workflow::train::{TrainRun, TrainSettings};

// The binary's progress drawing, the one copy of it: the library reports events, and prints nothing.
#[path = "../../src/bin/wgcnn/progress.rs"]
mod progress;

/// Trains as `settings` say, printing what `wgcnn train` prints: the data, the model, a progress
/// bar per epoch (lines without a terminal) and the evaluation.
pub fn train(backend: &Backend, settings: &TrainSettings) -> Result<TrainRun> {
    let mut progress = progress::TrainProgress::new();
    Ok(wgcnn::workflow::train::train(backend, settings, &mut |event| progress.show_run(event))?)
}

/// Reloads the model a run saved, checks that the file holds the trained model (weights, classes,
/// history), and predicts `count` of its test images again from their files, printing both
/// predictions side by side; returns the largest difference in any probability
/// (0 when the saved model reproduces the trained one exactly).
fn compare_reloaded(run: &TrainRun, backend: &Backend, count: usize) -> Result<f32> {
    let Some(test) = run.test.as_ref().or(run.test_dir.as_ref()) else {
        return Ok(0.0);
    };
    let shown: Vec<_> = test.predictions.iter().take(count).collect();
    let mut reloaded = ModelSession::open(&run.model_path, backend, &[shown.len().max(1)], DecodeLimits::default())?;
    if reloaded.file() != &run.model {
        bail!("{} does not hold the trained model", run.model_path.display());
    }
    let files = shown
        .iter()
        .map(|(path, _, _)| reloaded.limits().read_file(path).with_context(|| path.display().to_string()))
        .collect::<Result<Vec<_>>>()?;
    let bytes: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let again = reloaded.predict_bytes(&bytes)?;
    println!("\npredictions of the trained model and of {} reloaded:", run.model_path.display());
    let mut largest = 0f32;
    for ((path, actual, trained), again) in shown.iter().zip(again) {
        let again = again.with_context(|| path.display().to_string())?;
        for ((_, p), (_, q)) in trained.probabilities.iter().zip(&again.probabilities) {
            largest = largest.max((p - q).abs());
        }
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        println!(
            "  {name:<40} true {:<8} trained: {} {:.4}   reloaded: {} {:.4}",
            reloaded.class_names()[*actual],
            trained.label,
            trained.confidence,
            again.label,
            again.confidence
        );
    }
    println!("largest difference in any probability: {largest:e}");
    Ok(largest)
}

/// The end of an example run: reloads the saved model, checks that it predicts exactly what the
/// trained one did, and prints the test accuracies.
pub fn finish_example(run: &TrainRun, backend: &Backend, out_dir: &Path) -> Result<()> {
    let difference = compare_reloaded(run, backend, 6)?;
    if difference != 0.0 {
        bail!("the reloaded model's predictions differ by {difference}");
    }
    for (what, evaluation) in [("test split", &run.test), ("test folder", &run.test_dir)] {
        if let Some(e) = evaluation {
            println!("{what} accuracy: {:.4} on {} images", e.report.accuracy, e.confusion.total());
        }
    }
    println!("plots and reports in {}", out_dir.display());
    Ok(())
}

/// The examples' synthetic faces per class: on two CPU cores Model A trains on 160 faces of
/// 256x256 in ten minutes, which it memorises instead of learning the mouth; it learns 300 pairs
/// of 64x64 in two.
const SYNTHETIC_PER_CLASS: usize = 300;
/// The examples' input size for synthetic faces (see [`SYNTHETIC_PER_CLASS`]).
const SYNTHETIC_SIZE: usize = 64;

/// An example's images and input size: the folder `data` at `size` (default `data_size`, the
/// source project's), or with no data [`SYNTHETIC_PER_CLASS`] paired synthetic faces of each of
/// `classes`, drawn into `out/synthetic` at `size` (default [`SYNTHETIC_SIZE`]).
pub fn example_dataset(
    data: Option<PathBuf>,
    size: Option<usize>,
    data_size: usize,
    classes: &[Emotion],
    out: &Path,
    seed: u64,
) -> Result<(PathBuf, usize)> {
    match data {
        Some(dir) => Ok((dir, size.unwrap_or(data_size))),
        None => {
            let size = size.unwrap_or(SYNTHETIC_SIZE);
            Ok((synthetic_dataset(&out.join("synthetic"), classes, SYNTHETIC_PER_CLASS, size as u32, seed)?, size))
        }
    }
}

/// Synthetic faces of `classes` in `dir`, for a machine with no data: paired
/// ([`FacePairing::Paired`]), so the examples' small sets are learnt from the expression. Drawn
/// once: a folder whose `drawn.txt` records the same draw is reused. Returns `dir`.
fn synthetic_dataset(dir: &Path, classes: &[Emotion], per_class: usize, size: u32, seed: u64) -> Result<PathBuf> {
    let names: Vec<&str> = classes.iter().map(|c| c.name()).collect();
    let draw =
        format!("paired faces: classes {}, {per_class} per class, {size}x{size}, seed {seed}\n", names.join(","));
    let record = dir.join("drawn.txt");
    // Read at most a few bytes past the record's length: any other file there is another draw.
    if read_bounded(&record, draw.len() as u64).is_ok_and(|drawn| drawn == draw.as_bytes()) {
        println!("synthetic faces: reusing {}", dir.display());
    } else {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("{}: cannot clear it", dir.display()))?;
        }
        let written = write_dataset(dir, classes, per_class, size, seed, FacePairing::Paired)?;
        write_atomically(&record, draw.as_bytes()).with_context(|| format!("{}: cannot write it", record.display()))?;
        println!("synthetic faces: drew {} paired images of {size}x{size} into {}", written.len(), dir.display());
    }
    Ok(dir.to_path_buf())
}

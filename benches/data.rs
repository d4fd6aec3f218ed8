//! The data pipeline against the trainer: loading and resizing all of `../shared/data/happy_sad`
//! to 256x256 (decoded on all cores, kept as u8), then one epoch of Model A on its 70% training
//! split with augmentation, reporting how long batches took to prepare on the background thread
//! and how long the model waited for them.
//!
//! `cargo bench --bench data`; `WGCNN_DEVICE` chooses the adapter (`cpu`: the CPU reference
//! backend); `WGCNN_BENCH_BATCH` the batch size (default 16); `WGCNN_BENCH_EPOCHS` (default 1; 0 only loads).

use std::path::Path;
use std::time::Instant;

use wgcnn::data::augment::Augment;
use wgcnn::data::folder::{ImageFolder, LoadOptions};
use wgcnn::data::image::InputFormat;
use wgcnn::data::loader::ImageBatches;
use wgcnn::data::split::{SplitRatios, stratified_split};
use wgcnn::gpu::GpuModel;
use wgcnn::gpu::{DeviceChoice, Gpu};
use wgcnn::model::{TrainOptions, Trainable};
use wgcnn::reference::ReferenceModel;
use wgcnn::train::BatchSource;
use wgcnn::train::fit::{FitConfig, TrainEvent, fit_with};
use wgcnn::workflow::preset::Preset;

fn main() -> wgcnn::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/happy_sad");
    if !root.is_dir() {
        return Err(wgcnn::Error::Invalid(format!("the data benchmark needs {}; it is absent", root.display())));
    }
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let (batch, epochs) = (env("WGCNN_BENCH_BATCH", 16), env("WGCNN_BENCH_EPOCHS", 1));

    let format = InputFormat::rgb(256, 256);
    let started = Instant::now();
    let (dataset, report) = ImageFolder::load(&root, &format, &LoadOptions::default())?;
    let seconds = started.elapsed().as_secs_f64();
    print!("{report}");
    println!(
        "load/happy_sad at 256x256: {seconds:.2} s for {} files ({:.1} files/s on {} threads); {} images held in {:.1} MiB of u8",
        report.found,
        report.found as f64 / seconds,
        rayon::current_num_threads(),
        dataset.len(),
        dataset.images.len() as f64 / (1 << 20) as f64
    );

    let split = stratified_split(&dataset.labels, SplitRatios::TUTORIAL, 1)?;
    for ((name, _), counts) in split.parts().iter().zip(split.class_counts(&dataset.labels, 2)) {
        println!("split {name}: {counts:?} ({})", dataset.class_names.join(", "));
    }
    if epochs == 0 {
        return Ok(());
    }
    let train = ImageBatches::new(&dataset, &split.train)?.with_augment(Augment::moderate(), 1)?;
    let validation = ImageBatches::new(&dataset, &split.validation)?;

    let arch = Preset::named("happy-sad")?.architecture;
    let weights = arch.initial_weights(1)?;
    let options = TrainOptions::default();
    let choice = DeviceChoice::resolve(None)?;
    let (mut model, adapter): (Box<dyn Trainable>, String) = if choice == DeviceChoice::Cpu {
        (Box::new(ReferenceModel::new(&arch, batch, &weights, &options)?), "the CPU reference backend".into())
    } else {
        let gpu = Gpu::new(&choice)?;
        let name = gpu.describe();
        (Box::new(GpuModel::new(gpu, &arch, batch, &weights, &options)?), name)
    };
    let config = FitConfig { epochs, ..FitConfig::default() };
    let print_lines = &mut |event: &TrainEvent| event.line().into_iter().for_each(|line| println!("{line}"));
    let outcome = fit_with(model.as_mut(), &train, Some(&validation as &dyn BatchSource), &config, print_lines)?;
    let t = outcome.batches;
    let steps = epochs * (train.len() / batch);
    let model_seconds: f64 =
        outcome.history.epochs.iter().map(|e| e.seconds).sum::<f64>() - t.first_batch_seconds - t.wait_seconds;
    println!("fit/Model A, batch {batch}, {epochs} epoch(s), augmented, on {adapter}: {t}");
    println!(
        "per batch: {:.1} ms to prepare vs {:.1} ms of model time ({steps} training steps and the validation batches)",
        1e3 * t.prepare_seconds / t.batches as f64,
        1e3 * model_seconds / t.batches as f64
    );
    Ok(())
}

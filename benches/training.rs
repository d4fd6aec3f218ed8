//! Whole training steps of the two reference models (Model A: happy-sad at batch 32, Model B:
//! emotions3 at batch 64) in images/s: upload, forward, loss, backward, Adam and the loss
//! readback, on the adapter `WGCNN_DEVICE` chooses and on the CPU reference backend. The median
//! over the timed steps after a warm-up, as `wgcnn bench-train` prints it.
//!
//! `cargo bench --bench training [-- gpu|cpu] [-- A|B]`: arguments filter by backend and model.
//! `WGCNN_BENCH_STEPS` sets the timed steps (default 3).

use wgcnn::gpu::GpuModel;
use wgcnn::gpu::{DeviceChoice, Gpu};
use wgcnn::model::{TrainOptions, Trainable};
use wgcnn::reference::ReferenceModel;
use wgcnn::train::throughput::measure_training;
use wgcnn::workflow::preset::Preset;

fn main() -> wgcnn::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    // Each filter group (backends, models) selects all of its members when none is named.
    let selected = |group: &[&str], member: &str| {
        let named: Vec<&&str> = group.iter().filter(|g| args.iter().any(|a| a == *g)).collect();
        named.is_empty() || named.iter().any(|g| **g == member)
    };
    let (backends, models) = (["gpu", "cpu"], ["A", "B"]);
    let steps = std::env::var("WGCNN_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let gpu = if selected(&backends, "gpu") { Some(Gpu::new(&DeviceChoice::resolve(None)?)?) } else { None };
    for (model, preset, batch) in [("A", "happy-sad", 32), ("B", "emotions3", 64)] {
        if !selected(&models, model) {
            continue;
        }
        let arch = Preset::named(preset)?.architecture;
        let weights = arch.initial_weights(1)?;
        let options = TrainOptions::default();
        let mut runs: Vec<(String, Box<dyn Trainable>)> = Vec::new();
        if let Some(gpu) = &gpu {
            runs.push((gpu.describe(), Box::new(GpuModel::new(gpu.clone(), &arch, batch, &weights, &options)?)));
        }
        if selected(&backends, "cpu") {
            runs.push((
                "CPU reference backend".into(),
                Box::new(ReferenceModel::new(&arch, batch, &weights, &options)?),
            ));
        }
        for (adapter, mut trainable) in runs {
            let t = measure_training(trainable.as_mut(), arch.input.elements(), arch.classes(), 1, steps, 7)?;
            println!(
                "train_step/{model} ({preset}, batch {batch}): median {:.3} s, {:.2} images/s on {adapter}",
                t.median_step(),
                t.images_per_second()
            );
        }
    }
    Ok(())
}

//! `wgcnn bench-train`: training and inference speed on random data, and a profile by layer.

use wgcnn::gpu::DeviceChoice;
use wgcnn::model::TrainOptions;
use wgcnn::model::spec::InputShape;
use wgcnn::train::throughput::{measure_inference, measure_training, profile_training};
use wgcnn::workflow::preset::Preset;

use crate::device::{because, chosen_backend};
use crate::errors::typed;

pub fn bench_train(
    choice: &DeviceChoice,
    preset: &str,
    batch: Option<usize>,
    steps: usize,
    warmup: usize,
    size: Option<usize>,
    profile: bool,
) -> anyhow::Result<()> {
    let defaults = typed(Preset::named(preset))?;
    let mut arch = defaults.architecture;
    if let Some(size) = size {
        let channels = arch.input.channels;
        arch = arch.with_input(InputShape::new(channels, size, size));
    }
    let batch = batch.unwrap_or(defaults.bench_batch_size);
    let weights = arch.initial_weights(1)?;
    let (backend, why) = chosen_backend(choice)?;
    let mut model = backend.model(&arch, batch, &weights, &TrainOptions::default())?;
    println!("adapter: {}{}", backend.describe(), because(&why));
    println!("model: {preset} ({arch}) at {}, batch {batch}", arch.input);
    let sample_len = arch.input.elements();
    let t = measure_training(model.as_mut(), sample_len, arch.classes(), warmup, steps, 7)?;
    let seconds: Vec<String> = t.step_seconds.iter().map(|s| format!("{s:.3}")).collect();
    println!("step seconds: {}", seconds.join(" "));
    println!("median step: {:.3} s, {:.2} images/s (training)", t.median_step(), t.images_per_second());
    if profile {
        let profile = profile_training(model.as_mut(), sample_len, arch.classes(), 7)?;
        let total = profile.total();
        println!("\none step by layer and pass (each part run on its own: {:.3} s in all)", total);
        println!("  {:<22} {:>10} {:>7}", "part", "ms", "share");
        for (label, seconds) in &profile.parts {
            println!("  {label:<22} {:>10.2} {:>6.1}%", seconds * 1e3, 100.0 * seconds / total);
        }
    }
    // After the profile: inference needs fewer buffers, and the CPU backends free the rest.
    let inference = measure_inference(model.as_mut(), sample_len, warmup.min(2), steps, 7)?;
    println!(
        "median batch: {:.3} s, {:.2} images/s (inference)",
        inference.median_step(),
        inference.images_per_second()
    );
    Ok(())
}

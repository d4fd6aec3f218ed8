//! `wgcnn synth`: a dataset of synthetic cartoon faces written as PNGs.

use wgcnn::data::synth::{Emotion, FacePairing, write_dataset};

pub fn synth(
    out: &std::path::Path,
    per_class: usize,
    classes: &str,
    size: u32,
    seed: u64,
    pairing: FacePairing,
) -> anyhow::Result<()> {
    let emotions = Emotion::parse_list(classes)?;
    let written = write_dataset(out, &emotions, per_class, size, seed, pairing)?;
    for emotion in &emotions {
        println!("{}: {per_class} images in {}", emotion.name(), out.join(emotion.name()).display());
    }
    println!("wrote {} PNGs of {size}x{size} (seed {seed}) under {}", written.len(), out.display());
    Ok(())
}

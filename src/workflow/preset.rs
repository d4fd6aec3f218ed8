//! The built-in models as the commands use them: the architecture and the batch sizes that go
//! with it.

use crate::Result;
use crate::model::spec::Architecture;

/// A built-in model ([`crate::model::spec::PRESETS`]) and its batch sizes.
#[derive(Clone, Debug)]
pub struct Preset {
    pub architecture: Architecture,
    /// Images per training step unless told (the source projects' Keras default, 32).
    pub batch_size: usize,
    /// Images per step `bench-train` measures unless told (as `benches/training.rs`).
    pub bench_batch_size: usize,
}

impl Preset {
    /// The preset `wgcnn train` uses when given neither `--preset` nor `--arch`.
    pub const DEFAULT: &'static str = "happy-sad";

    /// The preset named `name`; an error listing the presets for another name.
    pub fn named(name: &str) -> Result<Preset> {
        let architecture = Architecture::preset(name)?;
        let bench_batch_size = if name == "emotions3" { 64 } else { 32 };
        Ok(Preset { architecture, batch_size: 32, bench_batch_size })
    }
}

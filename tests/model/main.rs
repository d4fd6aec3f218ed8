//! Models, their files and specs, the trainer, and the shape of the code.
//! One test binary per group, so `cargo test` links a handful of binaries, not one per file.

#[path = "../common/mod.rs"]
mod common;

mod architecture;
mod fit;
mod learning;
mod model;
mod model_file;
mod spec;

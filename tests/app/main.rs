//! The application: the CLI, reports, explanations.
//! One test binary per group, so `cargo test` links a handful of binaries, not one per file.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod explain;
mod explain_faces;
mod full_disk;
mod report;
mod resume;
mod workflow;

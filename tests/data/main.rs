//! Reading image folders, and hostile input.
//! One test binary per group, so `cargo test` links a handful of binaries, not one per file.

#[path = "../common/mod.rs"]
mod common;

mod data;
mod hostile;

//! Every WGSL kernel family and every native CPU op against the CPU reference, and the GPU context.
//! One test binary per group, so `cargo test` links a handful of binaries, not one per file.

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod adam;
mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod gpu;
mod loss;
mod max_pool2d;
mod native;

//! wgcnn: a convolutional-network engine whose GPU kernels are hand-written WGSL run through wgpu,
//! with a plain CPU reference of every kernel that the tests hold them to.

pub mod data;
pub mod error;
pub mod files;
pub mod gpu;
pub mod model;
pub mod native;
pub mod reference;
pub mod report;
pub mod serve;
pub mod shape;
pub mod train;
pub mod workflow;

pub use error::{Error, Result};

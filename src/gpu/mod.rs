//! The wgpu side: device, tensors, kernels and the ops that drive them.

pub mod context;
pub mod kernel;
pub mod ops;
pub mod tensor;

pub use context::{AdapterProfile, DeviceChoice, Gpu};
pub use kernel::{Dispatch, grid};
pub use tensor::GpuTensor;

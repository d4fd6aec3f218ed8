//! The wgpu side: device, tensors, kernels and the ops that drive them.

pub mod context;
pub mod device;
pub mod kernel;
pub mod ops;
pub mod tensor;

pub use context::Gpu;
pub use device::{AdapterProfile, DeviceChoice, GpuDevice, KernelChoice, KernelVariant};
pub use kernel::{Dispatch, grid};
pub use tensor::GpuTensor;

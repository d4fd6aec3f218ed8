//! The wgpu side: device, tensors, kernels, the ops that drive them, and [`GpuModel`], the model
//! that records and replays them.

pub mod context;
pub mod device;
mod executor;
pub mod kernel;
pub mod ops;
pub mod tensor;

pub use context::Gpu;
pub use device::{AdapterProfile, DeviceChoice, GpuDevice, KernelChoice, KernelVariant};
pub use executor::GpuModel;
pub use kernel::{Dispatch, grid};
pub use tensor::GpuTensor;

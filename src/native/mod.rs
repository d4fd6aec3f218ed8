//! The native CPU backend: its ops, and [`NativeModel`], the model that runs them (`--device
//! cpu`). The ops have the same semantics as [`crate::reference`], computed fast on
//! every core. Convolutions and dense layers are GEMMs (im2col per image tile into
//! the gemm crate's kernels, [`CpuKernels`]), the rest are loops split across cores with rayon. Tensors are NCHW f32.
//!
//! Deterministic: work is split into pieces fixed by the shapes (images, planes, chunks), never by
//! the thread count, and every sum across pieces is added in piece order, so a seed gives the same
//! bits with any `RAYON_NUM_THREADS`. Ops write into buffers the caller owns (from a
//! [`buffers::BufferPool`]), so a training step reuses the memory of the one before.

pub mod batch_norm;
pub mod buffers;
pub mod conv2d;
pub mod conv_pool;
pub mod dense;
pub mod elementwise;
mod executor;
mod first_layer;
mod gemm;
mod image_groups;
pub mod max_pool2d;
mod sum;
mod winograd;

pub use executor::NativeModel;
pub use gemm::{CPU_KERNELS_ENV, CpuKernels};

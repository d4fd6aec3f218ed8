//! The GPU context every op takes: an open device ([`GpuDevice`], which it derefs to) and the
//! cache of its compiled kernels, with the calls that bind and run them.
//!
//! Modules below it (`device`, `tensor`, `kernel`) import only downwards: device <- tensor <-
//! kernel <- context.

use std::ops::Deref;
use std::sync::Arc;

use super::device::{DeviceChoice, GpuDevice, KernelChoice};
use super::kernel::{Dispatch, Kernel, KernelCache, KernelSpec, record};
use super::tensor::{GpuTensor, read_all_after};
use crate::error::Result;

/// An open device and its pipeline cache.
pub struct Gpu {
    /// The device, its queue and adapter: what `Gpu` derefs to.
    opened: GpuDevice,
    kernels: KernelCache,
}

impl Deref for Gpu {
    type Target = GpuDevice;
    fn deref(&self) -> &GpuDevice {
        &self.opened
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}

impl Gpu {
    /// Opens the adapter `choice` names, with the kernel variant `WGCNN_KERNELS` forces or its
    /// type suits. The CPU backends are not GPUs and are refused here.
    pub fn new(choice: &DeviceChoice) -> Result<Arc<Gpu>> {
        Self::with_kernels(choice, KernelChoice::from_env()?)
    }

    /// [`Gpu::new`] with the kernel variant chosen by `kernels` (the tests run both variants on
    /// one adapter).
    pub fn with_kernels(choice: &DeviceChoice, kernels: KernelChoice) -> Result<Arc<Gpu>> {
        Ok(Arc::new(Gpu { opened: GpuDevice::new(choice, kernels)?, kernels: KernelCache::default() }))
    }

    /// The pipeline for `spec` with the given override constants, compiled on first use.
    pub fn kernel(&self, spec: &KernelSpec, constants: &[(&'static str, f64)]) -> Result<Arc<Kernel>> {
        self.kernels.get_or_build(&self.opened, spec, constants)
    }

    /// Binds `kernel` to its uniform parameters and storage tensors, for `workgroups` workgroups.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &Arc<Kernel>,
        params: &P,
        tensors: &[&GpuTensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        Dispatch::new(&self.opened, kernel, params, tensors, workgroups)
    }
    /// Records `dispatches` in order into one compute pass, then copies `result` back, all in one
    /// submit: a training step's only readback.
    pub fn run_and_read<'a>(
        &self,
        dispatches: impl IntoIterator<Item = &'a Dispatch>,
        result: &GpuTensor,
    ) -> Result<Vec<f32>> {
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgcnn step") });
        record(&mut encoder, dispatches);
        result.read_after(self, encoder)
    }

    /// Records `dispatches` in order into one compute pass, then copies every one of `results`
    /// back, all in one submit; their contents in order.
    pub fn run_and_read_all<'a>(
        &self,
        dispatches: impl IntoIterator<Item = &'a Dispatch>,
        results: &[&GpuTensor],
    ) -> Result<Vec<Vec<f32>>> {
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgcnn run") });
        record(&mut encoder, dispatches);
        read_all_after(self, results, encoder)
    }

    /// Records `dispatches` in order into one compute pass, submits once and waits.
    pub fn run(&self, dispatches: &[&Dispatch]) -> Result<()> {
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgcnn run") });
        record(&mut encoder, dispatches.iter().copied());
        self.queue.submit([encoder.finish()]);
        self.wait()
    }
}

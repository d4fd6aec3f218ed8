//! Compiled kernels (one pipeline per shader entry point and set of override constants), built once
//! and cached, and [`Dispatch`]es: a kernel bound to its buffers, ready to record into a pass.
//!
//! Every kernel binds group 0 as: binding 0 a uniform block of shape parameters, then the storage
//! buffers its [`KernelSpec::bindings`] lists, each at its own binding number. Entry points of one
//! file may use different subsets of the file's bindings; no two resources share a number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::device::GpuDevice;
use super::tensor::GpuTensor;
use crate::error::Result;

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// A WGSL source file of `shaders/`.
#[derive(Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// Declares a [`Shader`] from `shaders/<file>`.
#[macro_export]
macro_rules! shader {
    ($file:literal) => {
        $crate::gpu::kernel::Shader {
            name: $file,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)),
        }
    };
}

/// One entry point of a shader with the storage bindings it uses: (binding number, access), in
/// the order `Dispatch::new` receives the tensors.
#[derive(Debug)]
pub struct KernelSpec {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub bindings: &'static [(u32, Access)],
}

/// A compiled compute pipeline and its bind group layout.
#[derive(Debug)]
pub struct Kernel {
    pub label: String,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// Binding numbers of the storage buffers, in dispatch order.
    slots: Vec<u32>,
}

type KernelKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct KernelCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    kernels: Mutex<HashMap<KernelKey, Arc<Kernel>>>,
}

/// The largest number of workgroups in one dimension that every adapter accepts.
pub const MAX_WORKGROUPS_PER_DIM: u32 = 65535;

/// Spreads `count` workgroups over x and y so that neither exceeds the per-dimension limit.
/// Kernels rebuild the linear index as `wid.x + wid.y * num_workgroups.x` and bounds-check it.
pub fn grid(count: u32) -> [u32; 3] {
    let x = count.clamp(1, MAX_WORKGROUPS_PER_DIM);
    [x, count.div_ceil(x).max(1), 1]
}

impl KernelCache {
    /// The pipeline for `spec` with the given override constants, compiled on first use.
    pub(crate) fn get_or_build(
        &self,
        gpu: &GpuDevice,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>> {
        let key: KernelKey = (spec.shader.name, spec.entry, constants.iter().map(|&(k, v)| (k, v.to_bits())).collect());
        if let Some(kernel) = self.kernels.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(kernel.clone());
        }
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            modules
                .entry(spec.shader.name)
                .or_insert_with(|| {
                    let source = wgpu::ShaderModuleDescriptor {
                        label: Some(spec.shader.name),
                        source: wgpu::ShaderSource::Wgsl(spec.shader.source.into()),
                    };
                    // SAFETY: the one check dropped is naga's loop bounding, an iteration counter
                    // it adds to every loop in case a loop never ends. Every loop in shaders/
                    // runs to a bound taken from its parameters, and the counter costs 8-13% of
                    // a convolution on lavapipe. Bounds and division checks stay.
                    unsafe {
                        gpu.device.create_shader_module_trusted(
                            source,
                            wgpu::ShaderRuntimeChecks {
                                force_loop_bounding: false,
                                ..wgpu::ShaderRuntimeChecks::checked()
                            },
                        )
                    }
                })
                .clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for &(binding, access) in spec.bindings {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: access == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let label = format!("{}::{}", spec.shader.name, spec.entry);
        let layout = gpu
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&label), entries: &entries });
        let pipeline_layout = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        // A shader that does not compile is a bug of ours: report it with the kernel's name.
        gpu.check_errors().map_err(|e| crate::Error::Gpu(format!("building kernel {label}: {e}")))?;
        let kernel = Arc::new(Kernel { label, pipeline, layout, slots: spec.bindings.iter().map(|b| b.0).collect() });
        self.kernels.lock().unwrap_or_else(|p| p.into_inner()).insert(key, kernel.clone());
        Ok(kernel)
    }
}

/// Records the dispatches in order into one compute pass of `encoder`.
pub fn record<'a>(encoder: &mut wgpu::CommandEncoder, dispatches: impl IntoIterator<Item = &'a Dispatch>) {
    let mut pass =
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("wgcnn"), timestamp_writes: None });
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// A kernel bound to its buffers: recorded again and again without rebuilding anything.
#[derive(Debug)]
pub struct Dispatch {
    kernel: Arc<Kernel>,
    bind_group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    workgroups: [u32; 3],
}

impl Dispatch {
    /// Binds `kernel` to its uniform parameters and storage tensors, for `workgroups` workgroups.
    pub(crate) fn new<P: bytemuck::Pod>(
        gpu: &GpuDevice,
        kernel: &Arc<Kernel>,
        params: &P,
        tensors: &[&GpuTensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        if tensors.len() != kernel.slots.len() {
            return Err(crate::Error::Invalid(format!(
                "kernel {} takes {} buffers, given {}",
                kernel.label,
                kernel.slots.len(),
                tensors.len()
            )));
        }
        let uniform = gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(&kernel.label),
            contents: bytemuck::bytes_of(params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (&binding, t) in kernel.slots.iter().zip(tensors) {
            entries.push(wgpu::BindGroupEntry { binding, resource: t.binding() });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.label),
            layout: &kernel.layout,
            entries: &entries,
        });
        Ok(Dispatch { kernel: kernel.clone(), bind_group, uniform, workgroups })
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Rewrites the uniform parameters (e.g. Adam's step count) before the next submit.
    pub fn update_params<P: bytemuck::Pod>(&self, queue: &wgpu::Queue, params: &P) {
        queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(params));
    }

    pub fn label(&self) -> &str {
        &self.kernel.label
    }
}

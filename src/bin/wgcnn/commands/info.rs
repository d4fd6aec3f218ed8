//! `wgcnn info`: the adapters found, the CPU backends and kernels, and the chosen device's limits.

use wgcnn::gpu::device::{KERNELS_ENV, describe_adapter, list_adapters};
use wgcnn::gpu::{DeviceChoice, KernelChoice};
use wgcnn::model::backend::Backend;
use wgcnn::native::{CPU_KERNELS_ENV, CpuKernels};

use crate::device::{because, chosen_backend};
use crate::errors::typed;

pub fn info(choice: &DeviceChoice) -> anyhow::Result<()> {
    let adapters = list_adapters();
    println!("adapters found: {}", adapters.len());
    for a in &adapters {
        let i = a.get_info();
        println!("  {}  driver: {} {}", describe_adapter(&i), i.driver, i.driver_info);
    }
    println!("CPU backends:");
    println!("  {}  (--device cpu)", Backend::Native.describe());
    println!("  {}  (--device reference)", Backend::Reference.describe());
    println!(
        "  CPU kernels: {} (this CPU runs {} at most; {CPU_KERNELS_ENV}=avx512|avx2|portable|auto)",
        CpuKernels::in_use(),
        CpuKernels::detected()
    );
    let (backend, why) = chosen_backend(choice)?;
    match &backend {
        Backend::Gpu(gpu) => {
            let l = &gpu.limits;
            println!("chosen: {}{}", gpu.describe(), because(&why));
            let (_, chosen_by) = typed(KernelChoice::from_env())?.variant(gpu.profile);
            println!("  kernels:             {} ({chosen_by}; {KERNELS_ENV}=tiled|software|auto)", gpu.kernels);
            println!("  max storage binding: {} MiB", l.max_storage_buffer_binding_size / (1 << 20));
            println!("  max buffer:          {} MiB", l.max_buffer_size / (1 << 20));
            println!("  max workgroup:       {} invocations", l.max_compute_invocations_per_workgroup);
            println!("  max workgroups/dim:  {}", l.max_compute_workgroups_per_dimension);
        }
        cpu => println!("chosen: {}{}", cpu.describe(), because(&why)),
    }
    Ok(())
}

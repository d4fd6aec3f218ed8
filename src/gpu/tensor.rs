//! f32 tensors in GPU storage buffers, with an NCHW (or any row-major) shape.

use std::sync::{Arc, Mutex};

use super::device::GpuDevice;
use crate::error::{Error, Result};

/// A row-major f32 (or u32, for argmax indices) tensor living in a GPU buffer, possibly a view
/// into a larger one (parameter arenas).
#[derive(Clone, Debug)]
pub struct GpuTensor {
    buffer: wgpu::Buffer,
    offset: u64,
    shape: Vec<usize>,
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl GpuTensor {
    /// A zero-filled tensor. Fails with a clear error if it exceeds one storage binding.
    pub fn zeros(gpu: &GpuDevice, what: &str, shape: &[usize]) -> Result<Self> {
        let bytes = Self::check_size(gpu, what, shape)?;
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self { buffer, offset: 0, shape: shape.to_vec() })
    }

    /// A tensor holding `data` (f32 or u32).
    pub fn from_slice<T: bytemuck::Pod>(gpu: &GpuDevice, what: &str, shape: &[usize], data: &[T]) -> Result<Self> {
        if numel(shape) != data.len() {
            return Err(Error::shape(what, shape, format!("{} elements", data.len())));
        }
        let t = Self::zeros(gpu, what, shape)?;
        t.write(gpu, data)?;
        Ok(t)
    }

    /// A view of `shape` at byte `offset` of `buffer`. The offset must honour the adapter's
    /// storage-offset alignment.
    pub fn view(buffer: &wgpu::Buffer, offset: u64, shape: &[usize]) -> Self {
        Self { buffer: buffer.clone(), offset, shape: shape.to_vec() }
    }

    fn check_size(gpu: &GpuDevice, what: &str, shape: &[usize]) -> Result<u64> {
        let bytes = numel(shape) as u64 * 4;
        let limit = gpu.max_binding_bytes();
        if bytes > limit {
            let hint = match shape.first() {
                Some(&batch) if batch > 1 => {
                    let per_item = bytes / batch as u64;
                    format!("; a batch of at most {} would fit", (limit / per_item.max(1)).max(1))
                }
                _ => String::new(),
            };
            return Err(Error::TensorTooLarge { what: what.to_string(), shape: shape.to_vec(), bytes, limit, hint });
        }
        Ok(bytes)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn len(&self) -> usize {
        numel(&self.shape)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * 4
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The same storage seen with another shape of as many elements.
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.len() {
            return Err(Error::shape("reshape", &self.shape, shape));
        }
        Ok(Self { shape: shape.to_vec(), ..self.clone() })
    }

    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.bytes().max(4)),
        })
    }

    /// Overwrites the contents with `data` (queued; visible to the next submit).
    pub fn write<T: bytemuck::Pod>(&self, gpu: &GpuDevice, data: &[T]) -> Result<()> {
        if std::mem::size_of_val(data) as u64 != self.bytes() {
            return Err(Error::shape("tensor upload", &self.shape, format!("{} elements", data.len())));
        }
        gpu.queue.write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Copies the contents back to the host (waits for all submitted work).
    pub fn read<T: bytemuck::Pod>(&self, gpu: &GpuDevice) -> Result<Vec<T>> {
        self.read_after(gpu, gpu.device.create_command_encoder(&Default::default()))
    }

    /// Appends the copy to the host to `encoder`, submits it (one submit for the work recorded
    /// before and the readback), waits and returns the contents.
    pub fn read_after<T: bytemuck::Pod>(&self, gpu: &GpuDevice, encoder: wgpu::CommandEncoder) -> Result<Vec<T>> {
        let mut contents = read_all_after(gpu, &[self], encoder)?;
        Ok(contents.pop().expect("one tensor read"))
    }
}

/// Appends copies of `tensors` to the host to `encoder`, one after another into one staging
/// buffer, submits once, waits, and returns their contents in order: several results of one step
/// for the price of one readback.
pub fn read_all_after<T: bytemuck::Pod>(
    gpu: &GpuDevice,
    tensors: &[&GpuTensor],
    mut encoder: wgpu::CommandEncoder,
) -> Result<Vec<Vec<T>>> {
    let total: u64 = tensors.iter().map(|t| t.bytes()).sum();
    if total == 0 {
        gpu.queue.submit([encoder.finish()]);
        gpu.wait()?;
        return Ok(tensors.iter().map(|_| Vec::new()).collect());
    }
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: total,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    // Every tensor holds whole 4-byte elements, so each copy starts 4-byte aligned.
    let mut at = 0;
    for t in tensors {
        if t.bytes() > 0 {
            encoder.copy_buffer_to_buffer(&t.buffer, t.offset, &staging, at, t.bytes());
        }
        at += t.bytes();
    }
    gpu.queue.submit([encoder.finish()]);
    let outcome: Arc<Mutex<Option<Result<(), wgpu::BufferAsyncError>>>> = Arc::default();
    let sink = outcome.clone();
    staging.map_async(wgpu::MapMode::Read, .., move |r| *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(r));
    // Another thread's poll may be the one that fires our callback, a moment after our own
    // poll has returned: wait for the callback itself, not only for the queue.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        gpu.wait()?;
        match outcome.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(Ok(())) => break,
            Some(Err(e)) => return Err(Error::Readback(e.to_string())),
            None if std::time::Instant::now() > deadline => {
                return Err(Error::Readback("the device finished without mapping the buffer".into()));
            }
            None => std::thread::yield_now(),
        }
    }
    let view = staging.get_mapped_range(..).map_err(|e| Error::Readback(e.to_string()))?;
    let mut out = Vec::with_capacity(tensors.len());
    let mut at = 0;
    for t in tensors {
        let end = at + t.bytes() as usize;
        out.push(bytemuck::pod_collect_to_vec(&view[at..end]));
        at = end;
    }
    drop(view);
    staging.unmap();
    Ok(out)
}

//! Host side of each kernel family: checks shapes, picks the variant for the adapter, and returns
//! [`Dispatch`](super::Dispatch)es to record into a step. One module per `shaders/*.wgsl` file.

pub mod activation;
pub mod adam;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod loss;
pub mod max_pool2d;

/// Uniform block of element-wise kernels: the element count, padded to 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LenParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

impl LenParams {
    pub fn new(len: usize) -> Self {
        Self { len: len as u32, _pad: [0; 3] }
    }
}

/// Workgroups for `len` elements at `per_workgroup` elements each, spread over x and y.
pub fn elementwise_grid(len: usize, per_workgroup: u32) -> [u32; 3] {
    super::grid((len as u32).div_ceil(per_workgroup))
}

/// Fails with a shape error naming `what` unless the two shapes have as many elements.
pub(crate) fn same_len(what: &str, a: &super::GpuTensor, b: &super::GpuTensor) -> crate::Result<()> {
    if a.len() != b.len() {
        return Err(crate::Error::shape(what, a.shape(), b.shape()));
    }
    Ok(())
}

//! Host side of each kernel family: checks shapes, picks the variant for the adapter, and returns
//! [`Dispatch`](super::Dispatch)es to record into a step. One module per `shaders/*.wgsl` file.

pub mod activation;
pub mod adam;
pub mod batch_norm;
pub mod conv2d;
pub mod conv2d_mm;
pub mod dense;
pub mod dropout;
pub mod loss;
pub mod max_pool2d;

use crate::shape::Conv2dShape;

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

/// Uniform block of the convolution kernels (`conv2d.wgsl`, `conv2d_mm.wgsl`): the shape, the
/// fused ReLU, and the weight gradient's split of its reduction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    pub batch: u32,
    pub in_c: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub relu: u32,
    pub split_len: u32,
    pub splits: u32,
    pub _pad: u32,
}

impl ConvParams {
    pub fn new(s: &Conv2dShape) -> Self {
        ConvParams {
            batch: s.batch as u32,
            in_c: s.in_channels as u32,
            in_h: s.in_h as u32,
            in_w: s.in_w as u32,
            out_c: s.out_channels as u32,
            out_h: s.out_h() as u32,
            out_w: s.out_w() as u32,
            k_h: s.kernel_h as u32,
            k_w: s.kernel_w as u32,
            stride: s.stride as u32,
            pad_top: s.pad_top() as u32,
            pad_left: s.pad_left() as u32,
            ..Default::default()
        }
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

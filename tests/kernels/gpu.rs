//! The GPU context and tensors: device choice parsing, the binding-limit error, upload/download.

use crate::common::*;
use wgcnn::Error;
use wgcnn::gpu::{DeviceChoice, GpuTensor};

#[test]
fn device_choices_parse() {
    assert_eq!("gpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Gpu);
    assert_eq!("Software".parse::<DeviceChoice>().unwrap(), DeviceChoice::Software);
    assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
    assert_eq!("".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
    assert_eq!("llvmpipe".parse::<DeviceChoice>().unwrap(), DeviceChoice::Name("llvmpipe".into()));
    let err = "a$b".parse::<DeviceChoice>().unwrap_err().to_string();
    assert!(err.contains("expected gpu, software, cpu"), "{err}");
}

#[test]
fn a_tensor_over_the_binding_limit_is_a_clear_error() {
    let gpu = gpu();
    let limit = gpu.max_binding_bytes();
    // One image of this many floats is a quarter of the limit: 8 of them are twice over it.
    let per_image = (limit / 16) as usize;
    match GpuTensor::zeros(&gpu, "activations", &[8, per_image]) {
        Err(Error::TensorTooLarge { what, bytes, limit: reported, hint, .. }) => {
            assert_eq!(what, "activations");
            assert_eq!(reported, limit);
            assert!(bytes > limit);
            assert!(hint.contains("a batch of at most 4 would fit"), "{hint}");
        }
        other => panic!("expected TensorTooLarge, got {other:?}"),
    }
}

#[test]
fn tensors_round_trip_and_check_their_lengths() {
    let gpu = gpu();
    let data = random(1, 3 * 5 * 7, -1.0, 1.0);
    let t = upload(&gpu, "t", &[3, 5, 7], &data);
    assert_eq!(download(&gpu, &t), data);
    assert!(t.write(&gpu, &data[..10]).is_err());
    assert!(GpuTensor::from_slice(&gpu, "t", &[2, 2], &data).is_err());
    assert!(t.reshaped(&[105]).is_ok() && t.reshaped(&[104]).is_err());
}

//! The CPU reference: every GPU kernel's semantics as plain loops a reader can check by eye.
//! Generic over f32 (the backend `--device reference` runs) and f64 (finite-difference gradient checks).

pub mod activation;
pub mod adam;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod loss;
pub mod max_pool2d;

/// The float types the reference runs in.
pub trait Real:
    num_traits::Float + num_traits::FromPrimitive + std::iter::Sum + Default + std::fmt::Debug + Send + Sync + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

/// `v` converted to `T` (the hyper-parameters are stored as f32).
pub fn real<T: Real>(v: f64) -> T {
    T::from_f64(v).expect("every f64 converts to a float type")
}

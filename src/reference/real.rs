//! The float types the reference runs in: f32 (the backend) and f64 (gradient checks).

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

//! The CPU reference: every GPU kernel's semantics as plain loops a reader can check by eye, and
//! [`ReferenceModel`], the model that runs them (`--device reference`).
//! Generic over f32 (the backend `--device reference` runs) and f64 (finite-difference gradient checks).

pub mod activation;
pub mod adam;
pub mod batch_norm;
pub mod conv2d;
pub mod dense;
pub mod dropout;
mod executor;
pub mod loss;
pub mod max_pool2d;
mod real;

pub use executor::ReferenceModel;
pub use real::{Real, real};

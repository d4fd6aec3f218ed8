//! Architectures as data: a sequential stack of layers written as a short spec string
//! (`c16-p-c32-p-f-d256-d1`), with shape inference, Keras-like layer and parameter names, Keras's
//! default initialisers and a `model.summary()`-like table.
//!
//! Spec tokens, joined by `-`:
//! - `c<filters>[x<kernel>][s<stride>][same][lin]`: 2-D convolution, kernel 3, stride 1, valid padding
//!   and ReLU unless told (`c32x5s2same`);
//! - `p[<size>[s<stride>]]`: max-pooling, size 2, stride = size;
//! - `bn`: batch normalisation; `r`: ReLU; `f`: flatten;
//! - `d<units>[lin]`: dense with ReLU, except the last layer, which must be dense and is the linear
//!   output head (1 unit: sigmoid and binary cross-entropy; 2 or more: softmax and categorical
//!   cross-entropy);
//! - `drop<rate>`: dropout (`drop0.5`).
//!
//! Each layer kind is defined in its own module of `kinds`; [`LayerKind::ALL`] lists them.

mod cursor;
mod grammar;
mod infer;
mod kinds;
mod layers;
mod params;
mod summary;

pub use kinds::*;
pub use layers::{Architecture, InputShape, LayerInfo};
pub use params::{Init, ParamInfo};

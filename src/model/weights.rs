//! Weights as they travel between a backend, the trainer and a model file: named host tensors.

/// A named host tensor: how weights travel between a backend, the trainer and a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// e.g. `conv1.weight`, `dense2.bias`, `bn1.running_mean`.
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

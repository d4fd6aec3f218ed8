//! Weights as they travel between a backend, the trainer and a model file: named host tensors.

/// A named host tensor: how weights travel between a backend, the trainer and a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// e.g. `conv1.weight`, `dense2.bias`, `bn1.running_mean`.
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Adam's state, to resume training where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Steps taken (the next one is `step + 1`).
    pub step: u64,
    /// Learning rate of the last step.
    pub lr: f32,
    /// First and second moments, one per trainable parameter, named and ordered like it.
    pub m: Vec<NamedTensor>,
    pub v: Vec<NamedTensor>,
}

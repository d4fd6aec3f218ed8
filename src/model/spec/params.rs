//! A layer's parameters as shape inference describes them: name, shape, whether Adam trains it,
//! and how it starts.

/// How a parameter starts, as Keras's defaults for its layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform in `[-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform {
        fan_in: usize,
        fan_out: usize,
    },
    Zeros,
    Ones,
}

/// One parameter (or running statistic) of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// `<layer>.<role>`, e.g. `conv1.weight`, `bn1.running_var`.
    pub name: String,
    pub shape: Vec<usize>,
    /// False for batch normalisation's running statistics, which Adam does not update.
    pub trainable: bool,
    pub init: Init,
}

impl ParamInfo {
    /// Parameter `<layer>.<role>`.
    pub(super) fn new(layer: &str, role: &str, shape: Vec<usize>, trainable: bool, init: Init) -> ParamInfo {
        ParamInfo { name: format!("{layer}.{role}"), shape, trainable, init }
    }

    /// Number of values.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

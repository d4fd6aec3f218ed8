//! Typed errors of the library. The binary prints them in one line.

use thiserror::Error;

/// Result with the library's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no GPU or software adapter found{detail}: install Mesa's software Vulkan driver \
         (`apt-get install mesa-vulkan-drivers`) or run on the native CPU backend (device `cpu`)"
    )]
    NoAdapter { detail: String },

    #[error(
        "no adapter matches the device {wanted:?}; adapters found: {found}. Choose auto (the best \
         found), software (lavapipe: the WGSL kernels on the CPU) or cpu (the CPU backend)"
    )]
    AdapterNotFound { wanted: String, found: String },

    #[error("unknown device {0:?}: expected gpu, software, cpu, auto or part of an adapter name")]
    BadDeviceChoice(String),

    #[error("could not open the device on adapter {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },

    #[error(
        "tensor {what} of shape {shape:?} needs {bytes} bytes, over this adapter's limit of {limit} bytes \
         per storage binding{hint}"
    )]
    TensorTooLarge { what: String, shape: Vec<usize>, bytes: u64, limit: u64, hint: String },

    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape { what: String, expected: String, got: String },

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("reading back a GPU buffer failed: {0}")]
    Readback(String),

    /// A dataset folder that cannot be used (missing, too few classes, an empty class), or a
    /// synthetic dataset that cannot be written there.
    #[error("dataset folder {path}: {reason}")]
    Dataset { path: std::path::PathBuf, reason: String },

    /// Training stopped when asked (Ctrl-C, SIGTERM) after step `step` of epoch `epoch`, and the
    /// checkpoint holds that moment.
    #[error("training interrupted after step {step} of epoch {epoch}; {} holds that moment", checkpoint.display())]
    Interrupted { checkpoint: std::path::PathBuf, epoch: usize, step: usize },

    /// A training setting that cannot be used: `field` names the
    /// [`TrainSettings`](crate::workflow::train::TrainSettings) field, `reason` what is wrong with
    /// its value (`split leaves the training split empty`).
    #[error("setting {field} {reason}")]
    Setting { field: &'static str, reason: String },

    /// A fresh run's folder holds another run's model (`model`) or only its checkpoint, and the
    /// settings do not say to overwrite it.
    #[error(
        "{}: the run folder {}",
        out.display(),
        if *model {
            "already holds a model; set overwrite to replace it, or train into another folder"
        } else {
            "holds the checkpoint of a run; resume it, set overwrite to start again, or train into another folder"
        }
    )]
    RunFolderInUse { out: std::path::PathBuf, model: bool, checkpoint: bool },

    /// A resumed run that has nothing left to do: early stopping ended it, or it ran `epochs`.
    #[error(
        "{}: the run is finished: {}",
        out.display(),
        if *early_stopped {
            format!("early stopping ended it after epoch {done}")
        } else {
            format!("it ran {done} of {epochs} epochs; give it more than {done} epochs to train it further")
        }
    )]
    RunFinished { out: std::path::PathBuf, done: usize, epochs: usize, early_stopped: bool },

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn shape(what: impl Into<String>, expected: impl std::fmt::Debug, got: impl std::fmt::Debug) -> Self {
        Error::Shape { what: what.into(), expected: format!("{expected:?}"), got: format!("{got:?}") }
    }
}

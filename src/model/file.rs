//! The model file: one `.safetensors` file holding the weights as f32 tensors under their names
//! (`conv1.weight`), and as string metadata the architecture, the class names, the input
//! normalisation, the test-time augmentation to predict with (`none` or `mirror`; absent in older
//! files: none), the training history and, to resume training, Adam's step and learning rate (its
//! moments are tensors `adam.m.<name>` and `adam.v.<name>`). A checkpoint is a model file that
//! also holds the trainer's state (`trainer`, JSON, with the weight sets it keeps as tensors
//! `best.<name>` and `epoch_start.<name>`) and the run's settings (`run_settings`).

use std::collections::HashMap;
use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorView};

use crate::files::read_bounded;
use crate::model::history::{History, TrainerState};
use crate::model::normalisation::Normalisation;
use crate::model::spec::{Architecture, ParamInfo};
use crate::model::test_time::TestTimeAugment;
use crate::model::weights::{NamedTensor, OptimizerState};
use crate::{Error, Result};

// Its first home: callers outside the crate (the examples) keep this path.
pub use crate::files::write_atomically;

/// The `format` metadata of a wgcnn model file.
pub const FORMAT: &str = "wgcnn";
/// The `format_version` this build writes and reads.
pub const FORMAT_VERSION: &str = "1";

const ADAM_M_PREFIX: &str = "adam.m.";
const ADAM_V_PREFIX: &str = "adam.v.";
const BEST_PREFIX: &str = "best.";
const EPOCH_START_PREFIX: &str = "epoch_start.";
/// Every prefix of a stored tensor name besides the weights' own (none).
const PREFIXES: [&str; 4] = [ADAM_M_PREFIX, ADAM_V_PREFIX, BEST_PREFIX, EPOCH_START_PREFIX];
/// safetensors' own limit on the JSON header.
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// The largest model file read: far above any model whose tensors fit a GPU's storage bindings
/// (Model A's file is a few MB), and a bound on what a wrong path (a disk image, `/dev/zero`)
/// can make a load read.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// Everything a model file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFile {
    pub architecture: Architecture,
    /// One per class, in label order (two for a binary model).
    pub class_names: Vec<String>,
    /// How images become inputs (`rgb/255 stretch`): its colours are the input's.
    pub normalisation: Normalisation,
    /// How the model is meant to predict: the image alone or averaged with copies of it. Files
    /// written before this setting read as [`TestTimeAugment::None`].
    pub test_time_augment: TestTimeAugment,
    pub history: History,
    /// Every parameter and running statistic, in [`Architecture::params`] order.
    pub weights: Vec<NamedTensor>,
    pub optimizer: Option<OptimizerState>,
    /// A checkpoint's: what the run that wrote it needs to continue (it needs `optimizer` too).
    pub resume: Option<ResumeState>,
}

/// What a checkpoint holds besides the model and Adam's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeState {
    pub trainer: TrainerState,
    /// The run's settings as the workflow that wrote them serialised them (opaque here).
    pub run_settings: String,
}

impl ModelFile {
    /// Writes the model to `path` through a temporary file in the same folder renamed into place, so
    /// an existing file is replaced whole or not at all. Refuses weights, moments or class names that
    /// do not match the architecture (the file could not be loaded back).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|reason| file_error(path, reason))?;
        write_atomically(path, &bytes).map_err(|e| file_error(path, format!("cannot write it: {e}")))
    }

    /// Reads a model written by [`ModelFile::save`] (a regular file of at most [`MAX_FILE_BYTES`]),
    /// checking every tensor against the architecture.
    pub fn load(path: impl AsRef<Path>) -> Result<ModelFile> {
        Self::load_as(path.as_ref(), "model file")
    }

    /// Reads a checkpoint: a model file that holds the trainer's state ([`ModelFile::resume`]).
    pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<ModelFile> {
        let path = path.as_ref();
        let file = Self::load_as(path, "checkpoint")?;
        if file.resume.is_none() {
            return Err(Error::Invalid(format!(
                "checkpoint {}: it holds no trainer state: a model file, not a checkpoint",
                path.display()
            )));
        }
        Ok(file)
    }

    fn load_as(path: &Path, what: &str) -> Result<ModelFile> {
        let error = |reason: String| Error::Invalid(format!("{what} {}: {reason}", path.display()));
        let bytes = read_bounded(path, MAX_FILE_BYTES).map_err(|e| error(e.to_string()))?;
        Self::from_bytes(&bytes).map_err(error)
    }

    fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        let params = self.architecture.params().map_err(|e| e.to_string())?;
        check_class_names(&self.class_names, &self.architecture)?;
        check_normalisation(&self.normalisation, &self.architecture)?;
        check_history(&self.history)?;
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("format_version".to_string(), FORMAT_VERSION.to_string()),
            ("architecture".to_string(), self.architecture.to_string()),
            ("input".to_string(), self.architecture.input.to_string()),
            ("class_names".to_string(), json(&self.class_names)?),
            ("normalisation".to_string(), self.normalisation.to_string()),
            ("test_time_augment".to_string(), self.test_time_augment.to_string()),
            ("history".to_string(), json(&self.history)?),
        ]);
        fn store<'t>(
            stored: &mut Vec<(String, &'t NamedTensor)>,
            prefix: &str,
            params: &[ParamInfo],
            tensors: &'t [NamedTensor],
        ) -> std::result::Result<(), String> {
            let ordered = in_param_order(prefix, params, tensors)?;
            stored.extend(ordered.into_iter().map(|tensor| (format!("{prefix}{}", tensor.name), tensor)));
            Ok(())
        }
        let mut stored = Vec::new();
        store(&mut stored, "", &params, &self.weights)?;
        if let Some(optimizer) = &self.optimizer {
            metadata.insert("adam_step".into(), optimizer.step.to_string());
            metadata.insert("adam_lr".into(), optimizer.lr.to_string());
            let trainable = trainable(&params);
            store(&mut stored, ADAM_M_PREFIX, &trainable, &optimizer.m)?;
            store(&mut stored, ADAM_V_PREFIX, &trainable, &optimizer.v)?;
        }
        if let Some(resume) = &self.resume {
            if self.optimizer.is_none() {
                return Err("a checkpoint needs Adam's state".into());
            }
            metadata.insert("trainer".into(), json(&resume.trainer)?);
            metadata.insert("run_settings".into(), resume.run_settings.clone());
            for (prefix, weights) in
                [(BEST_PREFIX, &resume.trainer.best_weights), (EPOCH_START_PREFIX, &resume.trainer.epoch_start_weights)]
            {
                if let Some(weights) = weights {
                    store(&mut stored, prefix, &params, weights)?;
                }
            }
        }
        let encoded: Vec<(&str, &[usize], Vec<u8>)> = stored
            .iter()
            .map(|(name, tensor)| {
                (name.as_str(), tensor.shape.as_slice(), tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            })
            .collect();
        let views = encoded
            .iter()
            .map(|(name, shape, bytes)| TensorView::new(Dtype::F32, shape.to_vec(), bytes).map(|view| (*name, view)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
    }

    fn from_bytes(bytes: &[u8]) -> std::result::Result<ModelFile, String> {
        let (data, header) = split_header(bytes)?;
        let metadata = match header.metadata() {
            Some(metadata) if metadata.contains_key("format") => metadata,
            _ => return Err("not a wgcnn model: a safetensors file without wgcnn metadata".into()),
        };
        let field =
            |key: &str| metadata.get(key).map(String::as_str).ok_or_else(|| format!("the metadata has no `{key}`"));
        let format = field("format")?;
        if format != FORMAT {
            return Err(format!("not a wgcnn model: its format is {format:?}, not {FORMAT:?}"));
        }
        let version = field("format_version")?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version:?} is not supported: this build reads version {FORMAT_VERSION}"
            ));
        }
        let input = field("input")?.parse().map_err(|e: Error| e.to_string())?;
        let architecture = Architecture::parse(field("architecture")?, input).map_err(|e| e.to_string())?;
        let class_names: Vec<String> = serde_json::from_str(field("class_names")?)
            .map_err(|e| format!("`class_names` is not a JSON array of strings: {e}"))?;
        check_class_names(&class_names, &architecture)?;
        let history: History =
            serde_json::from_str(field("history")?).map_err(|e| format!("`history` is not a training history: {e}"))?;

        // The weights, then one group per prefix of PREFIXES.
        let mut groups: [Vec<NamedTensor>; 1 + PREFIXES.len()] = Default::default();
        for (name, info) in header.tensors() {
            if info.dtype != Dtype::F32 {
                return Err(format!("tensor {name} is {:?}; wgcnn model files hold F32 tensors only", info.dtype));
            }
            let (start, end) = info.data_offsets;
            let raw = data.get(start..end).ok_or_else(|| format!("tensor {name} lies outside the file's data"))?;
            let values = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let (group, name) = PREFIXES
                .iter()
                .enumerate()
                .find_map(|(i, prefix)| name.strip_prefix(prefix).map(|rest| (1 + i, rest.to_string())))
                .unwrap_or((0, name));
            groups[group].push(NamedTensor { name, shape: info.shape.clone(), data: values });
        }
        let [weights, m, v, best, epoch_start] = groups;

        let params = architecture.params().map_err(|e| e.to_string())?;
        let weights = owned(in_param_order("", &params, &weights)?);
        let optimizer = match metadata.get("adam_step") {
            Some(step) => {
                let trainable = trainable(&params);
                Some(OptimizerState {
                    step: step.parse().map_err(|_| format!("`adam_step` {step:?} is not a step count"))?,
                    lr: field("adam_lr")?.parse().map_err(|_| "`adam_lr` is not a number".to_string())?,
                    m: owned(in_param_order(ADAM_M_PREFIX, &trainable, &m)?),
                    v: owned(in_param_order(ADAM_V_PREFIX, &trainable, &v)?),
                })
            }
            None => {
                // No optimizer state: any moment tensor is unexpected.
                in_param_order(ADAM_M_PREFIX, &[], &m)?;
                in_param_order(ADAM_V_PREFIX, &[], &v)?;
                None
            }
        };
        let resume = match metadata.get("trainer") {
            Some(trainer) => {
                if optimizer.is_none() {
                    return Err("a checkpoint without Adam's state (`adam_step`)".into());
                }
                let mut trainer: TrainerState =
                    serde_json::from_str(trainer).map_err(|e| format!("`trainer` is not the trainer's state: {e}"))?;
                let group = |prefix, tensors: &[NamedTensor]| {
                    Ok::<_, String>(
                        (!tensors.is_empty()).then(|| in_param_order(prefix, &params, tensors)).transpose()?.map(owned),
                    )
                };
                trainer.best_weights = group(BEST_PREFIX, &best)?;
                trainer.epoch_start_weights = group(EPOCH_START_PREFIX, &epoch_start)?;
                Some(ResumeState { trainer, run_settings: field("run_settings")?.to_string() })
            }
            None => {
                in_param_order(BEST_PREFIX, &[], &best)?;
                in_param_order(EPOCH_START_PREFIX, &[], &epoch_start)?;
                None
            }
        };
        let normalisation = field("normalisation")?.parse().map_err(|e: Error| format!("`normalisation`: {e}"))?;
        check_normalisation(&normalisation, &architecture)?;
        let test_time_augment = match metadata.get("test_time_augment") {
            None => TestTimeAugment::None,
            Some(text) => text.parse().map_err(|e: Error| format!("`test_time_augment`: {e}"))?,
        };
        Ok(ModelFile {
            architecture,
            class_names,
            normalisation,
            test_time_augment,
            history,
            weights,
            optimizer,
            resume,
        })
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("model file {}: {reason}", path.display()))
}

fn json(value: &impl serde::Serialize) -> std::result::Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}

fn trainable(params: &[ParamInfo]) -> Vec<ParamInfo> {
    params.iter().filter(|param| param.trainable).cloned().collect()
}

fn owned(tensors: Vec<&NamedTensor>) -> Vec<NamedTensor> {
    tensors.into_iter().cloned().collect()
}

/// One name per class, each usable as part of a file name (outputs are named after classes):
/// not empty, at most 255 bytes, no path separator, control character, `.` or `..`; and distinct.
fn check_class_names(class_names: &[String], architecture: &Architecture) -> std::result::Result<(), String> {
    let classes = architecture.classes();
    if class_names.len() != classes {
        return Err(format!(
            "{} class names for the {classes} classes of architecture {architecture}",
            class_names.len()
        ));
    }
    for (i, name) in class_names.iter().enumerate() {
        let unsafe_name = name.is_empty()
            || name.len() > 255
            || name == "."
            || name == ".."
            || name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
        if unsafe_name {
            return Err(format!(
                "class name {name:?} is not a name a folder or a file can have (empty, too long, a path separator, a control character, . or ..)"
            ));
        }
        if class_names[..i].contains(name) {
            return Err(format!("class name {name:?} is given twice"));
        }
    }
    Ok(())
}

/// The normalisation's colours are the input's channels.
fn check_normalisation(normalisation: &Normalisation, architecture: &Architecture) -> std::result::Result<(), String> {
    let channels = architecture.input.channels;
    if normalisation.colour.channels() != channels {
        return Err(format!("`normalisation` {normalisation} is not for an input of {channels} channels"));
    }
    Ok(())
}

/// JSON has no NaN or infinity (serde_json writes `null`, which does not read back as a number).
fn check_history(history: &History) -> std::result::Result<(), String> {
    for record in &history.epochs {
        let values = [record.loss, record.accuracy, record.lr, record.seconds];
        let validation = [record.val_loss, record.val_accuracy].into_iter().flatten();
        if let Some(bad) = values.into_iter().chain(validation).find(|v| !v.is_finite()) {
            return Err(format!("the history of epoch {} holds {bad}, which JSON cannot store", record.epoch));
        }
    }
    Ok(())
}

/// `tensors` in the order of `params`, or which one is missing, extra, duplicated or of the wrong
/// shape. `prefix` is the stored names' prefix, for the messages.
fn in_param_order<'t>(
    prefix: &str,
    params: &[ParamInfo],
    tensors: &'t [NamedTensor],
) -> std::result::Result<Vec<&'t NamedTensor>, String> {
    let mut by_name: HashMap<&str, &NamedTensor> = HashMap::with_capacity(tensors.len());
    for tensor in tensors {
        if by_name.insert(&tensor.name, tensor).is_some() {
            return Err(format!("tensor {prefix}{} appears twice", tensor.name));
        }
    }
    let mut ordered = Vec::with_capacity(params.len());
    for param in params {
        let tensor = by_name
            .remove(param.name.as_str())
            .ok_or_else(|| format!("tensor {prefix}{} of shape {:?} is missing", param.name, param.shape))?;
        if tensor.shape != param.shape {
            return Err(format!(
                "tensor {prefix}{} has shape {:?}, the architecture needs {:?}",
                param.name, tensor.shape, param.shape
            ));
        }
        if tensor.data.len() != param.elements() {
            return Err(format!(
                "tensor {prefix}{} of shape {:?} holds {} values, not {}",
                param.name,
                param.shape,
                tensor.data.len(),
                param.elements()
            ));
        }
        ordered.push(tensor);
    }
    match by_name.keys().min() {
        Some(extra) => Err(format!("unexpected tensor {prefix}{extra}: the architecture has no such parameter")),
        None => Ok(ordered),
    }
}

/// The tensor data after the header, and the parsed header; or why `bytes` are not a whole
/// safetensors file (truncated, or something else).
fn split_header(bytes: &[u8]) -> std::result::Result<(&[u8], Metadata), String> {
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!("only {} bytes: truncated, or not a safetensors file", bytes.len()));
    };
    let header_len = u64::from_le_bytes(*length);
    // A safetensors file starts with its header's length, then the JSON header.
    if header_len > MAX_HEADER_BYTES || rest.first() != Some(&b'{') {
        return Err("not a safetensors file: it does not start with a header length and a JSON header".into());
    }
    let header_len = header_len as usize;
    let Some(header) = rest.get(..header_len) else {
        return Err(format!("truncated: its header needs {header_len} bytes, only {} follow", rest.len()));
    };
    let header: Metadata = std::str::from_utf8(header)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(text).map_err(|e| e.to_string()))
        .map_err(|e| format!("not a safetensors file: its header is invalid ({e})"))?;
    let data = &rest[header_len..];
    let needed = header.data_len();
    if data.len() < needed {
        return Err(format!("truncated: its tensors need {needed} bytes, only {} follow the header", data.len()));
    }
    if data.len() > needed {
        return Err(format!("not a safetensors file: {} bytes follow its last tensor", data.len() - needed));
    }
    Ok((data, header))
}

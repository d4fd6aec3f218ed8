//! The model file: a save/load round trip keeps every bit, every bad file gets an error that says
//! what is wrong with it, and saving never leaves a partial or temporary file behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng, rngs::StdRng};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use wgcnn::model::NamedTensor;
use wgcnn::model::OptimizerState;
use wgcnn::model::file::{ModelFile, ResumeState};
use wgcnn::model::history::{EarlyStoppingProgress, EpochProgress, PlateauState, TrainerState};
use wgcnn::model::history::{EpochRecord, History};
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::model::test_time::TestTimeAugment;

/// A fresh empty folder under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("wgcnn-model-file-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_like(tensor: &NamedTensor, rng: &mut StdRng) -> NamedTensor {
    NamedTensor { data: (0..tensor.data.len()).map(|_| rng.random_range(-2.0..2.0)).collect(), ..tensor.clone() }
}

/// A small model with batch norm and dropout, random weights and running statistics (with a few
/// awkward values), a history and, if asked, Adam's state.
fn sample_model(with_optimizer: bool) -> ModelFile {
    let architecture = Architecture::parse("c4-bn-p-f-d8-drop0.5-d3", InputShape::new(1, 12, 12)).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let mut weights: Vec<NamedTensor> =
        architecture.initial_weights(1).unwrap().iter().map(|t| random_like(t, &mut rng)).collect();
    weights[0].data[..4].copy_from_slice(&[-0.0, f32::MIN_POSITIVE / 8.0, f32::MAX, f32::NAN]);
    let optimizer = with_optimizer.then(|| {
        let trainable: Vec<&NamedTensor> = weights.iter().filter(|t| !t.name.contains(".running_")).collect();
        OptimizerState {
            step: 123,
            lr: 3e-4,
            m: trainable.iter().map(|t| random_like(t, &mut rng)).collect(),
            v: trainable.iter().map(|t| random_like(t, &mut rng)).collect(),
        }
    });
    let history = History {
        epochs: vec![
            EpochRecord {
                epoch: 1,
                loss: 1.0 / 3.0,
                accuracy: 0.1 + 0.2,
                val_loss: None,
                val_accuracy: None,
                lr: 1e-3,
                seconds: 12.345678901,
            },
            EpochRecord {
                epoch: 2,
                loss: 0.7f64.sqrt(),
                accuracy: 2.0 / 3.0,
                val_loss: Some(std::f64::consts::PI / 7.0),
                val_accuracy: Some(0.5),
                lr: 3e-4,
                seconds: 1e-9,
            },
        ],
    };
    ModelFile {
        architecture,
        class_names: vec!["angry".into(), "happy".into(), "sad ☹".into()],
        normalisation: "gray/255".parse().unwrap(),
        test_time_augment: Default::default(),
        history,
        weights,
        optimizer,
        resume: None,
    }
}

#[track_caller]
fn assert_same_tensors(what: &str, got: &[NamedTensor], want: &[NamedTensor]) {
    assert_eq!(got.len(), want.len(), "{what}: tensor count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.name, &g.shape), (&w.name, &w.shape), "{what}");
        let bits = |t: &NamedTensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(bits(g) == bits(w), "{what}: {} differs", g.name);
    }
}

#[track_caller]
fn load_error(path: &Path) -> String {
    match ModelFile::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} does not mention {part:?}");
    }
}

/// A stored tensor: name, dtype, shape, little-endian bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// Rewrites the safetensors file at `path` after `edit` changes its metadata and tensors.
fn rewrite(path: &Path, edit: impl FnOnce(&mut HashMap<String, String>, &mut Vec<RawTensor>)) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap_or_default();
    let mut tensors: Vec<RawTensor> = SafeTensors::deserialize(&bytes)
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.dtype(), view.shape().to_vec(), view.data().to_vec()))
        .collect();
    edit(&mut metadata, &mut tensors);
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| (name.as_str(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

/// Saves the sample model with Adam's state into `dir`, applies `edit` to the file and returns the
/// load error.
fn load_error_after(dir: &TempDir, edit: impl FnOnce(&mut HashMap<String, String>, &mut Vec<RawTensor>)) -> String {
    let path = dir.0.join("edited.safetensors");
    sample_model(true).save(&path).unwrap();
    rewrite(&path, edit);
    load_error(&path)
}

#[test]
fn save_then_load_keeps_every_bit() {
    let dir = TempDir::new("round-trip");
    for with_optimizer in [true, false] {
        let path = dir.0.join(format!("model-{with_optimizer}.safetensors"));
        let model = sample_model(with_optimizer);
        model.save(&path).unwrap();
        let loaded = ModelFile::load(&path).unwrap();
        assert_eq!(loaded.architecture, model.architecture);
        assert_eq!(loaded.class_names, model.class_names);
        assert_eq!(loaded.normalisation, model.normalisation);
        assert_eq!(loaded.test_time_augment, model.test_time_augment);
        assert_eq!(loaded.history, model.history);
        assert_same_tensors("weights", &loaded.weights, &model.weights);
        match (&loaded.optimizer, &model.optimizer) {
            (Some(got), Some(want)) => {
                assert_eq!((got.step, got.lr.to_bits()), (want.step, want.lr.to_bits()));
                assert_same_tensors("adam.m", &got.m, &want.m);
                assert_same_tensors("adam.v", &got.v, &want.v);
            }
            (None, None) => {}
            (got, want) => panic!("optimizer state {got:?}, saved {want:?}"),
        }
    }
    assert_eq!(dir.entries(), ["model-false.safetensors", "model-true.safetensors"], "no temporary file is left");
}

#[test]
fn a_checkpoint_keeps_the_trainers_state_and_its_weight_sets_and_needs_adams_state() {
    let dir = TempDir::new("checkpoint");
    let mut rng = StdRng::seed_from_u64(8);
    let mut checkpoint = sample_model(true);
    let other = |rng: &mut StdRng| checkpoint_weights(&checkpoint.weights, rng);
    let trainer = TrainerState {
        lr: 2.5e-4,
        early_stopping: Some(EarlyStoppingProgress {
            plateau: PlateauState { best: Some(0.123456789), epochs_without_improvement: 2 },
            best_epoch: Some(1),
            stopped: false,
        }),
        reduce_lr: Some(PlateauState { best: None, epochs_without_improvement: 0 }),
        epoch_in_progress: Some(EpochProgress {
            epoch: 3,
            steps_done: 7,
            loss_sum: 4.1 / 3.0,
            correct: 9,
            count: 14,
            seconds: 0.25,
        }),
        best_weights: Some(other(&mut rng)),
        epoch_start_weights: Some(other(&mut rng)),
    };
    checkpoint.resume = Some(ResumeState { trainer: trainer.clone(), run_settings: "{\"any\": \"json\"}".into() });
    let path = dir.0.join("checkpoint.safetensors");
    checkpoint.save(&path).unwrap();
    let loaded = ModelFile::load_checkpoint(&path).unwrap();
    let resume = loaded.resume.as_ref().unwrap();
    assert_eq!(resume.run_settings, "{\"any\": \"json\"}");
    let weight_sets = |t: &TrainerState| (t.best_weights.clone().unwrap(), t.epoch_start_weights.clone().unwrap());
    let ((best, start), (want_best, want_start)) = (weight_sets(&resume.trainer), weight_sets(&trainer));
    assert_same_tensors("best", &best, &want_best);
    assert_same_tensors("epoch_start", &start, &want_start);
    let without_tensors =
        |t: &TrainerState| TrainerState { best_weights: None, epoch_start_weights: None, ..t.clone() };
    assert_eq!(without_tensors(&resume.trainer), without_tensors(&trainer));
    // A checkpoint is also a model: `eval` and `predict` read it.
    assert_same_tensors("weights", &ModelFile::load(&path).unwrap().weights, &checkpoint.weights);

    // A model file is not a checkpoint; a checkpoint needs Adam's state.
    let model = dir.0.join("model.safetensors");
    sample_model(true).save(&model).unwrap();
    let error = ModelFile::load_checkpoint(&model).unwrap_err().to_string();
    assert!(error.contains("model.safetensors") && error.contains("not a checkpoint"), "{error}");
    let without_adam = ModelFile { optimizer: None, ..checkpoint.clone() };
    let error = without_adam.save(dir.0.join("no-adam.safetensors")).unwrap_err().to_string();
    assert!(error.contains("Adam"), "{error}");
    // A weight set of the wrong shape is named.
    let mut bad = checkpoint.clone();
    bad.resume.as_mut().unwrap().trainer.best_weights.as_mut().unwrap()[0].shape.push(1);
    let error = bad.save(dir.0.join("bad.safetensors")).unwrap_err().to_string();
    assert!(error.contains("best.conv1.weight"), "{error}");
}

/// Weights of the same names and shapes as `weights`, other values.
fn checkpoint_weights(weights: &[NamedTensor], rng: &mut StdRng) -> Vec<NamedTensor> {
    weights.iter().map(|t| random_like(t, rng)).collect()
}

#[test]
fn the_file_is_plain_safetensors_with_wgcnn_metadata() {
    let dir = TempDir::new("layout");
    let path = dir.0.join("model.safetensors");
    let model = sample_model(true);
    model.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().as_ref().unwrap();
    for (key, value) in [
        ("format", "wgcnn"),
        ("format_version", "1"),
        ("architecture", "c4-bn-p-f-d8-drop0.5-d3"),
        ("input", "1x12x12"),
        ("normalisation", "gray/255 stretch"),
        ("adam_step", "123"),
    ] {
        assert_eq!(metadata.get(key).map(String::as_str), Some(value), "metadata {key}");
    }
    let class_names: Vec<String> = serde_json::from_str(&metadata["class_names"]).unwrap();
    assert_eq!(class_names, model.class_names);
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let conv = tensors.tensor("conv1.weight").unwrap();
    assert_eq!((conv.dtype(), conv.shape()), (Dtype::F32, &[4, 1, 3, 3][..]));
    assert_eq!(conv.data()[8..12], model.weights[0].data[2].to_le_bytes());
    assert!(tensors.tensor("adam.v.dense2.bias").is_ok());
    assert!(tensors.tensor("adam.m.bn1.running_mean").is_err(), "running statistics have no moments");
}

#[test]
fn saving_over_a_model_replaces_it_whole() {
    let dir = TempDir::new("overwrite");
    let path = dir.0.join("model.safetensors");
    sample_model(true).save(&path).unwrap();
    let mut second = sample_model(false);
    second.weights[1].data[0] = 42.0;
    second.save(&path).unwrap();
    let loaded = ModelFile::load(&path).unwrap();
    assert_same_tensors("weights", &loaded.weights, &second.weights);
    assert!(loaded.optimizer.is_none());
    assert_eq!(dir.entries(), ["model.safetensors"]);
}

#[test]
fn saving_into_a_missing_folder_fails_and_leaves_nothing() {
    let dir = TempDir::new("missing-folder");
    let path = dir.0.join("absent").join("model.safetensors");
    let error = sample_model(false).save(&path).unwrap_err().to_string();
    assert_mentions(&error, &[&path.display().to_string(), "cannot write"]);
    assert!(dir.entries().is_empty());
}

#[test]
fn saving_weights_that_do_not_fit_the_architecture_fails_and_writes_nothing() {
    let dir = TempDir::new("bad-save");
    let path = dir.0.join("model.safetensors");
    let mut model = sample_model(true);
    model.weights.retain(|t| t.name != "dense1.bias");
    assert_mentions(&model.save(&path).unwrap_err().to_string(), &["dense1.bias", "missing"]);

    let mut model = sample_model(true);
    model.weights[0].data.pop();
    assert_mentions(&model.save(&path).unwrap_err().to_string(), &["conv1.weight", "35 values"]);

    let mut model = sample_model(true);
    if let Some(optimizer) = &mut model.optimizer {
        optimizer.v[0].shape = vec![36];
    }
    assert_mentions(&model.save(&path).unwrap_err().to_string(), &["adam.v.conv1.weight", "[36]", "[4, 1, 3, 3]"]);

    let mut model = sample_model(false);
    model.class_names.pop();
    assert_mentions(&model.save(&path).unwrap_err().to_string(), &["2 class names", "3 classes"]);

    let mut model = sample_model(false);
    model.history.epochs[1].loss = f64::NAN;
    assert_mentions(&model.save(&path).unwrap_err().to_string(), &["epoch 2", "NaN"]);
    assert!(dir.entries().is_empty());
}

#[test]
fn a_missing_file_is_named() {
    let dir = TempDir::new("missing-file");
    let path = dir.0.join("nothing.safetensors");
    assert_mentions(&load_error(&path), &[&path.display().to_string(), "cannot read"]);
}

#[test]
fn truncated_files_are_reported_as_truncated() {
    let dir = TempDir::new("truncated");
    let path = dir.0.join("model.safetensors");
    sample_model(true).save(&path).unwrap();
    let whole = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(whole[..8].try_into().unwrap()) as usize;
    for keep in [4, 8 + header_len / 2, 8 + header_len + 10, whole.len() - 1] {
        std::fs::write(&path, &whole[..keep]).unwrap();
        assert_mentions(&load_error(&path), &[&path.display().to_string(), "truncated"]);
    }
}

#[test]
fn files_that_are_not_safetensors_are_reported() {
    let dir = TempDir::new("not-safetensors");
    let path = dir.0.join("noise.safetensors");
    let mut rng = StdRng::seed_from_u64(9);
    for len in [100, 10_000] {
        let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        std::fs::write(&path, noise).unwrap();
        assert_mentions(&load_error(&path), &["not a safetensors file"]);
    }
    std::fs::write(&path, b"\x0a\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    assert_mentions(&load_error(&path), &["not a safetensors file", "header"]);
}

#[test]
fn foreign_safetensors_files_are_not_wgcnn_models() {
    let dir = TempDir::new("foreign");
    let path = dir.0.join("foreign.safetensors");
    let data = [0u8; 16];
    let view = TensorView::new(Dtype::F32, vec![2, 2], &data).unwrap();
    std::fs::write(&path, safetensors::serialize([("weight", &view)], None).unwrap()).unwrap();
    assert_mentions(&load_error(&path), &["not a wgcnn model"]);
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    std::fs::write(&path, safetensors::serialize([("weight", &view)], Some(metadata)).unwrap()).unwrap();
    assert_mentions(&load_error(&path), &["not a wgcnn model", "\"pt\""]);
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = TempDir::new("version");
    let error = load_error_after(&dir, |metadata, _| {
        metadata.insert("format_version".into(), "2".into());
    });
    assert_mentions(&error, &["format version \"2\"", "not supported"]);
}

/// The test-time augmentation a model predicts with is kept; a file from before the setting reads
/// as none; an unknown one is named.
#[test]
fn the_test_time_augmentation_is_kept_and_older_files_have_none() {
    let dir = TempDir::new("test-time");
    let path = dir.0.join("mirror.safetensors");
    ModelFile { test_time_augment: TestTimeAugment::Mirror, ..sample_model(false) }.save(&path).unwrap();
    assert_eq!(ModelFile::load(&path).unwrap().test_time_augment, TestTimeAugment::Mirror);
    rewrite(&path, |metadata, _| {
        metadata.remove("test_time_augment");
    });
    assert_eq!(ModelFile::load(&path).unwrap().test_time_augment, TestTimeAugment::None);
    let message = load_error_after(&dir, |metadata, _| {
        metadata.insert("test_time_augment".into(), "rotate".into());
    });
    assert_mentions(&message, &["`test_time_augment`", "\"rotate\"", "none or mirror"]);
}

#[test]
fn bad_metadata_is_named() {
    let dir = TempDir::new("metadata");
    assert_mentions(
        &load_error_after(&dir, |metadata, _| {
            metadata.remove("history");
        }),
        &["`history`"],
    );
    assert_mentions(
        &load_error_after(&dir, |metadata, _| {
            metadata.insert("architecture".into(), "c4-bn-p-f-d8-drop0.5-q3".into());
        }),
        &["token 7", "\"q3\""],
    );
    assert_mentions(
        &load_error_after(&dir, |metadata, _| {
            metadata.insert("class_names".into(), "[\"a\", \"b\"]".into());
        }),
        &["2 class names"],
    );
    // Outputs are named after the classes: a name that is a path, or one given twice, is refused.
    for (names, words) in [
        ("[\"angry\", \"../happy\", \"sad\"]", "\"../happy\" is not a name"),
        ("[\"angry\", \"a\\\\b\", \"sad\"]", "is not a name"),
        ("[\"angry\", \"\", \"sad\"]", "\"\" is not a name"),
        ("[\"sad\", \"happy\", \"sad\"]", "\"sad\" is given twice"),
    ] {
        let message = load_error_after(&dir, |metadata, _| {
            metadata.insert("class_names".into(), names.into());
        });
        assert_mentions(&message, &[words]);
    }
}

#[test]
fn tensors_that_do_not_fit_the_architecture_are_named() {
    let dir = TempDir::new("tensors");
    let non_f32 = load_error_after(&dir, |_, tensors| {
        let (_, dtype, _, data) = tensors.iter_mut().find(|t| t.0 == "dense2.bias").unwrap();
        *dtype = Dtype::F16;
        data.truncate(data.len() / 2);
    });
    assert_mentions(&non_f32, &["dense2.bias", "F16", "F32"]);

    let missing = load_error_after(&dir, |_, tensors| tensors.retain(|t| t.0 != "bn1.running_var"));
    assert_mentions(&missing, &["bn1.running_var", "missing"]);

    let extra =
        load_error_after(&dir, |_, tensors| tensors.push(("dense9.weight".into(), Dtype::F32, vec![1], vec![0; 4])));
    assert_mentions(&extra, &["unexpected tensor dense9.weight"]);

    let reshaped = load_error_after(&dir, |_, tensors| {
        tensors.iter_mut().find(|t| t.0 == "conv1.weight").unwrap().2 = vec![4, 1, 9];
    });
    assert_mentions(&reshaped, &["conv1.weight", "[4, 1, 9]", "[4, 1, 3, 3]"]);

    let moment_missing = load_error_after(&dir, |_, tensors| tensors.retain(|t| t.0 != "adam.m.dense1.weight"));
    assert_mentions(&moment_missing, &["adam.m.dense1.weight", "missing"]);

    let moments_without_step = load_error_after(&dir, |metadata, _| {
        metadata.remove("adam_step");
    });
    assert_mentions(&moments_without_step, &["unexpected tensor adam."]);
}

//! Training that survives interruption (issue 18): a run folder's checkpoint after every epoch,
//! `train --resume` continuing bit for bit, Ctrl-C and SIGTERM, SIGKILL at any moment, hostile
//! checkpoints, and `--init` fine-tuning.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use wgcnn::data::folder::{ImageFolder, LoadOptions};
use wgcnn::data::image::{Fit, InputFormat};
use wgcnn::data::loader::ImageBatches;
use wgcnn::data::split::SplitRatios;
use wgcnn::data::synth::{Emotion, FacePairing, write_dataset};
use wgcnn::gpu::DeviceChoice;
use wgcnn::model::TrainOptions;
use wgcnn::model::backend::Backend;
use wgcnn::model::file::ModelFile;
use wgcnn::model::history::EpochRecord;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::train::BatchSource;
use wgcnn::train::fit::TrainEvent;
use wgcnn::workflow::preset::Preset;
use wgcnn::workflow::train::{CHECKPOINT_FILE, Checkpoint, RunEvent, TrainSettings, train_from};

use crate::cli::{fails, ok, wgcnn};
use crate::common::process::{Ended, Watched};

/// Paired synthetic faces of two classes under `dir/name`.
fn faces(dir: &Path, name: &str, per_class: usize, size: u32) -> PathBuf {
    let data = dir.join(name);
    write_dataset(&data, &[Emotion::Happy, Emotion::Sad], per_class, size, 7, FacePairing::Paired).unwrap();
    data
}

/// Some image file of `folder`.
fn an_image(folder: &Path) -> PathBuf {
    std::fs::read_dir(folder).unwrap().next().unwrap().unwrap().path()
}

/// The history without the seconds, which no two runs share.
fn timeless(records: &[EpochRecord]) -> Vec<EpochRecord> {
    records.iter().map(|r| EpochRecord { seconds: 0.0, ..r.clone() }).collect()
}

/// Two model files hold the same tensors bit for bit and the same history but for the seconds.
#[track_caller]
fn assert_same_run(a: &Path, b: &Path) {
    let (x, y) = (ModelFile::load(a).unwrap(), ModelFile::load(b).unwrap());
    assert_eq!(x.weights.len(), y.weights.len());
    for (p, q) in x.weights.iter().zip(&y.weights) {
        assert_eq!((&p.name, &p.shape), (&q.name, &q.shape));
        let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(bits(&p.data) == bits(&q.data), "{}: {} and {} differ", p.name, a.display(), b.display());
    }
    assert_eq!(timeless(&x.history.epochs), timeless(&y.history.epochs), "{} and {}", a.display(), b.display());
    assert!(!x.history.epochs.is_empty());
}

/// `wgcnn args...` in `dir`, started with its output piped.
fn spawn(dir: &Path, args: &[&str]) -> Watched {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgcnn"));
    command.args(args).current_dir(dir).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    Watched::spawn(&mut command)
}

/// The temporary files a killed checkpoint write left in `run`.
fn temporary_files(run: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(run) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&format!(".{CHECKPOINT_FILE}.")) && name.ends_with(".tmp"))
        .collect()
}

#[test]
fn four_epochs_match_two_resumed_to_four_bit_for_bit_on_the_native_backend_and_the_software_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    faces(dir, "data", 30, 20);
    for device in ["cpu", "software"] {
        // Every kind of state a resume must carry: Adam, batch-norm statistics, dropout masks
        // (keyed by the step), augmentation (by the epoch), early stopping and the plateau.
        let train = |out: &str, epochs: &str| {
            let args = [
                "--device",
                device,
                "train",
                "data",
                "--out",
                out,
                "--arch",
                "c4-bn-p-f-drop0.3-d8-d1",
                "--size",
                "16",
                "--batch-size",
                "8",
                "--epochs",
                epochs,
                "--seed",
                "5",
                "--patience",
                "2",
                "--lr-patience",
                "1",
                "--augment",
                "flip,shift=0.1",
            ];
            ok(dir, &args);
        };
        let (full, half) = (format!("{device}-full"), format!("{device}-half"));
        train(&full, "4");
        train(&half, "2");
        let resumed = ok(dir, &["--device", device, "train", "--resume", &half, "--epochs", "4"]);
        assert!(resumed.stdout.contains("after 2 of 4 epochs"), "{}", resumed.stdout);
        assert_same_run(&dir.join(&full).join("model.safetensors"), &dir.join(&half).join("model.safetensors"));
        // The checkpoints agree too: Adam's moments and step, the trainer's state.
        let [a, b] = [&full, &half].map(|run| ModelFile::load_checkpoint(dir.join(run).join(CHECKPOINT_FILE)).unwrap());
        assert_eq!(a.optimizer, b.optimizer, "{device}: Adam's state");
        assert_eq!(a.weights, b.weights);
        let trainer = |f: &ModelFile| f.resume.as_ref().unwrap().trainer.clone();
        assert_eq!(trainer(&a), trainer(&b), "{device}: the trainer's state");
        assert!(a.optimizer.as_ref().unwrap().step > 0);
    }
}

#[test]
fn a_checkpoint_written_on_one_backend_resumes_on_another() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    faces(dir, "data", 20, 20);
    // No early stopping: its restoring the best epoch could hide the second epoch.
    let args = [
        "train",
        "data",
        "--arch",
        "c4-p-f-d8-d1",
        "--size",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--patience",
        "0",
    ];
    for (first, then) in [("cpu", "software"), ("software", "cpu")] {
        let out = format!("from-{first}");
        ok(dir, &[&["--device", first], &args[..], &["--out", &out]].concat());
        let before = ModelFile::load(dir.join(&out).join("model.safetensors")).unwrap();
        ok(dir, &["--device", then, "train", "--resume", &out, "--epochs", "2"]);
        let after = ModelFile::load(dir.join(&out).join("model.safetensors")).unwrap();
        assert_eq!(after.history.epochs.len(), 2, "{first} then {then}");
        assert_eq!(timeless(&after.history.epochs[..1]), timeless(&before.history.epochs), "{first} then {then}");
        assert!(after.history.epochs[1].loss.is_finite());
        assert!(after.weights != before.weights, "{then} did not train on from {first}'s checkpoint");
    }
}

/// A run slow enough to be stopped mid-epoch (about 0.7 s an epoch on 2 cores), with a checkpoint
/// of 30 MB (a 2M-weight dense layer, its Adam moments and the best epoch's copy).
fn slow_run<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "--device",
        "cpu",
        "train",
        data,
        "--out",
        out,
        "--arch",
        "c16-p-f-d512-d1",
        "--size",
        "32",
        "--batch-size",
        "2",
        "--epochs",
        epochs,
        "--seed",
        "2",
        "--patience",
        "5",
        "--lr-patience",
        "1",
    ]
}

#[track_caller]
fn interrupted(ended: &Ended, code: i32, run: &str) {
    assert_eq!(ended.code, Some(code), "stdout:\n{}\nstderr:\n{}", ended.stdout, ended.stderr);
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", ended.stderr);
    assert!(lines[0].contains(&format!("Resume with: wgcnn train --resume {run}")), "{}", lines[0]);
}

/// The epoch and step a run folder's checkpoint holds (step 0: the epoch's end).
fn checkpoint_moment(run: &Path) -> (usize, usize) {
    let file = ModelFile::load_checkpoint(run.join(CHECKPOINT_FILE)).unwrap();
    match file.resume.unwrap().trainer.epoch_in_progress {
        Some(progress) => (progress.epoch, progress.steps_done),
        None => (file.history.epochs.len(), 0),
    }
}

/// Waits for the checkpoint of `epoch`'s end (written after its line is printed), then for a few
/// steps of the next epoch.
fn into_the_epoch_after(child: &Watched, run: &Path, epoch: usize, epochs: usize) {
    let wait = Duration::from_secs(120);
    assert!(child.wait_for_line(&format!("epoch {epoch}/{epochs}"), wait).is_some(), "epoch {epoch} never ended");
    let started = Instant::now();
    while checkpoint_moment(run) != (epoch, 0) {
        assert!(started.elapsed() < wait, "no checkpoint of epoch {epoch}");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
}

#[test]
fn ctrl_c_and_sigterm_stop_mid_epoch_with_a_checkpoint_and_the_resumed_run_matches_the_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    faces(dir, "data", 150, 32);
    let wait = Duration::from_secs(120);

    // Ctrl-C a little into epoch 2: the step finishes, a checkpoint holds it, exit 130.
    let run = dir.join("run");
    let child = spawn(dir, &slow_run("data", "run", "3"));
    into_the_epoch_after(&child, &run, 1, 3);
    child.signal(libc::SIGINT);
    interrupted(&child.finish(wait), 130, "run");
    let (epoch, step) = checkpoint_moment(&run);
    assert!(epoch == 2 && step > 0, "the checkpoint holds step {step} of epoch {epoch}, not a step of epoch 2");

    // Resumed, then SIGTERM in epoch 3: exit 143.
    let child = spawn(dir, &["--device", "cpu", "train", "--resume", "run"]);
    into_the_epoch_after(&child, &run, 2, 3);
    child.signal(libc::SIGTERM);
    interrupted(&child.finish(wait), 143, "run");
    let (epoch, step) = checkpoint_moment(&run);
    assert!(epoch == 3 && step > 0, "the checkpoint holds step {step} of epoch {epoch}, not a step of epoch 3");

    ok(dir, &["--device", "cpu", "train", "--resume", "run"]);
    ok(dir, &slow_run("data", "uninterrupted", "3"));
    assert_same_run(&dir.join("run/model.safetensors"), &dir.join("uninterrupted/model.safetensors"));

    // A second Ctrl-C exits at once, without the resume line, and the last checkpoint is whole.
    // (Two signals sent before the child takes the first arrive as one, so the second waits for
    // that.) The second lands during the step that the first lets finish.
    let child = spawn(dir, &slow_run("data", "twice", "3"));
    into_the_epoch_after(&child, &dir.join("twice"), 1, 3);
    child.signal_taken(libc::SIGINT, wait);
    child.signal(libc::SIGINT);
    let ended = child.finish(wait);
    assert_eq!(ended.code, Some(130), "{}", ended.stderr);
    assert!(!ended.stderr.contains("Resume with"), "the second Ctrl-C waited for the step: {}", ended.stderr);
    let checkpoint = Checkpoint::load(&dir.join("twice")).unwrap();
    assert!(checkpoint.epochs_done() >= 1);
}

#[test]
fn sigkill_at_twenty_random_moments_always_leaves_a_checkpoint_that_resumes_to_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    faces(dir, "data", 150, 32);
    let run = dir.join("run");
    let wait = Duration::from_secs(120);
    let mut rng = StdRng::seed_from_u64(18);

    // The first process runs until its first checkpoint exists; every later one resumes.
    let mut child = spawn(dir, &slow_run("data", "run", "10"));
    let started = Instant::now();
    while !run.join(CHECKPOINT_FILE).exists() {
        assert!(started.elapsed() < wait, "no first checkpoint");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (mut in_writes, mut last_epochs) = (0, 0);
    for kill in 0..20 {
        if kill % 5 == 4 {
            // Aimed at a checkpoint write: the moment its temporary file appears.
            let started = Instant::now();
            while temporary_files(&run).is_empty() {
                assert!(started.elapsed() < wait, "kill {kill}: no checkpoint write");
                std::thread::sleep(Duration::from_micros(200));
            }
        } else {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        }
        child.signal(libc::SIGKILL);
        let ended = child.finish(wait);
        assert_eq!(ended.signal, Some(libc::SIGKILL), "kill {kill}: the run ended first: {}", ended.stderr);
        in_writes += usize::from(!temporary_files(&run).is_empty());
        let checkpoint = Checkpoint::load(&run).unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        assert!(checkpoint.epochs_done() >= last_epochs, "kill {kill}: the checkpoint went back");
        last_epochs = checkpoint.epochs_done();
        child = spawn(dir, &["--device", "cpu", "train", "--resume", "run"]);
    }
    let ended = child.finish(wait);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(in_writes >= 1, "no kill landed in a checkpoint write");
    assert!(temporary_files(&run).is_empty(), "a resumed run removes the temporary files of killed writes");
    ok(dir, &slow_run("data", "uninterrupted", "10"));
    assert_same_run(&run.join("model.safetensors"), &dir.join("uninterrupted/model.safetensors"));
}

#[test]
fn a_truncated_foreign_or_mismatched_checkpoint_is_refused_naming_the_file_and_the_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    faces(dir, "data", 10, 20);
    let train = ["train", "data", "--arch", "c4-p-f-d1", "--size", "16", "--epochs", "1", "--out"];
    ok(dir, &[&train[..], &["run"]].concat());
    let checkpoint = std::fs::read(dir.join("run").join(CHECKPOINT_FILE)).unwrap();
    let model = std::fs::read(dir.join("run/model.safetensors")).unwrap();
    // A safetensors file with a tensor and no wgcnn metadata.
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let foreign = [&(header.len() as u64).to_le_bytes()[..], header, &[0; 4]].concat();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", checkpoint[..checkpoint.len() / 2].to_vec(), "truncated"),
        ("png", std::fs::read(an_image(&dir.join("data/happy"))).unwrap(), "not a safetensors file"),
        ("foreign", foreign, "without wgcnn metadata"),
        ("model", model, "a model file, not a checkpoint"),
    ];
    for (name, bytes, fault) in cases {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join(CHECKPOINT_FILE), bytes).unwrap();
        let file = format!("{name}/{CHECKPOINT_FILE}");
        fails(dir, &["train", "--resume", name], &["checkpoint", &file, fault]);
    }
    fails(dir, &["train", "--resume", "data"], &["data", "no checkpoint.safetensors", "nothing to resume"]);

    // A fresh run refuses a folder with a checkpoint; a resume refuses changed settings or data.
    let line = fails(dir, &[&train[..], &["run"]].concat(), &["run", "--resume", "--overwrite"]);
    assert!(line.contains("already holds a model"), "{line}");
    std::fs::remove_file(dir.join("run/model.safetensors")).unwrap();
    fails(dir, &[&train[..], &["run"]].concat(), &["run", "checkpoint", "--resume run"]);
    let changed = wgcnn(dir, &["train", "--resume", "run", "--lr", "0.01"]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    assert!(changed.stderr.contains("--lr gives 0.01") && changed.stderr.contains("0.001"), "{}", changed.stderr);
    // The same values given again are no change.
    ok(dir, &["train", "--resume", "run", "--lr", "0.001", "--size", "16", "--epochs", "2"]);
    // Another seed: a copy of a face already there would be left out as a duplicate.
    write_dataset(&dir.join("more"), &[Emotion::Happy], 1, 20, 99, FacePairing::Paired).unwrap();
    std::fs::rename(an_image(&dir.join("more/happy")), dir.join("data/happy/extra.png")).unwrap();
    fails(dir, &["train", "--resume", "run", "--epochs", "3"], &["data", "happy 11", "happy 10", "same data"]);
}

#[test]
fn init_starts_from_a_models_weights_and_refuses_another_architecture_or_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = faces(dir, "data", 12, 20);
    let train = ["train", "data", "--size", "16", "--epochs", "1", "--out"];
    ok(dir, &[&train[..], &["base", "--arch", "c4-p-f-d1"]].concat());
    let init = ["--init", "base/model.safetensors"];
    fails(
        dir,
        &[&train[..], &["wider", "--arch", "c8-p-f-d1"], &init[..]].concat(),
        &["--init base/model.safetensors", "c4-p-f-d1", "c8-p-f-d1"],
    );
    fails(
        dir,
        &["train", "data", "--size", "20", "--epochs", "1", "--out", "bigger", "--arch", "c4-p-f-d1", init[0], init[1]],
        &["--init", "input", "3x16x16", "3x20x20"],
    );
    assert!(!dir.join("wider").exists() && !dir.join("bigger").exists());

    // Fine-tuning: the first step's loss (one batch of every image: no dropout, no batch norm,
    // so training and inference agree) is the saved model's loss on those images.
    let base = ModelFile::load(dir.join("base/model.safetensors")).unwrap();
    let first_step_loss = |init: Option<PathBuf>, out: &str| {
        let settings = TrainSettings {
            architecture: Architecture::parse("c4-p-f-d1", InputShape::new(3, 16, 16)).unwrap(),
            split: SplitRatios { train: 1.0, validation: 0.0, test: 0.0 },
            epochs: 1,
            batch_size: 64,
            seed: 9,
            patience: None,
            lr_patience: None,
            init,
            ..Preset::named("happy-sad").unwrap().settings(&data, dir.join(out))
        };
        let mut loss = None;
        let backend = Backend::new(&DeviceChoice::Cpu).unwrap();
        train_from(&backend, &settings, None, &AtomicBool::new(false), &mut |event| {
            if let RunEvent::Fit(TrainEvent::StepDone { step: 1, loss: l, .. }) = event {
                loss = Some(*l);
            }
        })
        .unwrap();
        loss.unwrap()
    };
    let format = InputFormat { channels: 3, size: (16, 16), fit: Fit::Stretch };
    let (dataset, _) = ImageFolder::load(&data, &format, &LoadOptions::default()).unwrap();
    let all: Vec<usize> = (0..dataset.len()).collect();
    let batches = ImageBatches::new(&dataset, &all).unwrap();
    let (mut images, mut labels) = (vec![0.0; all.len() * batches.sample_len()], vec![0; all.len()]);
    batches.fill(&all, 0, &mut images, &mut labels).unwrap();
    let backend = Backend::new(&DeviceChoice::Cpu).unwrap();
    let mut model = backend.model(&base.architecture, all.len(), &base.weights, &TrainOptions::default()).unwrap();
    let saved_loss = model.evaluate(&images, &labels).unwrap().mean_loss();

    let tuned = first_step_loss(Some(dir.join("base/model.safetensors")), "tuned");
    assert!((tuned - saved_loss).abs() <= 1e-5 * saved_loss, "first step {tuned}, the saved model's loss {saved_loss}");
    let fresh = first_step_loss(None, "fresh");
    assert!((fresh - saved_loss).abs() > 1e-3, "a fresh start ({fresh}) is not the saved model ({saved_loss})");
    // A fresh optimizer: the fine-tuned run's Adam took one step.
    let checkpoint = ModelFile::load_checkpoint(dir.join("tuned").join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(checkpoint.optimizer.unwrap().step, 1);
}

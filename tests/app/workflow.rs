//! `workflow::train::train` as a library call (issue 16): it prints nothing and tells its
//! observer of each step in order, the events displaying as the text `wgcnn train` prints, and it
//! returns the trained model and the fit's outcome.

use wgcnn::data::synth::{Emotion, FacePairing, write_dataset};
use wgcnn::gpu::DeviceChoice;
use wgcnn::model::backend::Backend;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::train::fit::{StopReason, TrainEvent};
use wgcnn::workflow::preset::Preset;
use wgcnn::workflow::train::{RunEvent, TrainSettings, train};

/// The kind of `event`, as a word.
fn kind(event: &RunEvent) -> &'static str {
    match event {
        RunEvent::Loaded { .. } => "loaded",
        RunEvent::ClassCounts { .. } => "class counts",
        RunEvent::Model { .. } => "model",
        RunEvent::Fit(TrainEvent::EpochStarted { .. }) => "epoch started",
        RunEvent::Fit(TrainEvent::StepDone { .. }) => "step",
        RunEvent::Fit(TrainEvent::Validating) => "validating",
        RunEvent::Fit(TrainEvent::EpochEnded { .. }) => "epoch ended",
        RunEvent::Fit(TrainEvent::LrLowered { .. }) => "lr lowered",
        RunEvent::Fit(TrainEvent::Stopped(_)) => "stopped",
        RunEvent::Fit(TrainEvent::RestoringBest { .. }) => "restoring",
        RunEvent::Batches(_) => "batches",
        RunEvent::Evaluated { .. } => "evaluated",
        RunEvent::Saved(_) => "saved",
    }
}

#[test]
fn train_tells_its_observer_each_step_in_order_and_returns_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, &[Emotion::Happy, Emotion::Sad], 20, 24, 3, FacePairing::Paired).unwrap();
    let settings = TrainSettings {
        architecture: Architecture::parse("c4-p-f-d1", InputShape::new(3, 16, 16)).unwrap(),
        epochs: 2,
        batch_size: 8,
        seed: 1,
        patience: None,
        lr_patience: None,
        ..Preset::named("happy-sad").unwrap().settings(data, tmp.path().join("run"))
    };
    let backend = Backend::new(&DeviceChoice::Cpu).unwrap();
    let (mut kinds, mut steps, mut text) = (Vec::<&str>::new(), 0, String::new());
    let run = train(&backend, &settings, &mut |event| {
        steps += matches!(event, RunEvent::Fit(TrainEvent::StepDone { .. })) as usize;
        if kinds.last() != Some(&kind(event)) {
            kinds.push(kind(event));
        }
        text += &event.to_string();
    })
    .unwrap();

    let epoch = ["epoch started", "step", "validating", "epoch ended"];
    let expected =
        [&["loaded", "class counts", "model"][..], &epoch, &epoch, &["stopped", "batches", "evaluated", "saved"]];
    assert_eq!(kinds, expected.concat());
    // 70% of 40 images train, in batches of 8, each of 2 epochs.
    assert_eq!(steps, 2 * 28usize.div_ceil(8));
    for line in [
        "loaded 40 images in ",
        "\nclass counts per split:\n",
        "\nadapter: ",
        "\nepoch 1/2 - loss ",
        "\nepoch 2/2 - loss ",
        "\ntraining ran all its epochs\nbatches: ",
        "\n\ntest split (4 images):\n",
        &format!("\nsaved {}\n", run.model_path.display()),
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }

    assert_eq!(run.model_path, settings.out_dir.join("model.safetensors"));
    assert!(run.model_path.is_file());
    assert_eq!((run.outcome.history.epochs.len(), run.outcome.stop), (2, StopReason::Completed));
    assert_eq!(run.model.history, run.outcome.history);
    assert_eq!(run.model.class_names, ["happy", "sad"]);
    assert_eq!(run.test.map(|e| e.confusion.total()), Some(4));
}

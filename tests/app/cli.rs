//! The `wgcnn` binary end to end (issue 5): synth -> train -> eval -> predict -> explain on a small
//! synthetic dataset, a trained model that gets clear faces right, and bad arguments and files
//! giving the documented exit codes (2 for usage, 1 for failures) with a one-line message that
//! names the file, never a panic or a backtrace.

use std::path::Path;
use std::process::Command;

use image::imageops::FilterType;
use serde_json::Value;
use wgcnn::data::synth::{Emotion, face};
use wgcnn::model::file::ModelFile;
use wgcnn::model::history::History;
use wgcnn::model::spec::{Architecture, InputShape};

/// What a run of the binary gave.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `wgcnn args...` in `dir`; whatever it exits with, it must not panic.
#[track_caller]
pub(crate) fn wgcnn(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the wgcnn binary runs");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    let lower = run.stderr.to_lowercase();
    assert!(
        !lower.contains("panicked") && !lower.contains("backtrace"),
        "wgcnn {args:?} panicked (exit {}):\n{}",
        run.code,
        run.stderr
    );
    run
}

/// Runs `wgcnn args...` and asserts it succeeded.
#[track_caller]
pub(crate) fn ok(dir: &Path, args: &[&str]) -> Run {
    let run = wgcnn(dir, args);
    assert_eq!(run.code, 0, "wgcnn {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run
}

/// Runs `wgcnn args...` and asserts exit code 1 with one line on stderr, `wgcnn: ...`, that
/// contains each of `names`; returns that line.
#[track_caller]
pub(crate) fn fails(dir: &Path, args: &[&str], names: &[&str]) -> String {
    let run = wgcnn(dir, args);
    assert_eq!(run.code, 1, "wgcnn {args:?}: exit code\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("wgcnn: "),
        "wgcnn {args:?}: expected a one-line error, got:\n{}",
        run.stderr
    );
    for name in names {
        assert!(lines[0].contains(name), "wgcnn {args:?}: the error does not name {name:?}: {}", lines[0]);
    }
    lines[0].to_string()
}

/// Asserts `wgcnn args...` is a usage error: exit code 2 and clap's message (`error: ...` and the
/// usage or a pointer to --help; with no arguments at all, the help).
#[track_caller]
fn usage_error(dir: &Path, args: &[&str]) {
    let run = wgcnn(dir, args);
    assert_eq!(run.code, 2, "wgcnn {args:?}: exit code\n{}", run.stderr);
    let clap = run.stderr.starts_with("error: ") && (run.stderr.contains("Usage:") || run.stderr.contains("--help"));
    assert!(clap || (args.is_empty() && run.stderr.contains("Usage:")), "wgcnn {args:?}:\n{}", run.stderr);
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The one explanation card of `stem` by `method` in `dir`: `<stem>-<class>-<method>.png`.
#[track_caller]
fn card(dir: &Path, stem: &str, method: &str) -> std::path::PathBuf {
    let cards: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{stem}-")) && name.ends_with(&format!("-{method}.png"))
        })
        .collect();
    assert_eq!(cards.len(), 1, "one {stem} {method} card in {}: {cards:?}", dir.display());
    cards[0].clone()
}

#[track_caller]
fn decodes_as_png(path: &Path) -> (u32, u32) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (image.width(), image.height())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9
}

/// Recomputes an evaluation's report (as `wgcnn eval --json` prints it and `evaluation.json`
/// holds it) from its confusion matrix: accuracy, per-class precision, recall, F1 and support,
/// and the macro and weighted averages (0 where a denominator is 0, as scikit-learn). Returns the
/// number of images.
#[track_caller]
fn check_report(evaluation: &Value, classes: &[&str]) -> u64 {
    let confusion = &evaluation["confusion"];
    let names: Vec<&str> = confusion["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(names, classes);
    let counts: Vec<Vec<u64>> = confusion["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect())
        .collect();
    let n = classes.len();
    assert!(counts.len() == n && counts.iter().all(|row| row.len() == n), "a {n}x{n} matrix: {counts:?}");
    let total: u64 = counts.iter().flatten().sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let report = &evaluation["report"];
    let correct: u64 = (0..n).map(|c| counts[c][c]).sum();
    assert!(close(report["accuracy"].as_f64().unwrap(), ratio(correct, total)), "accuracy: {report}");
    let mut scores = Vec::new();
    for (c, row) in report["classes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(row["class"], classes[c]);
        let support: u64 = counts[c].iter().sum();
        let predicted: u64 = (0..n).map(|t| counts[t][c]).sum();
        let (precision, recall) = (ratio(counts[c][c], predicted), ratio(counts[c][c], support));
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        for (key, want) in [("precision", precision), ("recall", recall), ("f1-score", f1)] {
            assert!(close(row[key].as_f64().unwrap(), want), "{} {key}: {row}, want {want}", classes[c]);
        }
        assert_eq!(row["support"].as_u64().unwrap(), support);
        scores.push([precision, recall, f1, support as f64]);
    }
    for (key, weight) in [("macro avg", None), ("weighted avg", Some(3))] {
        let weights: Vec<f64> = scores.iter().map(|s| weight.map_or(1.0, |w| s[w])).collect();
        let sum: f64 = weights.iter().sum();
        let average = &report[key];
        for (m, metric) in ["precision", "recall", "f1-score"].into_iter().enumerate() {
            let want =
                if sum > 0.0 { scores.iter().zip(&weights).map(|(s, w)| s[m] * w).sum::<f64>() / sum } else { 0.0 };
            assert!(close(average[metric].as_f64().unwrap(), want), "{key} {metric}: {average}, want {want}");
        }
        assert_eq!(average["support"].as_u64().unwrap(), total);
    }
    total
}

/// Checks one entry of `predict --json`: the file, a label among `classes`, the confidence that
/// of the label and the largest, probabilities that sum to 1. Returns the label.
#[track_caller]
fn check_prediction<'a>(entry: &'a Value, file: &str, classes: &[&str]) -> &'a str {
    assert_eq!(entry["file"], file);
    let p = &entry["prediction"];
    let label = p["label"].as_str().unwrap();
    let index = p["index"].as_u64().unwrap() as usize;
    assert_eq!(classes[index], label);
    let probabilities = p["probabilities"].as_object().unwrap();
    let names: Vec<&str> = probabilities.keys().map(String::as_str).collect();
    assert_eq!(names, classes, "probabilities in class order");
    let values: Vec<f64> = probabilities.values().map(|v| v.as_f64().unwrap()).collect();
    let confidence = p["confidence"].as_f64().unwrap();
    assert_eq!(confidence, values[index]);
    assert!(values.iter().all(|&v| v <= confidence), "the confidence is the largest probability: {p}");
    assert!((values.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p}");
    label
}

#[test]
fn synth_train_eval_predict_explain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let classes = ["happy", "sad"];

    let run = ok(dir, &["synth", "--out", "data", "--per-class", "40", "--size", "48", "--seed", "1"]);
    assert!(run.stdout.contains("wrote 80 PNGs of 48x48"), "{}", run.stdout);
    for class in classes {
        assert_eq!(std::fs::read_dir(dir.join("data").join(class)).unwrap().count(), 40);
    }
    assert_eq!(decodes_as_png(&dir.join("data/happy/happy_00.png")), (48, 48));

    let arch = "c4same-p-c8-p-f-d8-d1";
    let run = ok(
        dir,
        &["train", "data", "--arch", arch, "--size", "32", "--epochs", "2", "--batch-size", "16", "--out", "run"],
    );
    assert!(run.stdout.contains("saved run/model.safetensors"), "{}", run.stdout);
    let run_dir = dir.join("run");
    for file in ["model.safetensors", "history.csv", "evaluation.txt", "evaluation.json"] {
        assert!(run_dir.join(file).is_file(), "train wrote no {file}");
    }
    for png in ["training.png", "classes.png", "confusion.png"] {
        decodes_as_png(&run_dir.join(png));
    }
    let history = std::fs::read_to_string(run_dir.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "a header and 2 epochs:\n{history}");
    // The test split: 10% of 80 images.
    assert_eq!(check_report(&json(&std::fs::read_to_string(run_dir.join("evaluation.json")).unwrap()), &classes), 8);
    let model = ModelFile::load(run_dir.join("model.safetensors")).unwrap();
    assert_eq!(
        (model.class_names.as_slice(), model.architecture.input),
        (&["happy".to_string(), "sad".into()][..], InputShape::new(3, 32, 32))
    );

    // eval: the JSON report agrees with its own confusion matrix, over every image of the folder.
    let run = ok(dir, &["eval", "run/model.safetensors", "data", "--json"]);
    assert_eq!(check_report(&json(&run.stdout), &classes), 80);
    let run = ok(dir, &["eval", "run/model.safetensors", "data", "--out", "evaluated"]);
    assert!(run.stdout.contains("accuracy") && run.stdout.contains("confusion matrix"), "{}", run.stdout);
    decodes_as_png(&dir.join("evaluated/confusion-data.png"));

    // eval --split: the run's own split, found again from its checkpoint: the test split gives
    // the confusion matrix training wrote, the validation split has its 16 images (20% of 80).
    let written = json(&std::fs::read_to_string(run_dir.join("evaluation.json")).unwrap());
    let run = ok(dir, &["eval", "run/model.safetensors", "--split", "test", "--json"]);
    assert_eq!(json(&run.stdout)["confusion"], written["confusion"]);
    let run = ok(dir, &["eval", "run/model.safetensors", "--split", "validation", "--json"]);
    assert_eq!(check_report(&json(&run.stdout), &classes), 16);
    let run = ok(dir, &["eval", "run/model.safetensors", "data", "--tta", "mirror"]);
    assert!(run.stdout.contains("test-time augmentation: mirror"), "{}", run.stdout);

    // --tta mirror: each probability is the mean of the image's and its mirror's (at the model's
    // input size, so that no resize stands between them).
    let face = image::open(dir.join("data/happy/happy_00.png")).unwrap().resize_exact(32, 32, FilterType::Triangle);
    face.save(dir.join("face.png")).unwrap();
    face.fliph().save(dir.join("mirrored.png")).unwrap();
    let happy = |args: &[&str]| {
        let run = ok(dir, &[&["predict", "run/model.safetensors", "--json"][..], args].concat());
        json(&run.stdout)[0]["prediction"]["probabilities"]["happy"].as_f64().unwrap()
    };
    let (own, mirrored, averaged) =
        (happy(&["face.png"]), happy(&["mirrored.png"]), happy(&["face.png", "--tta", "mirror"]));
    assert!((averaged - (own + mirrored) / 2.0).abs() < 1e-5, "{averaged} is not the mean of {own} and {mirrored}");

    // predict: one entry per image, in order; the grid.
    let images = ["data/happy/happy_00.png", "data/sad/sad_00.png", "data/sad/sad_01.png"];
    let run =
        ok(dir, &[&["predict", "run/model.safetensors"][..], &images, &["--json", "--grid", "grid.png"]].concat());
    let entries = json(&run.stdout);
    assert_eq!(entries.as_array().unwrap().len(), 3);
    for (entry, file) in entries.as_array().unwrap().iter().zip(images) {
        check_prediction(entry, file, &classes);
    }
    decodes_as_png(&dir.join("grid.png"));
    let run = ok(dir, &["predict", "run/model.safetensors", images[0]]);
    assert!(run.stdout.starts_with("data/happy/happy_00.png: ") && run.stdout.contains("happy 0."), "{}", run.stdout);

    // explain: a card per image, on the GPU and the CPU backend, by either method.
    let run = ok(dir, &["explain", "run/model.safetensors", images[0], images[1], "--out", "explained"]);
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    for stem in ["happy_00", "sad_00"] {
        let card = card(&dir.join("explained"), stem, "gradcam");
        let (width, height) = decodes_as_png(&card);
        let side = wgcnn::workflow::explanation::CARD_MIN_SIDE;
        assert!(width >= 2 * side && height >= side, "{}: {width}x{height}", card.display());
    }
    let run = ok(
        dir,
        &[
            "--device",
            "cpu",
            "explain",
            "run/model.safetensors",
            images[0],
            "--method",
            "saliency",
            "--class",
            "sad",
            "--out",
            "explained",
        ],
    );
    assert!(run.stdout.contains("saliency for sad"), "{}", run.stdout);
    decodes_as_png(&dir.join("explained/happy_00-sad-saliency.png"));
}

#[test]
fn a_trained_model_predicts_clear_faces_right() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["synth", "--out", "data", "--per-class", "200", "--size", "32", "--seed", "3"]);
    // Measured on lavapipe: validation accuracy 0.95 after 15 epochs, 15 of 16 held-out faces right.
    let arch = "c16same-p-c32same-p-f-d32-d1";
    let train = ["train", "data", "--arch", arch, "--size", "32", "--epochs", "15", "--batch-size", "16"];
    ok(dir, &[&train[..], &["--patience", "0", "--lr-patience", "0", "--out", "run"]].concat());

    // Faces the model never saw; the clearest of each class is the one whose mouth bends most.
    let (seed, per_class) = (7, 8);
    ok(
        dir,
        &["synth", "--out", "held", "--per-class", &per_class.to_string(), "--size", "32", "--seed", &seed.to_string()],
    );
    let mut files = Vec::new();
    let mut clearest = Vec::new();
    for emotion in [Emotion::Happy, Emotion::Sad] {
        let name = emotion.name();
        files.extend((0..per_class).map(|i| (format!("held/{name}/{name}_{i}.png"), name)));
        let bend = |i: &usize| face(emotion, 32, seed, *i).unwrap().1.mouth_bend.abs();
        let i = (0..per_class).max_by(|a, b| bend(a).total_cmp(&bend(b))).unwrap();
        clearest.push(format!("held/{name}/{name}_{i}.png"));
    }
    let paths: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
    let run = ok(dir, &[&["predict", "run/model.safetensors", "--json"][..], &paths].concat());
    let entries = json(&run.stdout);
    let mut right = 0;
    for (entry, (file, truth)) in entries.as_array().unwrap().iter().zip(&files) {
        let label = check_prediction(entry, file, &["happy", "sad"]);
        right += (label == *truth) as usize;
        if clearest.contains(file) {
            assert_eq!(label, *truth, "the clearest {truth} face, {file}, is predicted {label}");
        }
    }
    eprintln!("{right} of {} held-out faces predicted right", files.len());
    assert!(right >= 13, "only {right} of {} held-out faces predicted right", files.len());
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let help = ok(dir, &["--help"]);
    assert!(help.stdout.contains("explain"), "{}", help.stdout);
    for args in [
        &[][..],
        &["frobnicate"],
        &["predict", "--bogus", "m", "i.png"],
        &["predict", "m.safetensors"],
        &["eval", "m.safetensors"],
        &["train"],
        &["train", "data", "--out", "run", "--preset", "happy-sad", "--arch", "c4-f-d1"],
        &["train", "data", "--out", "run", "--epochs", "two"],
        &["train", "data", "--out", "run", "--split", "0.7,0.2"],
        &["train", "data", "--out", "run", "--fit", "squash"],
        &["train", "data", "--out", "run", "--augment", "wobble"],
        &["--max-image-side", "0", "predict", "m.safetensors", "i.png"],
        &["synth"],
        &["synth", "--out", "x", "--per-class", "-3"],
        &["explain", "m.safetensors", "i.png"],
        &["explain", "m.safetensors", "--out", "x"],
        &["explain", "m.safetensors", "i.png", "--out", "x", "--method", "occlusion"],
        &["--device"],
    ] {
        usage_error(dir, args);
    }
}

/// A model file written by the library (untrained: these tests are about the files, not the
/// model), and a PNG it can read.
fn model_and_image(dir: &Path, spec: &str, name: &str) {
    let architecture = Architecture::parse(spec, InputShape::new(3, 16, 16)).unwrap();
    let file = ModelFile {
        weights: architecture.initial_weights(1).unwrap(),
        architecture,
        class_names: vec!["happy".into(), "sad".into()],
        normalisation: "rgb/255 stretch".parse().unwrap(),
        test_time_augment: Default::default(),
        history: History::default(),
        optimizer: None,
        resume: None,
    };
    file.save(dir.join(name)).unwrap();
    face(Emotion::Happy, 24, 0, 0).unwrap().0.save(dir.join("face.png")).unwrap();
}

#[test]
fn failures_exit_1_with_one_line_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    model_and_image(dir, "c4-p-f-d1", "model.safetensors");
    model_and_image(dir, "f-d4-d1", "dense.safetensors");
    std::fs::write(dir.join("notes.txt"), "not a model, not an image\n").unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let model = "model.safetensors";

    // Model files: missing, a folder, text, cut short.
    fails(dir, &["predict", "missing.safetensors", "face.png"], &["missing.safetensors", "cannot read it"]);
    fails(dir, &["predict", ".", "face.png"], &["model file .:"]);
    fails(dir, &["predict", "notes.txt", "face.png"], &["notes.txt"]);
    fails(dir, &["eval", "cut.safetensors", "."], &["cut.safetensors", "truncated"]);
    fails(dir, &["explain", "notes.txt", "face.png", "--out", "x"], &["notes.txt"]);

    // Images: missing, not an image. With several images the others are still used, one line
    // per bad image and a count.
    fails(dir, &["predict", model, "missing.png"], &["missing.png", "cannot read it"]);
    fails(dir, &["predict", model, "notes.txt"], &["notes.txt", "not an image"]);
    fails(dir, &["explain", model, "notes.txt", "--out", "x"], &["notes.txt", "not an image"]);
    let run = wgcnn(dir, &["predict", model, "notes.txt", "face.png", "missing.png", "--json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let entries = json(&run.stdout);
    check_prediction(&entries[1], "face.png", &["happy", "sad"]);
    assert!(entries[0]["error"].as_str().unwrap().contains("not an image"), "{entries}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert!(lines[0].contains("notes.txt") && lines[1].contains("missing.png"), "{}", run.stderr);
    assert_eq!(lines[2], "wgcnn: 2 of 3 images could not be read as images");
    let run = wgcnn(dir, &["explain", model, "missing.png", "face.png", "--out", "cards"]);
    assert_eq!((run.code, run.stderr.lines().count()), (1, 2), "{}", run.stderr);
    decodes_as_png(&card(&dir.join("cards"), "face", "gradcam"));

    // Classes: one the model does not know, asked of explain or found in eval's folder.
    usage_error(dir, &["explain", model, "face.png", "--class", "angry", "--out", "x"]);
    ok(dir, &["synth", "--out", "faces3", "--per-class", "2", "--size", "16", "--classes", "happy,sad,angry"]);
    fails(dir, &["eval", model, "faces3"], &["faces3", "\"angry\"", "happy, sad"]);
    fails(dir, &["eval", model, "nowhere"], &["nowhere"]);
    // Grad-CAM of a model without a convolution: saliency, said so, and the file named after it
    // (the server's rule too, tests/serve.rs).
    let run = ok(dir, &["explain", "dense.safetensors", "face.png", "--out", "x"]);
    assert!(
        run.stdout.contains("Grad-CAM needs a convolution layer") && run.stdout.contains("saliency is shown"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("-saliency.png"), "{}", run.stdout);
    decodes_as_png(&card(&dir.join("x"), "face", "saliency"));
    let run = ok(dir, &["explain", "dense.safetensors", "face.png", "--out", "y", "--method", "saliency"]);
    assert!(!run.stdout.contains("Grad-CAM needs"), "{}", run.stdout);
    // A model for another size still takes the image: it is resized.
    ok(dir, &["predict", model, "faces3/angry/angry_0.png"]);

    // train and synth.
    fails(dir, &["train", "nowhere", "--out", "run", "--arch", "c4-p-f-d1", "--size", "16"], &["nowhere"]);
    usage_error(dir, &["train", "faces3", "--out", "run", "--arch", "c4-p-f-bogus", "--size", "16"]);
    fails(
        dir,
        &["train", "faces3", "--out", "run", "--arch", "c4-p-f-d1", "--size", "16", "--test-data", "nowhere"],
        &["nowhere"],
    );
    fails(dir, &["synth", "--out", "more", "--classes", "happy,surprised"], &["surprised"]);
    fails(dir, &["synth", "--out", "faces3", "--per-class", "2", "--size", "16"], &["faces3"]);
    fails(dir, &["synth", "--out", "tiny", "--size", "8"], &["size 8", "16 px"]);
}

/// Every file of a folder and its bytes, to see that a command left it as it was.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_run_folder_changes_only_when_training_succeeds_and_eval_writes_where_told() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["synth", "--out", "data", "--per-class", "20", "--size", "16"]);
    ok(dir, &["synth", "--out", "tiny", "--per-class", "2", "--size", "16"]);
    ok(dir, &["synth", "--out", "oneclass", "--per-class", "4", "--size", "16", "--classes", "happy"]);
    let train = |data: &str, out: &str, batch: &str, more: &[&str]| {
        let args = [
            "train",
            data,
            "--out",
            out,
            "--arch",
            "c4-p-f-d1",
            "--size",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            batch,
        ];
        wgcnn(dir, &[&args[..], more].concat())
    };
    assert_eq!(train("data", "run", "4", &[]).code, 0);
    let before = snapshot(&dir.join("run"));
    assert!(
        before.iter().any(|(name, _)| name == "model.safetensors"),
        "{:?}",
        before.iter().map(|f| &f.0).collect::<Vec<_>>()
    );

    // A folder that holds a model is not trained into without --overwrite; a failed run changes
    // nothing; failed runs into new folders leave no folder.
    let refused = train("data", "run", "4", &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("already holds a model") && refused.stderr.contains("--overwrite"),
        "{}",
        refused.stderr
    );
    let failed = train("tiny", "run", "32", &["--overwrite", "--test-data", "nosuchdir"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("nosuchdir"), "{}", failed.stderr);
    let failed = train("oneclass", "run", "4", &["--overwrite"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(snapshot(&dir.join("run")), before, "the failed runs changed the run folder");
    for (data, out) in [("oneclass", "run2"), ("nosuchdir", "run3"), ("oneclass", "nested/run4")] {
        let run = train(data, out, "32", &[]);
        assert_eq!(run.code, 1, "{data}: {}", run.stderr);
        assert!(!dir.join(out).exists(), "a failed run left {out} behind");
    }
    assert!(!dir.join("nested").exists(), "a failed run left the parent folder it created");
    // A run that fails after its outputs are staged (here fit refuses a learning rate of 0):
    // the staging folder and the two parents it created go too, and the old run is untouched.
    let run = train("data", "deep/er/run5", "4", &["--lr", "0"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("learning rate"), "{}", run.stderr);
    assert!(!dir.join("deep").exists(), "a failed run left the parent folders it created");
    let run = train("data", "run", "4", &["--overwrite", "--lr", "0"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(snapshot(&dir.join("run")), before, "a run failing after staging changed the run folder");
    let hidden: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "staging folders left behind: {hidden:?}");

    // eval writes nothing into the run folder; with --out, a picture named and titled after its data.
    ok(dir, &["eval", "run/model.safetensors", "tiny"]);
    ok(dir, &["eval", "run/model.safetensors", "tiny", "--out", "run-eval"]);
    assert_eq!(snapshot(&dir.join("run")), before, "eval changed the run folder");
    decodes_as_png(&dir.join("run-eval/confusion-tiny.png"));
    // A subset of the model's classes is a normal test set.
    let run = ok(dir, &["eval", "run/model.safetensors", "oneclass", "--json"]);
    assert_eq!(check_report(&json(&run.stdout), &["happy", "sad"]), 4);

    // explain of two classes of one image into one folder: two files.
    for class in ["happy", "sad"] {
        ok(dir, &["explain", "run/model.safetensors", "data/happy/happy_00.png", "--class", class, "--out", "cards"]);
    }
    for class in ["happy", "sad"] {
        decodes_as_png(&dir.join(format!("cards/happy_00-{class}-gradcam.png")));
    }

    // Fewer images than a batch train as one short batch, as in Keras.
    let run = train("tiny", "tinyrun", "32", &["--split", "1,0,0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("epoch 1/1"), "{}", run.stdout);
    assert!(dir.join("tinyrun/model.safetensors").is_file());

    // --overwrite replaces the model.
    let run = train("data", "run", "4", &["--overwrite", "--seed", "3"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_ne!(snapshot(&dir.join("run")), before);
}

#[test]
fn mistakes_in_what_was_typed_are_usage_errors_with_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    model_and_image(dir, "c4-p-f-d1", "model.safetensors");
    ok(dir, &["synth", "--out", "data", "--per-class", "4", "--size", "16"]);
    let train = ["train", "data", "--out", "run", "--size", "16"];
    for (args, words) in [
        (&[&train[..], &["--preset", "happysad"]].concat(), "happy-sad, emotions3"),
        (&[&train[..], &["--arch", "c4-zz-d1"]].concat(), "zz"),
        (&[&train[..], &["--arch", "c4-p-p-p-p-p-f-d1"]].concat(), ""),
        (&[&train[..], &["--epochs", "0"]].concat(), "epochs"),
        (&["explain", "model.safetensors", "face.png", "--class", "angry", "--out", "x"][..].to_vec(), "happy, sad"),
        (&["--device", "nvidia-h999", "predict", "model.safetensors", "face.png"][..].to_vec(), "--device auto"),
        (&["predict", "model.safetensors", "data"][..].to_vec(), "wgcnn eval"),
        (&["train", "data", "--out", "run", "--arch", "c4-p-f-d1"][..].to_vec(), "--arch needs --size"),
        (&["serve", "model.safetensors", "--addr", "no-such-host.invalid:9000"][..].to_vec(), "no-such-host"),
    ] {
        let run = wgcnn(dir, args);
        assert_eq!(run.code, 2, "wgcnn {args:?}: exit code\n{}", run.stderr);
        assert!(run.stderr.starts_with("error: ") && run.stderr.contains(words), "wgcnn {args:?}:\n{}", run.stderr);
    }
    assert!(!dir.join("run").exists() && !dir.join("x").exists(), "a usage error did work");
}

#[test]
fn a_closed_pipe_ends_predict_quietly_and_host_names_resolve() {
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    model_and_image(dir, "c4-p-f-d1", "model.safetensors");
    let images: Vec<String> = (0..64).map(|_| "face.png".to_string()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args([&["predict", "model.safetensors"][..], &images.iter().map(String::as_str).collect::<Vec<_>>()].concat())
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader goes away before the first line.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    use std::os::unix::process::ExitStatusExt;
    let quiet = output.status.code() == Some(0) || output.status.signal() == Some(13);
    assert!(quiet && !stderr.contains("panicked"), "status {:?}:\n{stderr}", output.status);

    let mut server = Command::new(env!("CARGO_BIN_EXE_wgcnn"))
        .args(["serve", "model.safetensors", "--addr", "localhost:0"])
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(server.stdout.take().unwrap()));
    let serving = lines.find_map(|line| line.ok().filter(|l| l.starts_with("serving"))).expect("a serving line");
    let _ = server.kill();
    let _ = server.wait();
    assert!(serving.contains("http://127.0.0.1:") || serving.contains("http://[::1]:"), "{serving}");
}

#[test]
fn bench_train_profile_prints_a_table_of_every_layer_and_pass() {
    let dir = tempfile::tempdir().unwrap();
    for device in ["software", "cpu"] {
        let args = ["--device", device, "bench-train", "--preset", "emotions3", "--size", "24", "--batch-size", "2"];
        let run = ok(dir.path(), &[&args[..], &["--steps", "1", "--warmup", "0", "--profile"]].concat());
        for part in
            ["conv1+pool1 forward", "conv3+pool3 forward", "dense2 forward", "loss", "conv1+pool1 backward", "adam"]
        {
            assert!(
                run.stdout.lines().any(|l| l.trim_start().starts_with(part) && l.ends_with('%')),
                "{device}: no row for {part}:\n{}",
                run.stdout
            );
        }
    }
}

/// The batches a `wgcnn train` run's `batches: N batches prepared ...` line counts.
fn batches_line(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("batches: "))
        .unwrap_or_else(|| panic!("no batches line:\n{stdout}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// The train and validation images of a `wgcnn train` run's class counts table.
fn split_sizes(stdout: &str) -> (usize, usize) {
    let table = stdout.split("class counts per split:\n").nth(1).expect("a class counts table");
    let rows = table.lines().skip(1).take_while(|l| l.starts_with("  "));
    rows.map(|row| {
        let cells: Vec<usize> = row.split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect();
        (cells[0], cells[1])
    })
    .fold((0, 0), |(t, v), (a, b)| (t + a, v + b))
}

#[test]
fn without_batch_size_train_and_bench_train_take_the_presets_batch_sizes() {
    use wgcnn::workflow::preset::Preset;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["synth", "--out", "data", "--per-class", "40", "--size", "48", "--seed", "2"]);
    let preset = Preset::named("happy-sad").unwrap();
    // One epoch of the preset's layers on 48x48 images: the batches counted are the training
    // split's and the validation split's, in batches of the preset's size.
    let train = ["--device", "cpu", "train", "data", "--preset", "happy-sad", "--size", "48", "--epochs", "1"];
    let run = ok(dir, &[&train[..], &["--out", "run"]].concat());
    let (train_images, validation_images) = split_sizes(&run.stdout);
    assert_eq!((train_images, validation_images), (56, 16));
    let batches = |batch: usize| train_images.div_ceil(batch) + validation_images.div_ceil(batch);
    assert_eq!(batches_line(&run.stdout), batches(preset.batch_size), "{}", run.stdout);
    // The flag still wins, with a count the preset's size would not give.
    let run = ok(dir, &[&train[..], &["--out", "run16", "--batch-size", "16"]].concat());
    assert_ne!(batches(16), batches(preset.batch_size));
    assert_eq!(batches_line(&run.stdout), batches(16), "{}", run.stdout);

    // The smallest inputs each preset's layers take.
    for (name, size) in [("happy-sad", "48"), ("emotions3", "24")] {
        let args =
            ["--device", "cpu", "bench-train", "--preset", name, "--size", size, "--steps", "1", "--warmup", "0"];
        let run = ok(dir, &args);
        let batch = Preset::named(name).unwrap().bench_batch_size;
        assert!(run.stdout.contains(&format!(", batch {batch}\n")), "{name}: not at batch {batch}:\n{}", run.stdout);
    }
}

/// `wgcnn --device DEVICE info` with `variable` set to `value` (or unset): exit code, stdout, stderr.
fn info_with(device: &str, variable: &str, value: Option<&str>) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgcnn"));
    command.args(["--device", device, "info"]).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    match value {
        Some(value) => command.env(variable, value),
        None => command.env_remove(variable),
    };
    let output = command.output().expect("the wgcnn binary runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `wgcnn info` names the kernel variant a model would use and why; `WGCNN_KERNELS` forces one,
/// and a value it does not know is a one-line error naming the variable.
#[test]
fn info_names_the_kernel_variant_and_wgcnn_kernels_forces_one() {
    let info = |kernels: Option<&str>| info_with("software", "WGCNN_KERNELS", kernels);
    let (code, stdout, _) = info(None);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("kernels:             software (auto: a software adapter"), "{stdout}");
    let (code, stdout, _) = info(Some("tiled"));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("kernels:             tiled (forced by WGCNN_KERNELS"), "{stdout}");
    let (code, _, stderr) = info(Some("fast"));
    assert_eq!(code, Some(1));
    assert!(stderr.trim() == "wgcnn: WGCNN_KERNELS=\"fast\": expected tiled, software or auto", "{stderr}");
}

/// `wgcnn info` names the CPU kernel set in use; `WGCNN_CPU_KERNELS` narrows it (portable runs on
/// every CPU), and a value it does not know, or a set wider than the CPU's, is a one-line error.
#[test]
fn info_names_the_cpu_kernels_and_wgcnn_cpu_kernels_narrows_them() {
    use wgcnn::native::CpuKernels;
    let info = |kernels: Option<&str>| info_with("cpu", "WGCNN_CPU_KERNELS", kernels);
    let detected = CpuKernels::detected();
    let (code, stdout, _) = info(None);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(&format!("CPU kernels: {detected} (this CPU runs {detected} at most")), "{stdout}");
    assert!(stdout.contains(&format!("gemm crate's {detected} kernels")), "{stdout}");
    let (code, stdout, _) = info(Some("portable"));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("CPU kernels: portable ("), "{stdout}");
    assert!(stdout.contains("gemm crate's portable kernels"), "{stdout}");
    let (code, _, stderr) = info(Some("sse9"));
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim(), "wgcnn: WGCNN_CPU_KERNELS=\"sse9\": expected avx512, avx2, portable or auto");
    if detected < CpuKernels::Avx512 {
        let (code, _, stderr) = info(Some("avx512"));
        assert_eq!(code, Some(1));
        assert!(
            stderr.contains(&format!("asks for AVX-512 kernels, but this CPU runs {detected} at most")),
            "{stderr}"
        );
    }
}

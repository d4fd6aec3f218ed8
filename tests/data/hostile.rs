//! Hostile and odd inputs (issue 14), each built here: a decompression bomb (a few hundred bytes of
//! zlib that declare 60000x60000 pixels, and the same size patched into a JPEG, GIF and BMP), a
//! FIFO, a socket, a device and symbolic link loops among the images of a data folder, files too
//! large or endless, and some thousands of seeded mutations of real JPEG, PNG, GIF, BMP, WebP,
//! TIFF and safetensors files. Every one gets a clear message naming the file and the reason, the
//! good files beside it are still used, and it ends in bounded time and memory (the command line
//! runs in a child process whose peak resident size the kernel reports).

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::common::bomb::png_bomb;
use crate::common::process::{Ended, run_watched};
use image::{ImageFormat, RgbImage};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;
use wgcnn::data::folder::{ImageFolder, LoadOptions, LoadReport};
use wgcnn::data::image::{DecodeError, DecodeLimits, Fit, InputFormat, SizeLimit, decode_and_resize};
use wgcnn::data::synth::{Emotion, FacePairing, face, write_dataset};
use wgcnn::model::file::ModelFile;
use wgcnn::model::history::History;
use wgcnn::model::spec::{Architecture, InputShape};

/// What handling one bomb may cost the whole `wgcnn` process (wgpu and lavapipe included).
const PEAK_RSS_LIMIT: u64 = 1 << 30;
/// What handling hostile files may take at most (a hang is killed here and fails the test).
const DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Hostile files

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    match format {
        // GIF and WebP (lossless) take RGBA.
        ImageFormat::Gif | ImageFormat::WebP => {
            image::DynamicImage::ImageRgb8(image.clone()).to_rgba8().write_to(&mut bytes, format).unwrap()
        }
        _ => image.write_to(&mut bytes, format).unwrap(),
    }
    bytes.into_inner()
}

fn a_face(size: u32, index: usize) -> RgbImage {
    face(Emotion::Happy, size, 7, index).unwrap().0
}

/// A real file of `format` whose header is patched to declare 60000x60000 pixels.
fn patched_bomb(format: ImageFormat) -> Vec<u8> {
    let mut bytes = encode(&a_face(32, 0), format);
    let side = 60000u32;
    match format {
        ImageFormat::Jpeg => {
            let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG");
            bytes[sof + 5..sof + 7].copy_from_slice(&(side as u16).to_be_bytes());
            bytes[sof + 7..sof + 9].copy_from_slice(&(side as u16).to_be_bytes());
        }
        ImageFormat::Gif => {
            bytes[6..8].copy_from_slice(&(side as u16).to_le_bytes());
            bytes[8..10].copy_from_slice(&(side as u16).to_le_bytes());
        }
        ImageFormat::Bmp => {
            bytes[18..22].copy_from_slice(&(side as i32).to_le_bytes());
            bytes[22..26].copy_from_slice(&(side as i32).to_le_bytes());
        }
        _ => unreachable!("patched only for JPEG, GIF and BMP"),
    }
    bytes
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A file of `len` bytes that takes no disk: `head` and then a hole.
fn sparse_file(path: &Path, head: &[u8], len: u64) {
    std::fs::write(path, head).unwrap();
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// An untrained model of 16x16 RGB faces (these tests are about the files, not the model).
fn save_model(path: &Path, spec: &str, classes: &[&str]) -> ModelFile {
    let architecture = Architecture::parse(spec, InputShape::new(3, 16, 16)).unwrap();
    let file = ModelFile {
        weights: architecture.initial_weights(1).unwrap(),
        architecture,
        class_names: classes.iter().map(|c| c.to_string()).collect(),
        normalisation: "rgb/255 stretch".parse().unwrap(),
        test_time_augment: Default::default(),
        history: History::default(),
        optimizer: None,
        resume: None,
    };
    file.save(path).unwrap();
    file
}

fn wgcnn(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgcnn"));
    command.args(args).current_dir(dir).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    command
}

/// Runs `wgcnn args...` in `dir` within [`DEADLINE`] and [`PEAK_RSS_LIMIT`], never panicking.
#[track_caller]
fn watched(dir: &Path, args: &[&str]) -> Ended {
    let ended = run_watched(&mut wgcnn(dir, args), DEADLINE);
    assert!(!ended.timed_out, "wgcnn {args:?} ran past {DEADLINE:?} and was killed:\n{}", ended.stderr);
    assert!(!ended.stderr.contains("panicked"), "wgcnn {args:?} panicked:\n{}", ended.stderr);
    assert!(
        ended.peak_rss_bytes < PEAK_RSS_LIMIT,
        "wgcnn {args:?} reached {} MiB resident, over {} MiB",
        ended.peak_rss_bytes >> 20,
        PEAK_RSS_LIMIT >> 20
    );
    eprintln!(
        "wgcnn {args:?}: exit {:?} in {:.2} s, peak {} MiB",
        ended.code,
        ended.seconds,
        ended.peak_rss_bytes >> 20
    );
    ended
}

/// Asserts exit 1 and one stderr line naming each of `names`.
#[track_caller]
fn fails_naming(ended: &Ended, names: &[&str]) {
    assert_eq!(ended.code, Some(1), "exit code; stderr:\n{}", ended.stderr);
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line:\n{}", ended.stderr);
    for name in names {
        assert!(lines[0].contains(name), "the error does not name {name:?}: {}", lines[0]);
    }
}

/// Loads `dir` on another thread, failing if it takes over [`DEADLINE`] (a FIFO opened for
/// reading would block it for ever).
fn load_within_deadline(dir: &Path, options: LoadOptions) -> LoadReport {
    let (send, receive) = mpsc::channel();
    let path = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = send.send(ImageFolder::load(&path, &InputFormat::rgb(16, 16), &options).map(|(_, report)| report));
    });
    let start = Instant::now();
    let report = receive.recv_timeout(DEADLINE).expect("loading ends").expect("the folder loads");
    eprintln!("loaded in {:.2} s:\n{report}", start.elapsed().as_secs_f64());
    report
}

// ---------------------------------------------------------------------------------------------
// Decode limits

/// What the default limits say of a bomb of 60000x60000 pixels.
const REFUSED: &str = "declares 60000x60000 pixels, over the limit of 179 megapixels";

#[test]
fn every_decoder_checks_the_declared_size_before_allocating_pixels() {
    let input = InputFormat::rgb(16, 16);
    let limits = DecodeLimits::default();
    let start = Instant::now();
    let bombs = [
        ("PNG", png_bomb(60000, 60000)),
        ("JPEG", patched_bomb(ImageFormat::Jpeg)),
        ("GIF", patched_bomb(ImageFormat::Gif)),
        ("BMP", patched_bomb(ImageFormat::Bmp)),
    ];
    let png_len = bombs[0].1.len();
    assert!(png_len < 1 << 10, "the PNG bomb is a few hundred bytes: {png_len} bytes");
    for (name, bytes) in &bombs {
        let error = decode_and_resize(bytes, &input, &limits).unwrap_err();
        assert!(
            matches!(
                error,
                DecodeError::TooLarge { width: 60000, height: 60000, limit: SizeLimit::Pixels(178_956_970), .. }
            ),
            "{name}: {error}"
        );
        assert_eq!(error.to_string(), format!("{name} {REFUSED}"));
    }
    // Bombs of any shape: the smallest square over the limit, and a strip. The pixel limit is
    // Pillow's: 13377x13377 (178,944,129 pixels) would be decoded.
    for (width, height) in [(13378, 13378), (200_000_000, 1), (1, 200_000_000)] {
        let error = decode_and_resize(&png_bomb(width, height), &input, &limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("PNG declares {width}x{height} pixels, over the limit of 179 megapixels")
        );
    }
    // Refused from the header: no pixel of 10.8 GB is decoded (that would take minutes).
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());

    // Every format meets the pixel, side and byte limits, with the size it declares in the message.
    let image = a_face(64, 1);
    for format in
        [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP, ImageFormat::Tiff]
    {
        let bytes = encode(&image, format);
        assert!(decode_and_resize(&bytes, &input, &limits).is_ok(), "{format:?} decodes within the default limits");
        let few = DecodeLimits { max_pixels: 64 * 64 - 1, ..limits };
        let error = decode_and_resize(&bytes, &input, &few).unwrap_err();
        assert!(
            error.to_string().contains("declares 64x64 pixels, over the limit of 4095 pixels"),
            "{format:?}: {error}"
        );
        let narrow = DecodeLimits { max_side: 63, ..limits };
        let error = decode_and_resize(&bytes, &input, &narrow).unwrap_err();
        assert!(
            error.to_string().contains("declares 64x64 pixels, over the 63 limit (pixels a side)"),
            "{format:?}: {error}"
        );
        let small = DecodeLimits { max_pixel_bytes: 64 * 64 * 3 - 1, ..limits };
        let error = decode_and_resize(&bytes, &input, &small).unwrap_err();
        assert!(matches!(error, DecodeError::TooManyBytes { width: 64, height: 64, .. }), "{format:?}: {error}");
    }
}

/// `width` x `height` pixels of one colour as `format`.
fn one_colour(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    encode(&RgbImage::from_pixel(width, height, image::Rgb(ORANGE)), format)
}

const ORANGE: [u8; 3] = [230, 120, 20];

/// A 24000x3000 panorama (72 megapixels) of one colour as PNG and as JPEG, encoded once for the
/// tests that take it (the JPEG takes seconds).
fn panoramas() -> &'static [(ImageFormat, Vec<u8>); 2] {
    static PANORAMAS: OnceLock<[(ImageFormat, Vec<u8>); 2]> = OnceLock::new();
    PANORAMAS.get_or_init(|| [ImageFormat::Png, ImageFormat::Jpeg].map(|f| (f, one_colour(24000, 3000, f))))
}

/// Real images of shapes a side limit of 16384 refused: a strip 20000 wide and one 20000 tall, the
/// panorama as PNG and as JPEG. Each is brought to the model's input, its colour kept.
#[test]
fn strips_and_panoramas_decode_within_the_default_limits() {
    let decode = |bytes: &[u8], channels: usize, fit: Fit| {
        let input = InputFormat { channels, size: (16, 16), fit };
        decode_and_resize(bytes, &input, &DecodeLimits::default()).unwrap()
    };
    let gray = decode(&one_colour(4, 4, ImageFormat::Png), 1, Fit::Stretch).pixels[0];
    let check = |name: &str, bytes: &[u8], size: (u32, u32), channels: usize, fit: Fit| {
        let start = Instant::now();
        let decoded = decode(bytes, channels, fit);
        let mode = if channels == 1 { "gray" } else { "RGB" };
        eprintln!("{name} ({} bytes) to {mode}, {fit:?}: {:.2?}", bytes.len(), start.elapsed());
        assert_eq!(decoded.original_size, size, "{name}");
        // Pixel (7, 7) is the image's colour whatever the fit (a one-pixel strip padded lies on
        // row or column 7, between black bands), within the JPEG's loss.
        let expected = if channels == 1 { &[gray][..] } else { &ORANGE[..] };
        for (plane, &value) in decoded.pixels.chunks(256).zip(expected) {
            let found = plane[7 * 16 + 7];
            assert!(found.abs_diff(value) <= 3, "{name} to {mode}, {fit:?}: {found}, not {value}");
        }
    };
    for (name, size) in [("strip", (20000, 1)), ("tall strip", (1, 20000))] {
        let bytes = one_colour(size.0, size.1, ImageFormat::Png);
        for fit in [Fit::Stretch, Fit::CenterCrop, Fit::Pad] {
            for channels in [3, 1] {
                check(name, &bytes, size, channels, fit);
            }
        }
    }
    // A second or two each: stretched in colour, cropped in gray.
    for (format, bytes) in panoramas() {
        check(&format!("{format:?} panorama"), bytes, (24000, 3000), 3, Fit::Stretch);
        check(&format!("{format:?} panorama"), bytes, (24000, 3000), 1, Fit::CenterCrop);
    }

    // A strip 2,000,000 pixels wide to a 1024x1024 input: resampled columns first, the resize
    // would hold 2,000,000 x 1024 pixels of f32 RGBA (32 GB) between its passes.
    let strip = one_colour(2_000_000, 1, ImageFormat::Png);
    let decoded = decode_and_resize(&strip, &InputFormat::rgb(1024, 1024), &DecodeLimits::default()).unwrap();
    for (plane, value) in decoded.pixels.chunks(1024 * 1024).zip(ORANGE) {
        assert!(plane.iter().all(|&v| v == value), "the strip is all orange");
    }
}

#[test]
fn a_bomb_is_refused_by_predict_explain_and_eval_and_the_good_images_still_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    save_model(&dir.join("model.safetensors"), "c4-p-f-d1", &["happy", "sad"]);
    std::fs::write(dir.join("bomb.png"), png_bomb(60000, 60000)).unwrap();
    a_face(24, 0).save(dir.join("face.png")).unwrap();
    let refused = format!("PNG {REFUSED}");
    let refused = refused.as_str();

    fails_naming(&watched(dir, &["predict", "model.safetensors", "bomb.png"]), &["bomb.png", refused]);
    let ended = watched(dir, &["predict", "model.safetensors", "bomb.png", "face.png", "--json"]);
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
    let entries: Value = serde_json::from_str(&ended.stdout).unwrap();
    assert!(entries[0]["error"].as_str().unwrap().contains(refused), "{entries}");
    assert!(entries[1]["prediction"]["label"].is_string(), "the good image is predicted: {entries}");

    let ended = watched(dir, &["explain", "model.safetensors", "bomb.png", "face.png", "--out", "cards"]);
    assert_eq!(ended.code, Some(1), "{}", ended.stderr);
    assert!(ended.stderr.contains("bomb.png") && ended.stderr.contains(refused), "{}", ended.stderr);
    let cards: Vec<_> = std::fs::read_dir(dir.join("cards")).unwrap().collect();
    assert_eq!(cards.len(), 1, "the good image is explained: {cards:?}");

    for class in ["happy", "sad"] {
        std::fs::create_dir_all(dir.join("data").join(class)).unwrap();
        for i in 0..3 {
            a_face(24, i + if class == "sad" { 10 } else { 0 })
                .save(dir.join(format!("data/{class}/{i}.png")))
                .unwrap();
        }
    }
    std::fs::copy(dir.join("bomb.png"), dir.join("data/sad/bomb.png")).unwrap();
    let ended = watched(dir, &["eval", "model.safetensors", "data", "--out", "eval"]);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    assert!(ended.stdout.contains(&format!("sad/bomb.png: {refused}")), "{}", ended.stdout);
    assert!(ended.stdout.contains("used: 6 (happy 3, sad 3)"), "{}", ended.stdout);

    // The limits are the user's to set.
    let ended = watched(dir, &["--max-image-pixels", "575", "predict", "model.safetensors", "face.png"]);
    fails_naming(&ended, &["face.png", "declares 24x24 pixels, over the limit of 575 pixels"]);
    let ended = watched(dir, &["--max-image-side", "20", "predict", "model.safetensors", "face.png"]);
    fails_naming(&ended, &["face.png", "declares 24x24 pixels, over the 20 limit"]);
    let ended = watched(
        dir,
        &["predict", "model.safetensors", "face.png", "--max-image-side", "24", "--max-image-pixels", "576"],
    );
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
}

/// The panorama and the strip through `wgcnn predict`, within the memory a bomb is allowed.
#[test]
fn predict_takes_a_panorama_and_a_strip_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    save_model(&dir.join("model.safetensors"), "c4-p-f-d1", &["happy", "sad"]);
    for (format, bytes) in panoramas() {
        std::fs::write(dir.join(format!("panorama.{}", format.extensions_str()[0])), bytes).unwrap();
    }
    std::fs::write(dir.join("strip.png"), one_colour(20000, 1, ImageFormat::Png)).unwrap();
    for image in ["panorama.jpg", "panorama.png", "strip.png"] {
        let ended = watched(dir, &["predict", "model.safetensors", image]);
        assert_eq!(ended.code, Some(0), "{image}: {}", ended.stderr);
        assert!(ended.stdout.starts_with(&format!("{image}: ")), "{}", ended.stdout);
    }
}

// ---------------------------------------------------------------------------------------------
// Files that are not images to read

/// A data folder holding, beside good faces, everything a folder should not: a FIFO, a socket, a
/// device, a symbolic link loop, a link to a folder above it, a file too large, a bomb, and a
/// link to a good face elsewhere (which is used).
fn hostile_folder(root: &Path, per_class: usize) -> PathBuf {
    let data = root.join("data");
    write_dataset(&data, &[Emotion::Happy, Emotion::Sad], per_class, 24, 3, FacePairing::Paired).unwrap();
    let happy = data.join("happy");
    let sad = data.join("sad");
    mkfifo(&happy.join("pipe.jpg"));
    let _socket = std::os::unix::net::UnixListener::bind(happy.join("sock.png")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", happy.join("zero.png")).unwrap();
    std::os::unix::fs::symlink("loop2.jpg", happy.join("loop1.jpg")).unwrap();
    std::os::unix::fs::symlink("loop1.jpg", happy.join("loop2.jpg")).unwrap();
    std::os::unix::fs::symlink("..", happy.join("up")).unwrap();
    a_face(24, 40).save(root.join("outside.png")).unwrap();
    std::os::unix::fs::symlink(root.join("outside.png"), happy.join("link.png")).unwrap();
    sparse_file(&sad.join("huge.png"), &encode(&a_face(24, 41), ImageFormat::Png), 300 << 20);
    std::fs::write(sad.join("bomb.png"), png_bomb(60000, 60000)).unwrap();
    data
}

#[test]
fn the_loader_skips_what_is_not_a_regular_file_without_opening_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = hostile_folder(tmp.path(), 5);
    let report = load_within_deadline(&data, LoadOptions::default());
    assert_eq!(report.used_per_class, [6, 5], "the good faces and the linked one are used");
    let reason = |name: &str| {
        let skipped = report.skipped.iter().find(|s| s.path.file_name().unwrap() == name);
        skipped.unwrap_or_else(|| panic!("{name} is not in the skipped files:\n{report}")).reason.to_string()
    };
    assert_eq!(reason("pipe.jpg"), "not a regular file: it is a FIFO (named pipe)");
    assert_eq!(reason("sock.png"), "not a regular file: it is a socket");
    assert_eq!(reason("zero.png"), "not a regular file: it is a character device");
    assert_eq!(reason("up"), "not a regular file: it is a folder");
    for link in ["loop1.jpg", "loop2.jpg"] {
        assert_eq!(reason(link), "a symbolic link loop: following its links never reaches a file");
    }
    assert_eq!(reason("huge.png"), "it is 300 MiB, over the limit of 256 MiB");
    assert_eq!(reason("bomb.png"), format!("PNG {REFUSED}"));
    assert_eq!(report.skipped.len(), 8, "{report}");
    let text = report.to_string();
    assert!(text.contains("happy/pipe.jpg: not a regular file: it is a FIFO (named pipe)"), "{text}");
    assert!(text.contains("not a regular file 4"), "the summary counts by reason: {text}");

    // The file limit is the user's: a smaller one skips the faces too.
    let options = LoadOptions {
        limits: DecodeLimits { max_file_bytes: 100, ..DecodeLimits::default() },
        ..LoadOptions::default()
    };
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(ImageFolder::load(&data, &InputFormat::rgb(16, 16), &options).map(|_| ()));
    });
    let error = receive.recv_timeout(DEADLINE).unwrap().unwrap_err().to_string();
    assert!(error.contains("has no usable image") && error.contains("over the limit of 100 bytes"), "{error}");
}

#[test]
fn train_on_a_folder_with_a_fifo_and_a_bomb_skips_them_and_trains() {
    let tmp = tempfile::tempdir().unwrap();
    hostile_folder(tmp.path(), 20);
    let args =
        ["train", "data", "--out", "run", "--arch", "c4-p-f-d1", "--size", "16", "--epochs", "1", "--batch-size", "4"];
    let ended = watched(tmp.path(), &args);
    assert_eq!(ended.code, Some(0), "{}\n{}", ended.stdout, ended.stderr);
    for line in [
        "happy/pipe.jpg: not a regular file: it is a FIFO (named pipe)",
        &format!("sad/bomb.png: PNG {REFUSED}"),
        "used: 41 (happy 21, sad 20)",
    ] {
        assert!(ended.stdout.contains(line), "{line:?} is not in the output:\n{}", ended.stdout);
    }
    assert!(tmp.path().join("run/model.safetensors").is_file());
}

#[test]
fn endless_huge_and_special_files_named_on_the_command_line_are_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    save_model(&dir.join("model.safetensors"), "c4-p-f-d1", &["happy", "sad"]);
    a_face(24, 0).save(dir.join("face.png")).unwrap();
    let model = "model.safetensors";

    fails_naming(
        &watched(dir, &["predict", model, "/dev/zero"]),
        &["/dev/zero", "not a regular file: it is a character device"],
    );
    mkfifo(&dir.join("pipe.png"));
    fails_naming(&watched(dir, &["predict", model, "pipe.png"]), &["pipe.png", "FIFO"]);
    fails_naming(&watched(dir, &["explain", model, "pipe.png", "--out", "x"]), &["pipe.png", "FIFO"]);
    std::os::unix::fs::symlink("self.png", dir.join("self.png")).unwrap();
    fails_naming(&watched(dir, &["predict", model, "self.png"]), &["self.png", "symbolic link loop"]);
    sparse_file(&dir.join("big.png"), &encode(&a_face(24, 1), ImageFormat::Png), 2 << 20);
    fails_naming(
        &watched(dir, &["--max-file-mb", "1", "predict", model, "big.png"]),
        &["big.png", "it is 2 MiB, over the limit of 1 MiB"],
    );

    // Model files: endless, a FIFO, larger than any model.
    fails_naming(&watched(dir, &["predict", "/dev/zero", "face.png"]), &["/dev/zero", "character device"]);
    mkfifo(&dir.join("pipe.safetensors"));
    fails_naming(&watched(dir, &["predict", "pipe.safetensors", "face.png"]), &["pipe.safetensors", "FIFO"]);
    sparse_file(&dir.join("huge.safetensors"), &std::fs::read(dir.join(model)).unwrap(), 5 << 30);
    fails_naming(
        &watched(dir, &["eval", "huge.safetensors", "."]),
        &["huge.safetensors", "it is 5 GiB, over the limit of 4 GiB"],
    );
}

/// Class names come from a file, and outputs are named after them: a name that is a path is
/// refused when the model loads.
#[test]
fn a_model_file_whose_class_name_is_a_path_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.safetensors");
    save_model(&path, "c4-p-f-d1", &["happy", "sad"]);
    let bytes = std::fs::read(&path).unwrap();
    // The metadata holds the names as an escaped JSON array: swap one for a path of the same length.
    let at = bytes.windows(5).position(|w| w == b"happy").expect("the class name in the header");
    let mut patched = bytes.clone();
    patched[at..at + 5].copy_from_slice(b"../up");
    let hostile = tmp.path().join("hostile.safetensors");
    std::fs::write(&hostile, &patched).unwrap();
    let error = ModelFile::load(&hostile).unwrap_err().to_string();
    assert!(error.contains("hostile.safetensors") && error.contains("\"../up\" is not a name"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// `source` changed one of five ways: bytes overwritten (half the time within its first 100
/// bytes, where the headers are), cut short, a range of `other` spliced in, a range repeated, or
/// a range removed.
fn mutate(rng: &mut StdRng, source: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = source.to_vec();
    let range = |rng: &mut StdRng, len: usize| {
        let start = rng.random_range(0..len);
        (start, rng.random_range(start..=len.min(start + 512)))
    };
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let end = if rng.random_bool(0.5) { bytes.len().min(100) } else { bytes.len() };
                let at = rng.random_range(0..end);
                bytes[at] = rng.random();
            }
        }
        1 => bytes.truncate(rng.random_range(0..bytes.len())),
        2 => {
            let (start, end) = range(rng, bytes.len());
            let (from, to) = range(rng, other.len());
            bytes.splice(start..end, other[from..to].iter().copied());
        }
        3 => {
            let (start, end) = range(rng, bytes.len());
            let repeated = bytes[start..end].to_vec();
            bytes.splice(start..start, repeated);
        }
        _ => {
            let (start, end) = range(rng, bytes.len());
            bytes.drain(start..end);
        }
    }
    bytes
}

#[test]
fn thousands_of_mutated_images_and_model_files_give_errors_never_panics_or_hangs() {
    let formats =
        [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Gif, ImageFormat::Bmp, ImageFormat::WebP, ImageFormat::Tiff];
    let sources: Vec<Vec<u8>> = formats.iter().map(|&f| encode(&a_face(48, 2), f)).collect();
    let input = InputFormat::rgb(16, 16);
    let limits = DecodeLimits::default();
    let mut rng = StdRng::seed_from_u64(14);
    let start = Instant::now();
    let (mut decoded, mut refused, mut longest) = (0, 0, Duration::ZERO);
    let mut panics = Vec::new();
    for round in 0..600 {
        for (f, source) in sources.iter().enumerate() {
            let other = &sources[(f + 1 + round % 5) % sources.len()];
            let bytes = mutate(&mut rng, source, other);
            let one = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| decode_and_resize(&bytes, &input, &limits))) {
                Ok(Ok(_)) => decoded += 1,
                Ok(Err(_)) => refused += 1,
                Err(_) => panics.push(format!("{:?} round {round}", formats[f])),
            }
            longest = longest.max(one.elapsed());
        }
    }
    let images_took = start.elapsed();
    eprintln!(
        "{} mutated images: {decoded} decoded, {refused} refused, in {images_took:.2?} (longest {longest:.2?})",
        decoded + refused
    );
    assert!(panics.is_empty(), "decoding panicked on {} mutants: {:?}", panics.len(), &panics[..panics.len().min(10)]);
    assert!(longest < Duration::from_secs(5), "one mutant took {longest:?}");
    assert!(refused > 1000, "most mutants break the file: {refused} refused");

    // Through the loader: a class folder of mutants beside a good one.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_dataset(&data, &[Emotion::Happy], 4, 24, 1, FacePairing::Independent).unwrap();
    std::fs::create_dir_all(data.join("mutants")).unwrap();
    for i in 0..300 {
        let f = i % sources.len();
        let bytes = mutate(&mut rng, &sources[f], &sources[(f + 1) % sources.len()]);
        std::fs::write(data.join("mutants").join(format!("{i}.{}", formats[f].extensions_str()[0])), bytes).unwrap();
    }
    let options = LoadOptions { min_side: 1, ..LoadOptions::default() };
    let (send, receive) = mpsc::channel();
    let path = data.clone();
    std::thread::spawn(move || {
        let loaded = catch_unwind(AssertUnwindSafe(|| ImageFolder::load(&path, &InputFormat::rgb(16, 16), &options)));
        let _ = send.send(loaded.map(|result| result.map(|(_, report)| report).map_err(|e| e.to_string())));
    });
    let report = receive.recv_timeout(DEADLINE).expect("loading ends").expect("no panic").expect("the folder loads");
    let accounted = report.used() + report.skipped.len() + report.conflicts_left_out + report.duplicates_left_out;
    assert_eq!((report.found, accounted), (304, 304), "every file used or reported:\n{report}");
    assert!(report.skipped.len() > 100, "{report}");

    // Model files: half the overwrites fall in the JSON header, where the parsing is.
    let model_path = tmp.path().join("model.safetensors");
    save_model(&model_path, "c4lin-bn-r-p-c4same-r-p-f-drop0.5-d3", &["angry", "happy", "sad"]);
    let model = std::fs::read(&model_path).unwrap();
    let header_end = 8 + u64::from_le_bytes(model[..8].try_into().unwrap()) as usize;
    let start = Instant::now();
    let (mut loaded, mut refused) = (0, 0);
    let mutant_path = tmp.path().join("mutant.safetensors");
    for round in 0..1500 {
        let mut bytes = mutate(&mut rng, &model, &sources[round % sources.len()]);
        if round % 2 == 0 && bytes.len() > header_end {
            let at = rng.random_range(8..header_end);
            bytes[at] = rng.random_range(0x20..0x7f);
        }
        std::fs::write(&mutant_path, &bytes).unwrap();
        match catch_unwind(|| ModelFile::load(&mutant_path)) {
            Ok(Ok(_)) => loaded += 1,
            Ok(Err(e)) => {
                assert!(e.to_string().contains("mutant.safetensors"), "the error names the file: {e}");
                refused += 1;
            }
            Err(_) => panic!("loading a mutated model file panicked (round {round})"),
        }
    }
    eprintln!("1500 mutated model files: {loaded} loaded, {refused} refused, in {:.2?}", start.elapsed());
    assert!(refused > 500, "{refused} refused");
}

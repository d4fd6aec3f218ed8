//! The web app over real HTTP on loopback: good and bad uploads, the heat map, 500 requests from 32
//! clients batched into fewer model calls with the answers one image alone gets, a clean shutdown
//! with a request in flight, hundreds of stalled uploads beside good ones (408 for them, 200 for
//! the good ones), the upload idle longest shed when the budget is full (503), a burst of bombs and
//! broken uploads among good ones with the server's memory measured, and the page driven in
//! headless Chromium.
//!
//! The model is trained here, once per run of this file: a small network on synthetic happy and
//! sad faces at 48x48 (a few seconds on lavapipe), saved to a temporary folder.

mod common;

use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use image::{ImageFormat, RgbImage};
use serde_json::Value;
use wgcnn::data::synth::{Emotion, FaceParams};
use wgcnn::gpu::DeviceChoice;
use wgcnn::gpu::GpuModel;
use wgcnn::model::backend::Backend;
use wgcnn::model::file::ModelFile;
use wgcnn::model::spec::{Architecture, InputShape};
use wgcnn::model::test_time::TestTimeAugment;
use wgcnn::model::{TrainOptions, Trainable};
use wgcnn::serve::batcher::BatchOptions;
use wgcnn::serve::{ServeOptions, Server};
use wgcnn::train::InMemoryDataset;
use wgcnn::train::fit::{FitConfig, fit};
use wgcnn::workflow::preset::Preset;

const SIZE: u32 = 48;
const CLASSES: [Emotion; 2] = [Emotion::Happy, Emotion::Sad];
/// Faces of the training set are `for_sample(emotion, SIZE, TRAIN_SEED, i)`; the tests send faces
/// of another seed, which the model has not seen.
const TRAIN_SEED: u64 = 11;
const TEST_SEED: u64 = 99;
/// Three `same` convolutions: on lavapipe this reaches 0.97-1.0 validation accuracy within 10
/// epochs of 400 faces in batches of 8 (about 25 s), where `c8-p-c16-p-f-d32-d1` needed 20 epochs
/// of 640 faces for 0.93.
const ARCHITECTURE: &str = "c8same-p-c16same-p-c16same-p-f-d32-d1";

// ---------------------------------------------------------------------------------------------
// The model

/// A face as the model and the server see it: planar f32 in [0, 1].
fn planar(image: &RgbImage) -> Vec<f32> {
    let plane = (image.width() * image.height()) as usize;
    let mut out = vec![0.0; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(pixel[c]) / 255.0;
        }
    }
    out
}

fn face(emotion: Emotion, seed: u64, index: usize) -> RgbImage {
    FaceParams::for_sample(emotion, SIZE, seed, index).unwrap().render().0
}

fn faces(seed: u64, per_class: usize) -> InMemoryDataset {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..per_class {
        for (label, &emotion) in CLASSES.iter().enumerate() {
            images.extend(planar(&face(emotion, seed, i)));
            labels.push(label as u32);
        }
    }
    InMemoryDataset::new(images, labels, 3 * (SIZE * SIZE) as usize).unwrap()
}

/// The model file every test serves: trained on first use, then shared.
fn model_path() -> &'static Path {
    static MODEL: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &MODEL
        .get_or_init(|| {
            let start = Instant::now();
            let arch = Architecture::parse(ARCHITECTURE, InputShape::new(3, SIZE as usize, SIZE as usize)).unwrap();
            let mut model =
                GpuModel::new(common::gpu(), &arch, 8, &arch.initial_weights(3).unwrap(), &TrainOptions::default())
                    .unwrap();
            let (train, validation) = (faces(TRAIN_SEED, 200), faces(TRAIN_SEED + 1, 64));
            let config = FitConfig { epochs: 10, lr: 3e-3, seed: 5, ..FitConfig::default() };
            let outcome =
                fit(&mut model, &train, Some(&validation as &dyn wgcnn::train::BatchSource), &config).unwrap();
            let last = outcome.history.epochs.last().unwrap();
            eprintln!(
                "trained the test model in {:.1} s: loss {:.3}, validation accuracy {:.3}",
                start.elapsed().as_secs_f64(),
                last.loss,
                last.val_accuracy.unwrap_or(f64::NAN)
            );
            let file = ModelFile {
                architecture: arch,
                class_names: CLASSES.iter().map(|e| e.name().to_string()).collect(),
                normalisation: "rgb/255 stretch".parse().unwrap(),
                test_time_augment: Default::default(),
                history: outcome.history,
                weights: model.weights().unwrap(),
                optimizer: None,
                resume: None,
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("faces48").join("model.safetensors");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            file.save(&path).unwrap();
            (dir, path)
        })
        .1
}

fn start(max_upload_bytes: usize, batch: BatchOptions) -> Server {
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_upload_bytes,
        batch,
        ..ServeOptions::default()
    };
    Server::start(model_path(), own_device(), options).unwrap()
}

/// A device of its own for each server, as a server has in use: one thread (its model thread)
/// drives it. With every test server on the one shared device, one batch of the load test went
/// unanswered for 60 s in one of seven runs (not understood yet: GPU readbacks of several threads
/// on one device), which a test of the server should not inherit.
fn own_device() -> Backend {
    Backend::new(&DeviceChoice::resolve(None).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Status, content type and body of a request.
struct Answer {
    status: u16,
    content_type: String,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("status {}: the body is not JSON ({e}): {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    /// Asserts the status and a JSON `{"error": "..."}` containing `words`.
    #[track_caller]
    fn assert_error(&self, status: u16, words: &str) {
        let json = self.json();
        assert_eq!(self.status, status, "answer {json}");
        let message = json["error"].as_str().unwrap_or_else(|| panic!("no error message in {json}"));
        assert!(message.to_lowercase().contains(words), "error {message:?} does not say {words:?}");
    }
}

fn finish(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.unwrap();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap();
    Answer { status, content_type, headers, body }
}

fn post_raw(agent: &ureq::Agent, url: &str, body: &[u8]) -> Answer {
    finish(agent.post(url).header("content-type", "application/octet-stream").send(body))
}

/// `bytes` as the multipart field `name`.
fn post_multipart(agent: &ureq::Agent, url: &str, name: &str, bytes: &[u8]) -> Answer {
    let boundary = "wgcnn-test-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"face.png\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    finish(agent.post(url).header("content-type", format!("multipart/form-data; boundary={boundary}")).send(&body[..]))
}

fn get(agent: &ureq::Agent, url: &str) -> Answer {
    finish(agent.get(url).call())
}

/// Sends requests `0..requests` from `clients` threads, each with its own agent, taking the next
/// number as it finishes one; `send` makes request `k`. Returns `(k, what send gave)` for each.
fn from_clients<T: Send>(
    clients: usize,
    requests: usize,
    send: impl Fn(&ureq::Agent, usize) -> T + Sync,
) -> Vec<(usize, T)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent = agent();
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= requests {
                            return done;
                        }
                        done.push((k, send(&agent, k)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    })
}

/// Checks a `/predict` answer's fields and returns (label, confidence, probabilities by class).
#[track_caller]
fn check_prediction(answer: &Answer) -> (String, f64, Vec<(String, f64)>) {
    let json = answer.json();
    assert_eq!(answer.status, 200, "answer {json}");
    assert!(answer.content_type.starts_with("application/json"), "content type {}", answer.content_type);
    let label = json["label"].as_str().unwrap_or_else(|| panic!("no label in {json}")).to_string();
    let confidence = json["confidence"].as_f64().unwrap();
    let probabilities: Vec<(String, f64)> = json["probabilities"]
        .as_object()
        .unwrap_or_else(|| panic!("no probabilities in {json}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    let names: Vec<&str> = probabilities.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["happy", "sad"], "classes in order");
    assert!((probabilities.iter().map(|(_, p)| p).sum::<f64>() - 1.0).abs() < 1e-5, "probabilities {json}");
    let top = probabilities.iter().find(|(k, _)| *k == label).unwrap().1;
    assert_eq!(top, confidence, "the confidence is the label's probability");
    assert!(probabilities.iter().all(|(_, p)| *p <= confidence), "the label is the most probable: {json}");
    assert_eq!(json["model"], "faces48");
    assert!(json["elapsed_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "elapsed_ms in {json}");
    (label, confidence, probabilities)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn good_and_bad_uploads_get_the_right_status_and_json() {
    let server = start(1 << 20, BatchOptions::default());
    let base = format!("http://{}", server.addr());
    let agent = agent();
    let predict = format!("{base}/predict");
    let happy = face(Emotion::Happy, TEST_SEED, 0);
    let sad = face(Emotion::Sad, TEST_SEED, 0);

    // A clear face of each class, as JPEG (raw body) and as PNG (multipart), with the right label.
    let jpeg = encode(&happy, ImageFormat::Jpeg);
    let (label, confidence, _) = check_prediction(&post_raw(&agent, &predict, &jpeg));
    assert_eq!(label, "happy", "a happy face sent as JPEG");
    assert!(confidence > 0.5);
    let png = encode(&sad, ImageFormat::Png);
    let (label, _, _) = check_prediction(&post_multipart(&agent, &predict, "file", &png));
    assert_eq!(label, "sad", "a sad face sent as PNG in a form");
    let (label, _, _) = check_prediction(&post_raw(&agent, &predict, &png));
    assert_eq!(label, "sad", "the same PNG as the raw body");

    // Bad input, each answered in words; the server keeps serving after each.
    post_raw(&agent, &predict, b"name,happy\nnot,an image\n").assert_error(415, "not an image");
    post_raw(&agent, &predict, &jpeg[..jpeg.len() / 2]).assert_error(400, "truncated");
    post_raw(&agent, &predict, b"").assert_error(400, "empty");
    post_multipart(&agent, &predict, "file", b"").assert_error(400, "empty");
    post_multipart(&agent, &predict, "photo", &png).assert_error(400, "no field named `file`");
    let oversized = vec![0xABu8; (1 << 20) + 4096];
    post_raw(&agent, &predict, &oversized).assert_error(413, "over the limit");
    post_multipart(&agent, &predict, "file", &oversized).assert_error(413, "over the limit");
    get(&agent, &format!("{base}/nowhere")).assert_error(404, "no such page");
    get(&agent, &predict).assert_error(405, "get is not allowed");
    finish(agent.delete(&format!("{base}/health")).call()).assert_error(405, "not allowed");
    post_raw(&agent, &format!("{base}/explain?method=magic"), &png).assert_error(400, "unknown method");
    post_raw(&agent, &format!("{base}/explain?class=angry"), &png).assert_error(400, "unknown class");

    // Still serving.
    let (label, _, _) = check_prediction(&post_raw(&agent, &predict, &jpeg));
    assert_eq!(label, "happy");

    let health = get(&agent, &format!("{base}/health"));
    assert_eq!((health.status, &health.json()["status"]), (200, &Value::from("ok")));
    let model = get(&agent, &format!("{base}/model")).json();
    assert_eq!(model["classes"], serde_json::json!(["happy", "sad"]));
    assert_eq!(model["input"]["height"], SIZE);
    assert_eq!(model["input"]["channels"], 3);
    assert_eq!(model["architecture"], ARCHITECTURE);
    assert!(model["adapter"].as_str().is_some_and(|a| !a.is_empty()), "adapter in {model}");
    assert_eq!(model["test_time_augment"], "none", "the model file's setting");

    let page = get(&agent, &format!("{base}/"));
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("<input id=\"file\" type=\"file\""));
    assert!(
        html.contains("<title>wgcnn: Happy or sad?</title>") && html.contains("<h1>Happy or sad?</h1>"),
        "titled after the model's classes"
    );
    for external in ["http://", "https://", "//cdn"] {
        assert!(!html.contains(external), "the page must not load anything from outside ({external})");
    }
    server.shutdown().unwrap();
}

/// `serve --tta mirror`: /model says so, and each answer is the mean of a plain server's answers
/// for the image and for its mirror (at the model's input size, so no resize stands between them).
#[test]
fn a_mirroring_server_averages_each_upload_with_its_mirror() {
    let happy_of = |server: &Server, image: &RgbImage| {
        let answer = post_raw(&agent(), &format!("http://{}/predict", server.addr()), &encode(image, ImageFormat::Png));
        check_prediction(&answer).2[0].1
    };
    let face = face(Emotion::Happy, TEST_SEED, 3);
    let mirrored = image::imageops::flip_horizontal(&face);
    let plain = start(1 << 20, BatchOptions::default());
    let (own, of_mirror) = (happy_of(&plain, &face), happy_of(&plain, &mirrored));
    plain.shutdown().unwrap();
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        test_time_augment: Some(TestTimeAugment::Mirror),
        ..ServeOptions::default()
    };
    let mirroring = Server::start(model_path(), own_device(), options).unwrap();
    let model = get(&agent(), &format!("http://{}/model", mirroring.addr())).json();
    assert_eq!(model["test_time_augment"], "mirror");
    let averaged = happy_of(&mirroring, &face);
    assert!((averaged - (own + of_mirror) / 2.0).abs() < 1e-5, "{averaged} is not the mean of {own} and {of_mirror}");
    mirroring.shutdown().unwrap();
}

#[test]
fn explain_answers_a_heat_map_png_over_the_image() {
    let server = start(1 << 20, BatchOptions::default());
    let base = format!("http://{}", server.addr());
    let agent = agent();
    let png = encode(&face(Emotion::Happy, TEST_SEED, 1), ImageFormat::Png);
    for (query, method, class) in [
        ("", "gradcam", "happy"),
        ("?method=saliency", "saliency", "happy"),
        ("?class=sad&method=gradcam", "gradcam", "sad"),
    ] {
        let answer = post_multipart(&agent, &format!("{base}/explain{query}"), "file", &png);
        assert_eq!(answer.status, 200, "{query}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.content_type, "image/png");
        let heat = image::load_from_memory_with_format(&answer.body, ImageFormat::Png).unwrap();
        assert_eq!((heat.width(), heat.height()), (SIZE, SIZE), "{query}: the overlay is at the model's input size");
        assert_eq!(answer.header("x-explain-method"), method, "{query}");
        assert_eq!(answer.header("x-explain-class"), class, "{query}");
        assert_eq!(answer.header("x-label"), "happy", "{query}: the prediction");
        let original = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_ne!(heat.to_rgb8(), original, "{query}: the heat map changes the image");
    }
    server.shutdown().unwrap();
}

/// The rule `wgcnn explain` follows too (tests/cli.rs): Grad-CAM asked of a model without a
/// convolution is saliency, and the answer says so.
#[test]
fn grad_cam_of_a_model_without_a_convolution_is_saliency_and_says_so() {
    let arch = Architecture::parse("f-d8-d1", InputShape::new(3, 16, 16)).unwrap();
    let file = ModelFile {
        weights: arch.initial_weights(1).unwrap(),
        architecture: arch,
        class_names: CLASSES.iter().map(|e| e.name().to_string()).collect(),
        normalisation: "rgb/255 stretch".parse().unwrap(),
        test_time_augment: Default::default(),
        history: Default::default(),
        optimizer: None,
        resume: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dense.safetensors");
    file.save(&path).unwrap();
    let options = ServeOptions { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServeOptions::default() };
    let server = Server::start(&path, own_device(), options).unwrap();
    let base = format!("http://{}", server.addr());
    let agent = agent();
    let png = encode(&face(Emotion::Happy, TEST_SEED, 1), ImageFormat::Png);
    let answer = post_multipart(&agent, &format!("{base}/explain?method=gradcam"), "file", &png);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("x-explain-method"), "saliency");
    assert_eq!(answer.header("x-explain-asked"), "gradcam");
    assert!(
        answer.header("x-explain-note").contains("Grad-CAM needs a convolution layer"),
        "{}",
        answer.header("x-explain-note")
    );
    let answer = post_multipart(&agent, &format!("{base}/explain?method=saliency"), "file", &png);
    assert_eq!((answer.header("x-explain-method"), answer.header("x-explain-note")), ("saliency", ""));
    server.shutdown().unwrap();
}

#[test]
fn five_hundred_requests_from_32_clients_are_batched_and_all_answered_right() {
    let server =
        start(1 << 20, BatchOptions { max_batch: 16, max_wait: Duration::from_millis(5), queue_capacity: 1024 });
    let url = format!("http://{}/predict", server.addr());
    // Eight different faces, each predicted alone first: the reference answers.
    let images: Vec<(Emotion, Vec<u8>)> = (0..8)
        .map(|i| {
            let emotion = CLASSES[i % 2];
            (emotion, encode(&face(emotion, TEST_SEED, 10 + i), ImageFormat::Png))
        })
        .collect();
    let single = agent();
    let reference: Vec<Vec<(String, f64)>> =
        images.iter().map(|(_, png)| check_prediction(&post_raw(&single, &url, png)).2).collect();
    let before = get(&single, &format!("http://{}/stats", server.addr())).json();

    const REQUESTS: usize = 500;
    const CLIENTS: usize = 32;
    let start = Instant::now();
    let latencies: Vec<(usize, f64)> = from_clients(CLIENTS, REQUESTS, |agent, k| {
        let which = k % images.len();
        let sent = Instant::now();
        let answer = post_raw(agent, &url, &images[which].1);
        let seconds = sent.elapsed().as_secs_f64();
        let (label, _, probabilities) = check_prediction(&answer);
        assert_eq!(label, reference[which].iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0);
        for ((name, p), (_, q)) in probabilities.iter().zip(&reference[which]) {
            assert!((p - q).abs() <= 1e-5, "request {k}, image {which}: {name} {p} batched vs {q} alone");
        }
        seconds
    });
    let wall = start.elapsed().as_secs_f64();
    let mut answered: Vec<usize> = latencies.iter().map(|(k, _)| *k).collect();
    answered.sort_unstable();
    assert_eq!(answered, (0..REQUESTS).collect::<Vec<_>>(), "every request answered once");

    let after = get(&single, &format!("http://{}/stats", server.addr())).json();
    let count = |json: &Value, key: &str| json[key].as_u64().unwrap();
    let (batches, images_run) =
        (count(&after, "batches") - count(&before, "batches"), count(&after, "images") - count(&before, "images"));
    let mut seconds: Vec<f64> = latencies.iter().map(|(_, s)| *s).collect();
    seconds.sort_by(f64::total_cmp);
    let quantile = |q: f64| seconds[((q * seconds.len() as f64).ceil() as usize).clamp(1, seconds.len()) - 1] * 1e3;
    eprintln!(
        "{REQUESTS} requests from {CLIENTS} clients in {wall:.2} s: {:.1} requests/s, p50 {:.1} ms, p99 {:.1} ms; \
         {images_run} images in {batches} batches ({:.2} per batch, largest {}), histogram {}",
        REQUESTS as f64 / wall,
        quantile(0.5),
        quantile(0.99),
        images_run as f64 / batches as f64,
        after["largest_batch"],
        after["histogram"]
    );
    assert_eq!(images_run, REQUESTS as u64, "every request ran through the model once");
    assert!(images_run as f64 / batches as f64 > 1.0, "no batching: {images_run} images in {batches} batches");
    server.shutdown().unwrap();
}

#[test]
fn shutdown_lets_a_request_in_flight_finish() {
    // A long batching wait keeps the request in the queue when the shutdown starts.
    let server =
        start(1 << 20, BatchOptions { max_batch: 8, max_wait: Duration::from_millis(1500), queue_capacity: 16 });
    let addr = server.addr();
    let png = encode(&face(Emotion::Sad, TEST_SEED, 2), ImageFormat::Png);
    let in_flight = std::thread::spawn(move || post_raw(&agent(), &format!("http://{addr}/predict"), &png));
    std::thread::sleep(Duration::from_millis(400));
    let stopping = Instant::now();
    server.shutdown().unwrap();
    let answer = in_flight.join().unwrap();
    let (label, _, _) = check_prediction(&answer);
    assert_eq!(label, "sad");
    eprintln!("shut down in {:.2} s with one request in flight", stopping.elapsed().as_secs_f64());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(), "still listening after shutdown");
}

/// A client that opens an upload of `promised` bytes, sends `sent` of them, and then stalls.
fn stalled_upload(addr: SocketAddr, promised: usize, sent: usize) -> TcpStream {
    use std::io::Write;
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!("POST /predict HTTP/1.1\r\nhost: test\r\ncontent-length: {promised}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b'x'; sent]).unwrap();
    stream
}

/// What the server answered a stalled upload, and how long after `since` (its start) it came.
fn stalled_answer(mut stream: TcpStream, since: Instant) -> (String, Duration) {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    (answer, since.elapsed())
}

fn upload_stats(server: &Server) -> Value {
    get(&agent(), &format!("http://{}/stats", server.addr())).json()["uploads"].clone()
}

/// The regression of a queue taken before the body arrived: 300 clients open a 1 MiB upload each,
/// send 1000 bytes and stall. They hold 300 kB of the 4 MiB budget and nothing else, so uploads
/// from other clients meanwhile are answered 200, each in well under a second; the stalled ones
/// end with 408 at the body timeout.
#[test]
fn hundreds_of_stalled_uploads_never_keep_a_good_one_waiting() {
    const STALLED: usize = 300;
    const BUDGET: usize = 4 << 20;
    let body_timeout = Duration::from_secs(3);
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_upload_bytes: 1 << 20,
        upload_budget_bytes: BUDGET,
        decode_threads: 1,
        body_timeout,
        ..ServeOptions::default()
    };
    let server = Server::start(model_path(), own_device(), options).unwrap();
    let url = format!("http://{}/predict", server.addr());
    let opened = Instant::now();
    let stalled: Vec<TcpStream> = (0..STALLED).map(|_| stalled_upload(server.addr(), 1 << 20, 1000)).collect();
    // Every stalled body has reached the server (it counts them arriving) before the good uploads.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stats = upload_stats(&server);
        if stats["arriving"] == STALLED && stats["held_bytes"] == STALLED * 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "the stalled uploads reach the server, 1000 bytes each: {stats}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let emotion = CLASSES[i % 2];
        let sent = Instant::now();
        let (label, _, _) =
            check_prediction(&post_raw(&agent(), &url, &encode(&face(emotion, TEST_SEED, i), ImageFormat::Png)));
        slowest = slowest.max(sent.elapsed());
        assert_eq!(label, emotion.name());
    }
    eprintln!(
        "10 good uploads beside {STALLED} stalled ones: the slowest answered in {:.1} ms",
        slowest.as_secs_f64() * 1e3
    );
    assert!(slowest < Duration::from_millis(500), "a good upload waited {slowest:?} behind stalled ones");
    assert!(opened.elapsed() < body_timeout, "the good uploads were sent while the stalled ones were held");

    let answers: Vec<(String, Duration)> = stalled.into_iter().map(|stream| stalled_answer(stream, opened)).collect();
    for (answer, after) in &answers {
        assert!(answer.starts_with("HTTP/1.1 408"), "a stalled body is timed out: {answer:?}");
        assert!(answer.contains("did not arrive within 3 s"), "{answer}");
        assert!(*after < body_timeout + Duration::from_secs(3), "408 after {after:?}");
    }
    let stats = upload_stats(&server);
    assert!(stats["peak_bytes"].as_u64().unwrap() <= BUDGET as u64, "{stats}");
    assert_eq!(stats["held_bytes"].as_u64().unwrap(), 0, "every body gave its bytes back: {stats}");
    assert_eq!(stats["shed"].as_u64().unwrap(), 0, "{stats}");
    server.shutdown().unwrap();
}

/// Twelve clients each send 100 kB of a 512 kB upload and stall, one after another, into a budget
/// of 1 MiB: the bytes held never pass it, because each upload that needs room sheds the one idle
/// longest (the oldest) with 503. A good upload from another client, and the newest stalled ones,
/// are kept.
#[test]
fn when_stalled_uploads_fill_the_budget_the_one_idle_longest_is_shed() {
    const STALLED: usize = 12;
    const SENT: usize = 100_000;
    const BUDGET: usize = 1 << 20;
    let body_timeout = Duration::from_secs(4);
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_upload_bytes: 512 << 10,
        upload_budget_bytes: BUDGET,
        body_timeout,
        ..ServeOptions::default()
    };
    let server = Server::start(model_path(), own_device(), options).unwrap();
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for k in 0..STALLED {
        stalled.push(stalled_upload(server.addr(), 512 << 10, SENT));
        // Each has arrived in full before the next starts, so their ages are in order.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let stats = upload_stats(&server);
            let counted = stats["arriving"].as_u64().unwrap() + stats["shed"].as_u64().unwrap();
            if counted == k as u64 + 1 && stats["held_bytes"].as_u64().unwrap().is_multiple_of(SENT as u64) {
                break;
            }
            assert!(Instant::now() < deadline, "stalled upload {k} reaches the server: {stats}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let url = format!("http://{}/predict", server.addr());
    let png = encode(&face(Emotion::Happy, TEST_SEED, 0), ImageFormat::Png);
    let sent = Instant::now();
    let (label, _, _) = check_prediction(&post_raw(&agent(), &url, &png));
    assert_eq!(label, "happy");
    assert!(sent.elapsed() < Duration::from_millis(500), "the good upload waited {:?}", sent.elapsed());

    let answers: Vec<(String, Duration)> = stalled.into_iter().map(|stream| stalled_answer(stream, opened)).collect();
    let shed: Vec<bool> = answers.iter().map(|(answer, _)| answer.starts_with("HTTP/1.1 503")).collect();
    let kept = shed.iter().filter(|s| !**s).count();
    assert!(kept * SENT <= BUDGET && (kept + 1) * SENT > BUDGET - png.len(), "{kept} kept of {STALLED}: {shed:?}");
    assert!(shed.iter().take_while(|s| **s).count() == STALLED - kept, "the oldest are shed first: {shed:?}");
    for ((answer, after), shed) in answers.iter().zip(&shed) {
        if *shed {
            assert!(answer.contains("idle longest"), "{answer}");
        } else {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(*after < body_timeout + Duration::from_secs(3), "408 after {after:?}");
        }
    }
    let stats = upload_stats(&server);
    eprintln!("{STALLED} stalled uploads of {SENT} bytes into {BUDGET}: {kept} kept, {stats}");
    assert!(stats["peak_bytes"].as_u64().unwrap() <= BUDGET as u64, "{stats}");
    assert_eq!(stats["shed"].as_u64().unwrap() as usize, STALLED - kept, "{stats}");
    server.shutdown().unwrap();
}

/// Whether the server has closed `stream` (end of stream or a reset) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    match stream.read(&mut [0u8; 256]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// Eight clients send half a request head and stall, filling all 8 connection slots: a new
/// client is served at once and closes the one idle longest (the first), and the rest are
/// closed at the idle timeout.
#[test]
fn a_new_client_closes_the_connection_idle_longest_and_stalled_heads_time_out() {
    use std::io::Write;
    const SLOTS: usize = 8;
    let idle_timeout = Duration::from_secs(2);
    let options = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_connections: SLOTS,
        idle_timeout,
        ..ServeOptions::default()
    };
    let server = Server::start(model_path(), own_device(), options).unwrap();
    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..SLOTS)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr()).unwrap();
            stream.write_all(b"POST /predict HTTP/1.1\r\nhost: test\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(30));
            stream
        })
        .collect();
    let png = encode(&face(Emotion::Sad, TEST_SEED, 1), ImageFormat::Png);
    let sent = Instant::now();
    let (label, _, _) = check_prediction(&post_raw(&agent(), &format!("http://{}/predict", server.addr()), &png));
    assert_eq!(label, "sad");
    assert!(sent.elapsed() < Duration::from_millis(500), "the new client waited {:?}", sent.elapsed());
    assert!(closed_within(&mut stalled[0], Duration::from_secs(1)), "the connection idle longest is closed");
    assert!(!closed_within(&mut stalled[SLOTS - 1], Duration::from_millis(100)), "the newest stalled one stays");
    for (k, stream) in stalled.iter_mut().enumerate().skip(1) {
        assert!(closed_within(stream, idle_timeout + Duration::from_secs(2)), "stalled head {k} is timed out");
    }
    let elapsed = opened.elapsed();
    assert!(elapsed >= idle_timeout && elapsed < idle_timeout + Duration::from_secs(3), "closed after {elapsed:?}");
    let stats = get(&agent(), &format!("http://{}/stats", server.addr())).json();
    assert!(stats["connections"]["closed_to_make_room"].as_u64().unwrap() >= 1, "{stats}");
    server.shutdown().unwrap();
}

/// `wgcnn serve` in a child process under a burst from 24 clients: good faces mixed with bombs
/// (60000x60000, and 16000x16000 whose pixels would take 768 MB), truncated images, garbage and
/// an upload over the size limit. Every good one is answered 200 with its true label, every bad
/// one 4xx (503 allowed) with a JSON error, every request once; the server's peak resident
/// memory, from the kernel, stays under 1 GiB.
#[test]
fn a_burst_of_bad_uploads_among_good_ones_keeps_the_server_right_and_its_memory_bounded() {
    use common::bomb::png_bomb;
    use common::process::Watched;
    const PEAK_LIMIT: u64 = 1 << 30;
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgcnn"));
    command
        .args(["serve", model_path().to_str().unwrap(), "--addr", "127.0.0.1:0", "--max-upload-mb", "4"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    let server = Watched::spawn(&mut command);
    let line = server.wait_for_line("serving", Duration::from_secs(120)).expect("the server starts");
    let addr = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().to_string();
    let url = format!("http://{addr}/predict");

    let good: Vec<(&str, Vec<u8>)> = (0..6)
        .map(|i| {
            let emotion = CLASSES[i % 2];
            let format = if i < 3 { ImageFormat::Png } else { ImageFormat::Jpeg };
            (emotion.name(), encode(&face(emotion, TEST_SEED, i), format))
        })
        .collect();
    let jpeg = &good[3].1;
    let mut garbage = vec![0u8; 20_000];
    rand::Rng::fill(&mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3), &mut garbage[..]);
    let bad: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("bomb 60000x60000", png_bomb(60000, 60000), &[413]),
        ("bomb 16000x16000", png_bomb(16000, 16000), &[413]),
        ("truncated JPEG", jpeg[..jpeg.len() / 2].to_vec(), &[400]),
        ("garbage", garbage, &[415]),
        ("over the upload limit", vec![7u8; 5 << 20], &[413]),
    ];
    const REQUESTS: usize = 480;
    const CLIENTS: usize = 24;
    let start = Instant::now();
    // Half good, half bad, interleaved; the large upload one time in twenty.
    let answered: Vec<(usize, u16)> = from_clients(CLIENTS, REQUESTS, |agent, k| {
        if k.is_multiple_of(2) {
            let (label, bytes) = &good[(k / 2) % good.len()];
            let answer = post_raw(agent, &url, bytes);
            assert_eq!(check_prediction(&answer).0, *label, "request {k}");
            return answer.status;
        }
        let (what, bytes, statuses) = &bad[(k / 2) % bad.len()];
        let answer = post_raw(agent, &url, bytes);
        let json = answer.json();
        assert!(
            statuses.contains(&answer.status) || answer.status == 503,
            "request {k} ({what}): status {} {json}",
            answer.status
        );
        assert!(json["error"].is_string(), "request {k} ({what}): {json}");
        answer.status
    });
    let wall = start.elapsed().as_secs_f64();
    let mut seen: Vec<usize> = answered.iter().map(|(k, _)| *k).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..REQUESTS).collect::<Vec<_>>(), "every request answered once");
    let health = get(&agent(), &format!("http://{addr}/health"));
    assert_eq!(health.status, 200);

    server.signal(libc::SIGTERM);
    let ended = server.finish(Duration::from_secs(60));
    let count = |status: u16| answered.iter().filter(|(_, s)| *s == status).count();
    eprintln!(
        "{REQUESTS} requests from {CLIENTS} clients in {wall:.1} s: 200 x{}, 400 x{}, 413 x{}, 415 x{}, 503 x{}; \
         server peak resident {} MiB",
        count(200),
        count(400),
        count(413),
        count(415),
        count(503),
        ended.peak_rss_bytes >> 20
    );
    assert_eq!(ended.code, Some(0), "the server stops cleanly on SIGTERM:\n{}", ended.stderr);
    assert!(!ended.stderr.contains("panicked"), "{}", ended.stderr);
    assert!(ended.peak_rss_bytes < PEAK_LIMIT, "peak resident {} MiB, over 1 GiB", ended.peak_rss_bytes >> 20);
}

// ---------------------------------------------------------------------------------------------
// The page in a browser

/// chromedriver on a free port, ended on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> ChromeDriver {
    for program in ["chromium", "chromedriver"] {
        let found = Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(
            found.is_ok_and(|s| s.success()),
            "the page test needs `{program}` (Debian's chromium and chromium-driver packages): run `.ci/setup`, which installs them"
        );
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = ChromeDriver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

#[test]
fn the_page_shows_the_label_the_bars_and_the_heat_map_in_headless_chromium() {
    let driver = chromedriver();
    let server = start(1 << 20, BatchOptions::default());
    let page_url = format!("http://{}/", server.addr());
    let profile = tempfile::tempdir().unwrap();
    let upload = profile.path().join("happy-face.png");
    std::fs::write(&upload, encode(&face(Emotion::Happy, TEST_SEED, 3), ImageFormat::Png)).unwrap();
    let expected = check_prediction(&post_raw(
        &agent(),
        &format!("http://{}/predict", server.addr()),
        &std::fs::read(&upload).unwrap(),
    ))
    .0;
    assert_eq!(expected, "happy");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use fantoccini::{ClientBuilder, Locator};
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    "--window-size=1000,800",
                    format!("--user-data-dir={}", profile.path().join("chromium").display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session through chromedriver");
        let result = async {
            client.goto(&page_url).await?;
            let model = client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#model")).await?;
            let input = client.find(Locator::Css("input#file")).await?;
            input.send_keys(&upload.display().to_string()).await?;
            let wait = || client.wait().at_most(Duration::from_secs(30)).every(Duration::from_millis(100));
            wait().for_element(Locator::Css("#answer:not([hidden]) .bar")).await?;
            let label = client.find(Locator::Css("#label")).await?.text().await?;
            let confidence = client.find(Locator::Css("#confidence")).await?.text().await?;
            let bars = client.find_all(Locator::Css("#bars .bar")).await?;
            let mut classes = Vec::new();
            for bar in &bars {
                classes.push(bar.attr("data-class").await?.unwrap_or_default());
            }
            wait().for_element(Locator::Css("#heatmap-figure:not([hidden]) #heatmap")).await?;
            let heat_loaded = client
                .execute(
                    "const img = document.getElementById('heatmap'); return img.complete && img.naturalWidth;",
                    vec![],
                )
                .await?;
            let error_hidden = client.find(Locator::Css("#error")).await?.attr("hidden").await?.is_some();
            let model_text = model.text().await?;
            if let Ok(path) = std::env::var("WGCNN_PAGE_SCREENSHOT") {
                std::fs::write(path, client.screenshot().await?).unwrap();
            }
            Ok::<_, fantoccini::error::CmdError>((label, confidence, classes, heat_loaded, error_hidden, model_text))
        }
        .await;
        let _ = client.close().await;
        let (label, confidence, classes, heat_loaded, error_hidden, model_text) = result.expect("the page in Chromium");
        eprintln!("page: {label:?}, {confidence:?}, bars {classes:?}, heat map {heat_loaded}, model {model_text:?}");
        assert_eq!(label.to_lowercase(), expected);
        assert!(confidence.contains('%'), "confidence {confidence:?}");
        assert_eq!(classes, ["happy", "sad"]);
        assert_eq!(heat_loaded, serde_json::json!(SIZE), "the heat map image loaded at the model's size");
        assert!(error_hidden, "no error shown");
        assert!(model_text.contains("happy, sad"), "model line {model_text:?}");
    });
    server.shutdown().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Figures for the note (run by hand: `cargo test --test serve figures -- --ignored --nocapture`)

/// A model file of `architecture` with initial (untrained) weights: throughput does not depend on
/// what the weights are.
fn untrained_model(dir: &Path, name: &str, architecture: Architecture, classes: &[&str]) -> PathBuf {
    let architecture = architecture.with_classes(classes.len()).unwrap();
    let colour = if architecture.input.channels == 1 { "gray" } else { "rgb" };
    let file = ModelFile {
        weights: architecture.initial_weights(1).unwrap(),
        architecture,
        class_names: classes.iter().map(|c| c.to_string()).collect(),
        normalisation: format!("{colour}/255 stretch").parse().unwrap(),
        test_time_augment: Default::default(),
        history: Default::default(),
        optimizer: None,
        resume: None,
    };
    let path = dir.join(name).join("model.safetensors");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    file.save(&path).unwrap();
    path
}

/// `requests` single-image requests from `clients` clients: (requests/s, p50 ms, p99 ms, images per batch).
fn load(server: &Server, uploads: &[Vec<u8>], requests: usize, clients: usize) -> (f64, f64, f64, f64) {
    let url = format!("http://{}/predict", server.addr());
    let stats = |key: &str| get(&agent(), &format!("http://{}/stats", server.addr())).json()[key].as_u64().unwrap();
    // Warm-up: every predictor size once.
    for upload in uploads.iter().take(2) {
        assert_eq!(post_raw(&agent(), &url, upload).status, 200);
    }
    let (batches, images) = (stats("batches"), stats("images"));
    let start = Instant::now();
    let mut seconds: Vec<f64> = from_clients(clients, requests, |agent, k| {
        let sent = Instant::now();
        assert_eq!(post_raw(agent, &url, &uploads[k % uploads.len()]).status, 200);
        sent.elapsed().as_secs_f64()
    })
    .into_iter()
    .map(|(_, seconds)| seconds)
    .collect();
    let wall = start.elapsed().as_secs_f64();
    seconds.sort_by(f64::total_cmp);
    let quantile = |q: f64| seconds[((q * seconds.len() as f64).ceil() as usize).clamp(1, seconds.len()) - 1] * 1e3;
    let per_batch = (stats("images") - images) as f64 / (stats("batches") - batches) as f64;
    (requests as f64 / wall, quantile(0.5), quantile(0.99), per_batch)
}

#[test]
#[ignore = "takes minutes: the figures for the note, run by hand"]
fn figures() {
    let dir = tempfile::tempdir().unwrap();
    let emotions3 = Preset::named("emotions3").unwrap().architecture.with_input(InputShape::new(1, 48, 48));
    let happy_sad = Preset::named("happy-sad").unwrap().architecture;
    let cases = [
        ("emotions3 1x48x48", untrained_model(dir.path(), "emotions3", emotions3, &["angry", "happy", "sad"]), 48, 480),
        ("happy-sad 3x256x256", untrained_model(dir.path(), "happy-sad", happy_sad, &["happy", "sad"]), 256, 160),
    ];
    let backend = own_device();
    println!("adapter: {}", backend.describe());
    for (name, path, size, requests) in cases {
        let uploads: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                encode(
                    &FaceParams::for_sample(CLASSES[i % 2], size, TEST_SEED, i).unwrap().render().0,
                    ImageFormat::Png,
                )
            })
            .collect();
        for (mode, max_batch, wait_ms, clients) in [
            ("no batching", 1, 0, 1),
            ("no batching", 1, 0, 32),
            ("batching (16, 5 ms)", 16, 5, 1),
            ("batching (16, 5 ms)", 16, 5, 32),
        ] {
            let options = ServeOptions {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                max_upload_bytes: 10 << 20,
                batch: BatchOptions { max_batch, max_wait: Duration::from_millis(wait_ms), queue_capacity: 1024 },
                ..ServeOptions::default()
            };
            let server = Server::start(&path, backend.clone(), options).unwrap();
            let n = if clients == 1 { requests / 4 } else { requests };
            let (rps, p50, p99, per_batch) = load(&server, &uploads, n, clients);
            println!(
                "{name:<20} {mode:<20} {clients:>2} clients {n:>4} requests: {rps:7.1} requests/s  p50 {p50:7.1} ms  p99 {p99:7.1} ms  {per_batch:5.2} images/batch"
            );
            server.shutdown().unwrap();
        }
    }
}

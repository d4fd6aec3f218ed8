//! The web app: an upload page and a prediction API over one saved model (`wgcnn serve`).
//!
//! - `GET /`: a self-contained page (no external resources): choose or drop a photo, see it, its
//!   predicted label, the confidence, a bar per class, and the Grad-CAM heat map beside them.
//! - `POST /predict`: the image as the multipart field `file` or as the raw body; answers
//!   `{"label", "confidence", "probabilities": {class: p}, "model", "elapsed_ms", "batch_images"}`.
//! - `POST /explain[?class=NAME][&method=gradcam|saliency]`: the same inputs; answers a PNG of the
//!   heat map over the image as the model sees it (resized), for the class asked (default: the
//!   predicted one). Headers `x-explain-class`, `x-explain-method`, `x-label`, `x-confidence`.
//! - `GET /health`, `GET /model` (classes, input, architecture, adapter), `GET /stats` (batching).
//! - Bad input gets 400 (empty, truncated, unreadable, no `file` field), 415 (not an image), 413
//!   (over the upload limit, or an image whose header declares more pixels than the decode limits),
//!   408 (the body did not arrive in time), 404 and 405, each with `{"error": "..."}` in words; 503
//!   for an upload shed to make room for others (the one idle longest), or when the model's queue
//!   is full.
//!
//! Memory is held: the bodies of all uploads together hold at most `upload_budget_bytes` (charged
//! as their bytes arrive, `uploads`), each at most `max_upload_bytes` and read within
//! `body_timeout`. Only a complete body waits for one of the `decode_threads` decoders; while it
//! decodes, its multipart field is a second copy of it, and its image is decoded within
//! [`DecodeLimits`]: besides the file's bytes (twice for a JPEG), at most three times
//! `max_pixel_bytes` (the pixels as stored and as much again, converted, rotated or a PNG
//! decoder's row; or a progressive JPEG's coefficients). So uploads take at most
//! `upload_budget_bytes + decode_threads x (max_upload_bytes + the decode's peak)`. The model
//! runs on its own thread ([`batcher`]), which runs requests that arrive together as one batch. The server stops on Ctrl-C or SIGTERM (when
//! asked to listen for them) or [`Server::shutdown`], letting requests in flight finish.

pub mod batcher;
mod connections;
mod uploads;

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};

use crate::data::image::{DecodeError, DecodeLimits, InputFormat, decode_and_resize, planar_to_rgb, to_f32_planar};
use crate::files::human_bytes;
use crate::model::backend::Backend;
use crate::model::explain::{ExplainMethod, HEAT_ALPHA, overlay_heatmap};
use crate::model::test_time::TestTimeAugment;
use crate::workflow::session::ModelSession;
use crate::{Error, Result};
use batcher::{BatchOptions, BatcherHandle, SubmitError};
use connections::{BoundedListener, ConnectionsView};
use uploads::{BodyBudget, BodyError};

/// The upload page, self-contained; `{{TITLE}}` becomes [`page_title`].
const PAGE: &str = include_str!("page.html");

/// What `wgcnn serve` is told.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen (port 0: any free port; [`Server::addr`] tells which).
    pub addr: SocketAddr,
    /// The largest request body accepted, in bytes.
    pub max_upload_bytes: usize,
    pub batch: BatchOptions,
    /// What one uploaded image may cost to decode.
    pub limits: DecodeLimits,
    /// Images decoded at once.
    pub decode_threads: usize,
    /// The most bytes the bodies of all uploads may hold together, complete or still arriving (at
    /// least `max_upload_bytes`).
    pub upload_budget_bytes: usize,
    /// How long a request's body may take to arrive (408 after).
    pub body_timeout: Duration,
    /// Connections held at once; a new one beyond them closes the one idle longest.
    pub max_connections: usize,
    /// How long a connection may pass without a byte read or written before it is closed.
    pub idle_timeout: Duration,
    /// Stop on Ctrl-C (SIGINT) and SIGTERM.
    pub stop_on_signals: bool,
    /// Predict with this test-time augmentation instead of the model file's.
    pub test_time_augment: Option<TestTimeAugment>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_upload_bytes: 10 << 20,
            batch: BatchOptions::default(),
            limits: DecodeLimits::default(),
            decode_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            upload_budget_bytes: 128 << 20,
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            stop_on_signals: false,
            test_time_augment: None,
        }
    }
}

/// What every handler reads.
struct AppState {
    batcher: BatcherHandle,
    format: InputFormat,
    class_names: Vec<String>,
    /// The model's name in answers: its run folder's name, or the file's stem.
    name: String,
    /// `/model`'s answer.
    model_info: Value,
    /// The upload page, titled after the model's classes.
    page: String,
    max_upload_bytes: usize,
    limits: DecodeLimits,
    body_timeout: Duration,
    /// The bytes the upload bodies hold.
    uploads: Arc<BodyBudget>,
    connections: ConnectionsView,
    /// Permits to decode, `decode_threads`; waited for by complete bodies only.
    decoders: Arc<Semaphore>,
    started: Instant,
}

/// A running server: the listener bound, the model loaded, requests served on a background
/// runtime until [`Server::shutdown`] (or a signal, when asked).
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Server {
    /// Loads `model_path` onto `backend`, binds `options.addr` and starts serving.
    pub fn start(model_path: &Path, backend: Backend, options: ServeOptions) -> Result<Server> {
        if options.max_upload_bytes == 0 {
            return Err(Error::Invalid("serve: the upload limit must be more than 0 bytes".into()));
        }
        if options.decode_threads == 0
            || options.body_timeout.is_zero()
            || options.max_connections == 0
            || options.idle_timeout.is_zero()
        {
            return Err(Error::Invalid(
                "serve: the decode threads, the connections and the body and idle timeouts must be more than 0".into(),
            ));
        }
        if options.upload_budget_bytes < options.max_upload_bytes {
            return Err(Error::Invalid(format!(
                "serve: the upload budget ({}) must hold at least one upload of the limit ({})",
                human_bytes(options.upload_budget_bytes as u64),
                human_bytes(options.max_upload_bytes as u64)
            )));
        }
        options.limits.validate()?;
        if options.batch.max_batch == 0 {
            return Err(Error::Invalid("batching: max batch must be at least 1".into()));
        }
        let mut session =
            ModelSession::open(model_path, &backend, &batcher::batch_sizes(options.batch.max_batch), options.limits)?;
        if let Some(test_time) = options.test_time_augment {
            session.set_test_time_augment(test_time);
        }
        let (file, format) = (session.file(), session.format());
        let name = model_name(model_path);
        let model_info = json!({
            "name": name,
            "classes": file.class_names,
            "input": {
                "channels": format.channels,
                "height": format.size.0,
                "width": format.size.1,
                "normalisation": file.normalisation,
            },
            "architecture": file.architecture.to_string(),
            "outputs": file.architecture.outputs(),
            "test_time_augment": session.test_time_augment().to_string(),
            "grad_cam": session.method_for(ExplainMethod::GradCam).method == ExplainMethod::GradCam,
            "adapter": backend.describe(),
            "max_batch": options.batch.max_batch,
            "max_wait_ms": options.batch.max_wait.as_secs_f64() * 1e3,
            "max_upload_bytes": options.max_upload_bytes,
            "max_image_pixels": options.limits.max_pixels,
            // None: no side limit beyond each format's own.
            "max_image_side": (options.limits.max_side != u32::MAX).then_some(options.limits.max_side),
            "max_image_pixel_bytes": options.limits.max_pixel_bytes,
            "decode_threads": options.decode_threads,
            "upload_budget_bytes": options.upload_budget_bytes,
            "body_timeout_s": options.body_timeout.as_secs_f64(),
            "max_connections": options.max_connections,
            "idle_timeout_s": options.idle_timeout.as_secs_f64(),
        });
        let class_names = file.class_names.clone();
        let page = PAGE.replace("{{TITLE}}", &html_escape(&page_title(&class_names)));
        let (batcher, model_thread) = batcher::spawn(session, options.batch)?;
        let state = Arc::new(AppState {
            batcher,
            format,
            class_names,
            name,
            page,
            model_info,
            max_upload_bytes: options.max_upload_bytes,
            limits: options.limits,
            body_timeout: options.body_timeout,
            uploads: BodyBudget::new(options.upload_budget_bytes),
            connections: ConnectionsView::new(options.max_connections),
            decoders: Arc::new(Semaphore::new(options.decode_threads)),
            started: Instant::now(),
        });

        let listener = std::net::TcpListener::bind(options.addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| Error::Invalid(format!("serve: cannot listen on {}: {e}", options.addr)))?;
        let addr = listener.local_addr().map_err(|e| Error::Invalid(format!("serve: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("wgcnn-http")
            .build()
            .map_err(|e| Error::Invalid(format!("serve: cannot start the async runtime: {e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let signals = options.stop_on_signals;
        let (connections, idle_timeout) = (state.connections.clone(), options.idle_timeout);
        let thread = std::thread::Builder::new()
            .name("wgcnn-serve".into())
            .spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let listener = BoundedListener::new(listener, &connections, idle_timeout);
                    let app = router(state);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            if signals {
                                tokio::select! {
                                    _ = stopped => {}
                                    () = shutdown_signal() => {}
                                }
                            } else {
                                let _ = stopped.await;
                            }
                        })
                        .await
                });
                // The router (and with it every handle on the queue) is gone: the model thread
                // answers what is left and ends.
                drop(runtime);
                let _ = model_thread.join();
                served.map_err(|e| Error::Invalid(format!("serve: {e}")))
            })
            .map_err(|e| Error::Invalid(format!("serve: cannot start the server thread: {e}")))?;
        Ok(Server { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// Waits until the server ends (on a signal, when it listens for them).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| Error::Invalid("serve: the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.join();
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The page's title from the model's classes: "Happy or sad?", "Happy, sad or angry?".
fn page_title(classes: &[String]) -> String {
    let mut names: Vec<String> = classes.to_vec();
    if let Some(first) = names.first_mut() {
        let mut chars = first.chars();
        *first = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    }
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}?", rest.join(", ")),
        _ => format!("{}?", names.concat()),
    }
}

/// `text` safe inside HTML.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `runs/happy/model.safetensors` is "happy"; `happy.safetensors` is "happy".
fn model_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let parent = path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str());
    match parent {
        Some(folder) if stem == "model" => folder.to_string(),
        _ => stem.to_string(),
    }
}

fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_upload_bytes;
    Router::new()
        .route("/", get(|State(state): State<Arc<AppState>>| async move { Html(state.page.clone()) }))
        .route("/predict", post(predict))
        .route("/explain", post(explain))
        .route("/health", get(health))
        .route("/model", get(model))
        .route("/stats", get(stats))
        .fallback(|request: Request| async move {
            ApiError::new(StatusCode::NOT_FOUND, format!("no such page: {}", request.uri().path()))
        })
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not allowed on {}", request.method(), request.uri().path()),
            )
        })
        // The multipart reader has its own limit (2 MB unless told); the body is already limited.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The client's mistakes are the client's to read; the server's own are logged too (through
        // the `log` facade: `wgcnn serve` writes them on stderr).
        if self.status.is_server_error() {
            log::error!("{} {}", self.status, self.message);
        }
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        let status = match e {
            DecodeError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DecodeError::TooLarge { .. } | DecodeError::TooManyBytes { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            DecodeError::Empty
            | DecodeError::Truncated { .. }
            | DecodeError::Unreadable { .. }
            | DecodeError::DecoderPanicked { .. } => StatusCode::BAD_REQUEST,
        };
        let message = match e {
            DecodeError::Empty => "the upload is empty: send an image file".to_string(),
            e => e.to_string(),
        };
        Self::new(status, message)
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy: too many requests are waiting; try again",
            ),
            SubmitError::Stopped => Self::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"),
            SubmitError::Model(e) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// The uploaded file: the multipart field `file` of a multipart body, or the whole body.
async fn uploaded_file(parts: axum::http::request::Parts, body: Bytes) -> std::result::Result<Bytes, ApiError> {
    let is_multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Ok(body);
    }
    let request = Request::from_parts(parts, Body::from(body));
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("the multipart form cannot be read: {}", e.body_text())))?;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => {
                return field.bytes().await.map_err(|e| {
                    ApiError::bad_request(format!("the multipart field `file` cannot be read: {}", e.body_text()))
                });
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(ApiError::bad_request(
                    "the multipart form has no field named `file`: send the image as `file`",
                ));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!("the multipart form cannot be read: {}", e.body_text())));
            }
        }
    }
}

impl ApiError {
    fn from_body(e: BodyError, limit: usize) -> Self {
        match e {
            BodyError::TooLarge { sent } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload is over the limit of {} (at least {sent} bytes sent)", human_bytes(limit as u64)),
            ),
            BodyError::Shed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server needed this upload's memory for others, and it was the upload idle longest; \
                 try again",
            ),
            BodyError::Broken(e) => Self::bad_request(format!("reading the upload failed: {e}")),
        }
    }
}

/// The request's image, read and decoded within the server's bounds (see the module's comment):
/// planar u8 of the model's input.
async fn decoded_upload(state: &AppState, request: Request) -> std::result::Result<Vec<u8>, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = state.max_upload_bytes;
    let body = tokio::time::timeout(state.body_timeout, state.uploads.read(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the upload did not arrive within {} s", state.body_timeout.as_secs_f64()),
            )
        })?
        .map_err(|e| ApiError::from_body(e, limit))?;
    let decoding = Arc::clone(&state.decoders)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))?;
    let file = uploaded_file(parts, body.bytes.clone()).await?;
    let (format, limits) = (state.format, state.limits);
    // The body's charge and the decoder go with the decode, which runs on when its client has gone.
    tokio::task::spawn_blocking(move || {
        let _held = (body, decoding);
        decode_and_resize(&file, &format, &limits)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("decoding failed: {e}")))?
    .map(|image| image.pixels)
    .map_err(ApiError::from)
}

async fn predict(State(state): State<Arc<AppState>>, request: Request) -> std::result::Result<Response, ApiError> {
    let start = Instant::now();
    let pixels = decoded_upload(&state, request).await?;
    let predicted = state.batcher.predict(to_f32_planar(&pixels)).await?;
    let p = predicted.prediction;
    let probabilities: serde_json::Map<String, Value> =
        p.probabilities.iter().map(|(name, v)| (name.clone(), json!(v))).collect();
    Ok(axum::Json(json!({
        "label": p.label,
        "confidence": p.confidence,
        "probabilities": probabilities,
        "model": state.name,
        "elapsed_ms": start.elapsed().as_secs_f64() * 1e3,
        "batch_images": predicted.batch_images,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ExplainQuery {
    class: Option<String>,
    method: Option<String>,
}

async fn explain(
    State(state): State<Arc<AppState>>,
    query: std::result::Result<Query<ExplainQuery>, QueryRejection>,
    request: Request,
) -> std::result::Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let method = query.method.as_deref().map(str::parse::<ExplainMethod>).transpose().map_err(ApiError::bad_request)?;
    let class = match &query.class {
        None => None,
        Some(name) => Some(state.class_names.iter().position(|c| c == name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown class {name:?}: the model's classes are {}",
                state.class_names.join(", ")
            ))
        })?),
    };
    let pixels = decoded_upload(&state, request).await?;
    let explained = state.batcher.explain(to_f32_planar(&pixels), class, method.unwrap_or_default()).await?;
    let format = state.format;
    let png = tokio::task::spawn_blocking(move || overlay_png(&pixels, &format, &explained.heat))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("drawing the heat map failed: {e}")))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = ([(header::CONTENT_TYPE, "image/png")], png).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-explain-class", state.class_names[explained.class].clone()),
        ("x-explain-method", explained.choice.method.name().to_string()),
        ("x-explain-asked", explained.choice.asked.name().to_string()),
        ("x-explain-note", explained.choice.note.clone().unwrap_or_default()),
        ("x-label", explained.prediction.label.clone()),
        ("x-confidence", format!("{:.6}", explained.prediction.confidence)),
    ] {
        if let Ok(value) =
            HeaderValue::from_str(&value).map_err(drop).and_then(|v| if v.is_empty() { Err(()) } else { Ok(v) })
        {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

/// The heat map over the image as the model sees it (grey shown as grey), as PNG bytes.
fn overlay_png(pixels: &[u8], format: &InputFormat, heat: &[f32]) -> Result<Vec<u8>> {
    let overlay = overlay_heatmap(&planar_to_rgb(pixels, format), heat, HEAT_ALPHA)?;
    let mut png = Cursor::new(Vec::new());
    overlay
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding the heat map as PNG: {e}")))?;
    Ok(png.into_inner())
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "model": state.name,
        "uptime_s": state.started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

async fn model(State(state): State<Arc<AppState>>) -> Response {
    axum::Json(state.model_info.clone()).into_response()
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let mut stats = json!(state.batcher.stats());
    stats["uploads"] = json!(state.uploads.stats());
    stats["connections"] = json!(state.connections.stats());
    axum::Json(stats).into_response()
}

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
mod errors;
mod handlers;
mod image_upload;
mod page;
mod state;
mod uploads;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Semaphore, oneshot};

use crate::data::image::DecodeLimits;
use crate::files::human_bytes;
use crate::model::backend::Backend;
use crate::model::explain::ExplainMethod;
use crate::model::test_time::TestTimeAugment;
use crate::workflow::session::ModelSession;
use crate::{Error, Result};
use batcher::BatchOptions;
use connections::{BoundedListener, ConnectionsView};
use handlers::router;
use page::{PAGE, html_escape, page_title};
use state::AppState;
use uploads::BodyBudget;

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
                "normalisation": file.normalisation.to_string(),
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

/// `runs/happy/model.safetensors` is "happy"; `happy.safetensors` is "happy".
fn model_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let parent = path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str());
    match parent {
        Some(folder) if stem == "model" => folder.to_string(),
        _ => stem.to_string(),
    }
}

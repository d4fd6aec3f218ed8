//! What every handler of the web app reads: the model's queue, its input and the server's bounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::batcher::BatcherHandle;
use super::connections::ConnectionsView;
use super::uploads::BodyBudget;
use crate::data::image::{DecodeLimits, InputFormat};

/// What every handler reads.
pub(super) struct AppState {
    pub(super) batcher: BatcherHandle,
    pub(super) format: InputFormat,
    pub(super) class_names: Vec<String>,
    /// The model's name in answers: its run folder's name, or the file's stem.
    pub(super) name: String,
    /// `/model`'s answer.
    pub(super) model_info: Value,
    /// The upload page, titled after the model's classes.
    pub(super) page: String,
    pub(super) max_upload_bytes: usize,
    pub(super) limits: DecodeLimits,
    pub(super) body_timeout: Duration,
    /// The bytes the upload bodies hold.
    pub(super) uploads: Arc<BodyBudget>,
    pub(super) connections: ConnectionsView,
    /// Permits to decode, `decode_threads`; waited for by complete bodies only.
    pub(super) decoders: Arc<Semaphore>,
    pub(super) started: Instant,
}

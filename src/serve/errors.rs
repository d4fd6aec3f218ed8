//! The web app's error answers: a status and `{"error": message}`, from each kind of failure.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::batcher::SubmitError;
use super::uploads::BodyError;
use crate::data::image::DecodeError;
use crate::files::human_bytes;

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
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

impl ApiError {
    pub(super) fn from_body(e: BodyError, limit: usize) -> Self {
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

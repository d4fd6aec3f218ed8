//! The image a request uploads: its body read within the upload limits, its `file` field taken
//! from a multipart form, and decoded within the decode limits.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};

use super::errors::ApiError;
use super::state::AppState;
use crate::data::image::decode_and_resize;

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

/// The request's image, read and decoded within the server's bounds (see the `serve` module's comment):
/// planar u8 of the model's input.
pub(super) async fn decoded_upload(state: &AppState, request: Request) -> std::result::Result<Vec<u8>, ApiError> {
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

//! The web app's routes and their handlers: predict, explain, health, the model and the stats.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::errors::ApiError;
use super::image_upload::decoded_upload;
use super::state::AppState;
use crate::data::image::{InputFormat, planar_to_rgb, to_f32_planar};
use crate::model::explain::{ExplainMethod, HEAT_ALPHA, overlay_heatmap};
use crate::{Error, Result};

pub(super) fn router(state: Arc<AppState>) -> Router {
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

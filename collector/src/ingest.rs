//! `POST /v1/events`: takes a v1 batch in (gzip or not) and answers only once it is
//! stored, or says exactly why not.
//!
//! Owns the status codes: 200 stored (or already stored), 400 malformed, 401 wrong key,
//! 413 too large (the sender splits), 415 unknown encoding, 429 busy (with `Retry-After`),
//! 503 storage failing. Never stores part of a batch and never reads past the body limit.

use std::io::Read;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use crate::auth::{Secret, bearer_matches};
use crate::wire::{Refusal, read_batch};
use crate::writer::{WriteError, Writer};

/// What the ingest endpoint needs.
pub(crate) struct Ingest {
    pub(crate) writer: Writer,
    pub(crate) api_key: Option<Secret>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_batch_events: usize,
}

fn refuse(status: StatusCode, reason: impl std::fmt::Display) -> Response {
    tracing::debug!(%status, %reason, "batch refused");
    (status, axum::Json(json!({ "error": reason.to_string() }))).into_response()
}

fn retry_after(mut response: Response, seconds: u32) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The handler.
pub(crate) async fn ingest(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(key) = &ingest.api_key
        && !bearer_matches(&parts.headers, key)
    {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key (Authorization: Bearer <key>)",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let limit = ingest.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large(limit);
    }
    let gzip = match parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {other:?}: send gzip or nothing"),
            );
        }
    };
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return too_large(limit),
        Err(error) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {error}"),
            );
        }
    };
    let max_events = ingest.max_batch_events;
    let parsed = tokio::task::spawn_blocking(move || {
        let decoded;
        let json: &[u8] = if gzip {
            match gunzip(&body, limit) {
                Ok(bytes) => {
                    decoded = bytes;
                    &decoded
                }
                Err(refusal) => return Err(refusal),
            }
        } else {
            &body
        };
        read_batch(json, max_events).map_err(|refusal| match refusal {
            Refusal::TooManyEvents { .. } => (StatusCode::PAYLOAD_TOO_LARGE, refusal.to_string()),
            _ => (StatusCode::BAD_REQUEST, refusal.to_string()),
        })
    })
    .await;
    let batch = match parsed {
        Ok(Ok(batch)) => batch,
        Ok(Err((status, reason))) => return refuse(status, reason),
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "the batch could not be read"),
    };
    let batch_id = batch.batch_id.clone();
    match ingest.writer.store(batch).await {
        Ok(committed) => (
            StatusCode::OK,
            axum::Json(json!({
                "batch_id": batch_id,
                "stored": committed.stored,
                "duplicates": committed.duplicates,
                "replayed": committed.replayed,
            })),
        )
            .into_response(),
        Err(WriteError::Busy) => retry_after(
            refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "the collector is busy: retry shortly",
            ),
            1,
        ),
        Err(WriteError::Store(error)) => {
            retry_after(refuse(StatusCode::SERVICE_UNAVAILABLE, error), 5)
        }
    }
}

fn too_large(limit: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the batch is over {limit} bytes: split it"),
    )
}

/// Decompresses a gzip body, refusing one that decodes past `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut decoded = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    reader.read_to_end(&mut decoded).map_err(|error| {
        (
            StatusCode::BAD_REQUEST,
            format!("invalid gzip body: {error}"),
        )
    })?;
    if decoded.len() > limit {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the batch decompresses to over {limit} bytes: split it"),
        ));
    }
    Ok(decoded)
}

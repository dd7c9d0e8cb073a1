//! The dashboard's page and assets (embedded in the binary: no internet needed), and the
//! headers and password check that guard it and the JSON API.
//!
//! Owns the browser-facing policy: a strict Content-Security-Policy (scripts only from
//! this origin, no inline script or style), no sniffing, no referrer, no caching of data.
//! Never renders data into HTML: the page fetches `/api/` and writes text nodes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::auth::{Secret, dashboard_allows};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Where the page may load from and what it may do.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// Checks the dashboard password (when one is set) and adds the browser-facing headers.
pub(crate) async fn guard(
    State(password): State<Option<Arc<Secret>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(password) = &password
        && !dashboard_allows(request.headers(), password)
    {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "error": "this dashboard needs a password" })),
        )
            .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"MCP Analytics\", charset=\"UTF-8\""),
        );
        return secure(response);
    }
    secure(next.run(request).await)
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

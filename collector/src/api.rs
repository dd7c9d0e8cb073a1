//! The JSON API under `/api/`: one endpoint behind every dashboard view, so anything on
//! the page can be scripted (`curl .../api/tools?range=7d`).
//!
//! Owns reading query parameters (range, filters, cursor) and the answers' shape. Never
//! computes a number itself ([`crate::report`] does) and never writes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::report;
use crate::store::{EventRow, Filter, Store, StoreError};

/// Sessions listed at most.
const SESSIONS_LISTED: usize = 500;
/// Names per filter menu at most.
const FACETS: usize = 200;
/// Live tail rows per answer at most.
const TAIL_MAX: usize = 500;
/// Advertised tool names read for the tools page's insights at most.
const ADVERTISED: usize = 5_000;
/// Aggregate views computed at once; more wait their turn, so memory stays bounded.
static VIEWS_AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// What the API's handlers share: the store, and how many events one aggregate view may
/// read (about 200 bytes each while it is built).
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) max_view_events: usize,
}

impl axum::extract::FromRef<Api> for Arc<dyn Store> {
    fn from_ref(api: &Api) -> Self {
        Arc::clone(&api.store)
    }
}

/// The query parameters every view takes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    range: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    tool: Option<String>,
    client: Option<String>,
    user: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// An API failure, as `{"error": ...}` with a status.
pub(crate) struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "a dashboard query failed");
        Self(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}

type Answer = Result<Json<Value>, Failure>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|value| !value.is_empty())
}

/// The filter a request asks for: `from`/`to` (ms) win over `range` (`1h`, `24h`, `7d`,
/// `30d`, `all`; default `24h`).
fn filter(store: &dyn Store, params: &Params) -> Result<Filter, Failure> {
    // A minute ahead, so events stamped by a slightly fast clock still show.
    let now = now_ms() + 60_000;
    let hour = 3_600_000;
    let (mut from, mut to) = match params.range.as_deref().unwrap_or("24h") {
        "1h" => (now - hour, now),
        "24h" | "" => (now - 24 * hour, now),
        "7d" => (now - 7 * 24 * hour, now),
        "30d" => (now - 30 * 24 * hour, now),
        "all" => match store.span()? {
            Some((first, last)) => (first, last + 1),
            None => (now - 24 * hour, now),
        },
        other => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("unknown range {other:?}: use 1h, 24h, 7d, 30d, all, or from/to"),
            ));
        }
    };
    if let Some(explicit) = params.from {
        from = explicit;
    }
    if let Some(explicit) = params.to {
        to = explicit;
    }
    if from >= to {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "`from` must be before `to`".into(),
        ));
    }
    Ok(Filter {
        from,
        to,
        tool: non_empty(&params.tool),
        client: non_empty(&params.client),
        user: non_empty(&params.user),
    })
}

/// Runs a blocking query off the async threads.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    query: impl FnOnce(&dyn Store) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || query(store.as_ref()))
        .await
        .map_err(|_| Failure(StatusCode::INTERNAL_SERVER_ERROR, "the query failed".into()))?
}

/// Runs an aggregate view's query: one of [`VIEWS_AT_ONCE`], its range's events read at
/// most `max_view_events`.
async fn view<T: Send + 'static>(
    api: &Api,
    params: Params,
    page: impl FnOnce(Filter, Vec<EventRow>) -> Result<T, Failure> + Send + 'static,
    narrow: impl FnOnce(&mut Filter) + Send + 'static,
) -> Result<T, Failure> {
    let _turn = VIEWS_AT_ONCE
        .acquire()
        .await
        .map_err(|_| Failure(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let max = api.max_view_events;
    blocking(&api.store, move |store| {
        let mut filter = filter(store, &params)?;
        narrow(&mut filter);
        let rows = store.scan(&filter, max.saturating_add(1))?;
        if rows.len() > max {
            return Err(Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "this range holds more than {max} events, more than a view reads: \
                     narrow the range or filter by tool, client or user"
                ),
            ));
        }
        page(filter, rows)
    })
    .await
}

fn to_json(value: impl serde::Serialize) -> Answer {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|error| Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}

fn not_found(what: &str) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!("no {what} with that name in this range"),
    )
}

pub(crate) async fn facets(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Params>,
) -> Answer {
    let facets = blocking(&store, move |store| {
        let filter = filter(store, &params)?;
        Ok(store.facets(&filter, FACETS)?)
    })
    .await?;
    to_json(facets)
}

pub(crate) async fn overview(State(api): State<Api>, Query(params): Query<Params>) -> Answer {
    let page = view(
        &api,
        params,
        |filter, rows| Ok(report::overview(&rows, filter.from, filter.to)),
        |_| {},
    )
    .await?;
    to_json(page)
}

/// The tools page: a row per tool called, and the insights of the same range and filters.
pub(crate) async fn tools(State(api): State<Api>, Query(params): Query<Params>) -> Answer {
    let store = Arc::clone(&api.store);
    let (tools, insights) = view(
        &api,
        params,
        move |filter, rows| {
            let advertised = store.advertised(&filter, ADVERTISED)?;
            let asks = store.asks(&filter, report::ASKS)?;
            Ok((
                report::tools(&rows),
                report::insights(&rows, advertised, asks),
            ))
        },
        |_| {},
    )
    .await?;
    to_json(json!({ "tools": tools, "insights": insights }))
}

pub(crate) async fn tool(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
) -> Answer {
    let narrowed = name.clone();
    let page = view(
        &api,
        params,
        move |filter, rows| {
            report::tool_detail(&rows, &name, filter.from, filter.to)
                .ok_or_else(|| not_found("tool"))
        },
        move |filter| filter.tool = Some(narrowed),
    )
    .await?;
    to_json(page)
}

pub(crate) async fn clients(State(api): State<Api>, Query(params): Query<Params>) -> Answer {
    let page = view(
        &api,
        params,
        |filter, rows| Ok(report::clients(&rows, filter.from, filter.to)),
        |_| {},
    )
    .await?;
    to_json(page)
}

pub(crate) async fn users(State(api): State<Api>, Query(params): Query<Params>) -> Answer {
    let page = view(&api, params, |_, rows| Ok(report::users(&rows)), |_| {}).await?;
    to_json(page)
}

pub(crate) async fn sessions(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Params>,
) -> Answer {
    let sessions = blocking(&store, move |store| {
        let filter = filter(store, &params)?;
        Ok(store.sessions(&filter, SESSIONS_LISTED)?)
    })
    .await?;
    to_json(json!({ "sessions": sessions }))
}

pub(crate) async fn session(State(store): State<Arc<dyn Store>>, Path(id): Path<String>) -> Answer {
    let page = blocking(&store, move |store| {
        report::session_detail(store.session(&id)?)
            .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no session with that id".into()))
    })
    .await?;
    to_json(page)
}

pub(crate) async fn event(State(store): State<Arc<dyn Store>>, Path(id): Path<String>) -> Answer {
    let (summary, json) = blocking(&store, move |store| {
        store
            .event(&id)?
            .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no event with that id".into()))
    })
    .await?;
    let event: Value = serde_json::from_str(&json)
        .map_err(|error| Failure(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    to_json(json!({ "summary": summary, "event": event }))
}

pub(crate) async fn tail(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Params>,
) -> Answer {
    let after = params.after;
    let limit = params.limit.unwrap_or(50).clamp(1, TAIL_MAX);
    let events = blocking(&store, move |store| {
        let filter = Filter {
            tool: non_empty(&params.tool),
            client: non_empty(&params.client),
            user: non_empty(&params.user),
            ..Filter::default()
        };
        Ok(store.tail(after, limit, &filter)?)
    })
    .await?;
    let cursor = events.last().map(|row| row.seq).or(after).unwrap_or(0);
    to_json(json!({ "events": events, "cursor": cursor }))
}

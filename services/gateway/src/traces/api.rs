//! `GET /traces`, `GET /traces/{trace_id}` and the page at `/waterfall`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use souk_chassis::{FieldError, Json, Path, Problem, Query};

use super::store::{Filter, Occupancy, Span, TraceId, TraceStore, TraceSummary};

/// The most traces one list returns.
const MAX_LIMIT: usize = 1_000;

/// The read routes; with no store (no `[traces]` section) each says traces are not collected.
pub fn router(store: Option<Arc<TraceStore>>) -> Router {
    Router::new()
        .route("/traces", get(list))
        .route("/traces/{trace_id}", get(one))
        .route("/waterfall", get(page))
        .with_state(store)
}

/// The query of a list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only traces with a span of this service.
    service: Option<String>,
    /// Only traces whose route contains this.
    route: Option<String>,
    /// Only traces at least this long (an empty field, as a form sends it, is none).
    #[serde(default, deserialize_with = "empty_as_none")]
    min_ms: Option<f64>,
    /// `error`: only failed traces.
    status: Option<String>,
    /// At most this many (default 50, at most 1000).
    #[serde(default, deserialize_with = "empty_as_none")]
    limit: Option<usize>,
    /// The page only: the trace to draw.
    trace: Option<String>,
}

/// A number, or none for an absent or empty field.
fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

impl ListQuery {
    fn filter(&self) -> Result<Filter, Problem> {
        let mut errors = Vec::new();
        if self.min_ms.is_some_and(|ms| !(ms.is_finite() && ms >= 0.0)) {
            errors.push(FieldError::new(
                "min_ms",
                "must be a number of milliseconds, 0 or more",
            ));
        }
        let errors_only = match self.status.as_deref() {
            None | Some("" | "any") => false,
            Some("error") => true,
            Some(_) => {
                errors.push(FieldError::new("status", "must be `error` or `any`"));
                false
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new("limit", "must be between 1 and 1000"));
        }
        if !errors.is_empty() {
            return Err(Problem::invalid_query(errors));
        }
        let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        Ok(Filter {
            service: nonempty(&self.service),
            route: nonempty(&self.route),
            min_ms: self.min_ms.filter(|ms| *ms > 0.0),
            errors_only,
            limit,
        })
    }
}

/// A list of traces.
#[derive(Debug, Serialize)]
pub struct TraceList {
    /// The traces, newest first.
    pub traces: Vec<TraceSummary>,
    /// What the store holds.
    pub store: Occupancy,
}

/// One trace.
#[derive(Debug, Serialize)]
pub struct TraceView {
    /// Its id.
    pub trace_id: TraceId,
    /// Its spans, by start time.
    pub spans: Vec<Arc<Span>>,
}

fn not_collected() -> Problem {
    Problem::typed(
        StatusCode::NOT_FOUND,
        "traces-off",
        "Traces are not collected",
    )
    .with_detail("this gateway has no [traces] section: it receives no spans")
}

fn trace_id(text: &str) -> Result<TraceId, Problem> {
    TraceId::parse(text).ok_or_else(|| {
        Problem::typed(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            "Invalid path parameter",
        )
        .with_errors(vec![FieldError::new(
            "trace_id",
            "must be 32 hex digits, not all zero",
        )])
    })
}

async fn list(
    State(store): State<Option<Arc<TraceStore>>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<TraceList>, Problem> {
    let store = store.ok_or_else(not_collected)?;
    let filter = query.filter()?;
    Ok(Json(TraceList {
        traces: store.list(&filter),
        store: store.occupancy(),
    }))
}

async fn one(
    State(store): State<Option<Arc<TraceStore>>>,
    Path(id): Path<String>,
) -> Result<Json<TraceView>, Problem> {
    let store = store.ok_or_else(not_collected)?;
    let trace_id = trace_id(&id)?;
    let spans = store.trace(trace_id);
    if spans.is_empty() {
        return Err(
            Problem::typed(StatusCode::NOT_FOUND, "trace-not-found", "No such trace")
                .with_detail("no span of this trace is held: it was never received, or is too old"),
        );
    }
    Ok(Json(TraceView { trace_id, spans }))
}

async fn page(
    State(store): State<Option<Arc<TraceStore>>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let html = match (&store, query.filter()) {
        (None, _) => super::page::unavailable(),
        (Some(_), Err(problem)) => return problem.into_response(),
        (Some(store), Ok(filter)) => {
            let trace = match query.trace.as_deref().filter(|t| !t.is_empty()) {
                None => None,
                Some(text) => match trace_id(text) {
                    Ok(id) => Some(TraceView {
                        trace_id: id,
                        spans: store.trace(id),
                    }),
                    Err(problem) => return problem.into_response(),
                },
            };
            let list = TraceList {
                traces: store.list(&filter),
                store: store.occupancy(),
            };
            super::page::render(&super::page::PageInput {
                query: super::page::Echo {
                    service: filter.service.as_deref(),
                    route: filter.route.as_deref(),
                    min_ms: filter.min_ms,
                    errors_only: filter.errors_only,
                    limit: filter.limit,
                },
                list: &list,
                trace: trace.as_ref(),
            })
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

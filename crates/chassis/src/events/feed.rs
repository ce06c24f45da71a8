//! The embedded transport: a producer serves its outbox as an ordered, long-polled feed.
//!
//! `GET /v1/events?after=<seq>&limit=<1..=500>&wait_ms=<0..=30000>` answers
//! `{"events": [{"seq": n, "event": {…}}], "next": n, "epoch": "…", "head": n,
//! "purged_through": n}`: the outbox's epoch (made with its table: a recreated store serves
//! another), the last sequence number written and the last one retention deleted. A reader whose `after` lies before what retention kept gets 410 Gone
//! (`events-gone`, with `oldest_kept` and `epoch`), never a page that silently skips. It is
//! internal: the gateway routes no public path to it, and with [`Outbox::feed_router_with_auth`]
//! it also wants a service token.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::event::Event;
use super::outbox::Outbox;
use crate::auth::AuthVerifier;
use crate::extract::{Json, Query};
use crate::problem::{FieldError, Problem};

/// Largest page of events.
pub(crate) const MAX_LIMIT: u32 = 500;
/// Page size when the reader names none.
const DEFAULT_LIMIT: u32 = 100;
/// Longest long-poll.
pub(crate) const MAX_WAIT_MS: u64 = 30_000;

/// One page of the feed, as sent and as read by feed consumers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FeedPage {
    pub(crate) events: Vec<FeedItem>,
    /// The last `seq` in `events`, or the `after` asked for when there are none.
    pub(crate) next: i64,
    /// The outbox's epoch (empty from a producer that predates epochs).
    #[serde(default)]
    pub(crate) epoch: String,
    /// The last sequence number the outbox wrote (`None` from a producer that predates it).
    #[serde(default)]
    pub(crate) head: Option<i64>,
    /// The last sequence number retention deleted (0: none).
    #[serde(default)]
    pub(crate) purged_through: i64,
}

/// A 410's members beyond the problem's: what a reader behind retention needs to decide.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Gone {
    /// The first sequence number still kept.
    pub(crate) oldest_kept: i64,
    /// The outbox's epoch.
    pub(crate) epoch: String,
}

/// An event and its position.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FeedItem {
    pub(crate) seq: i64,
    pub(crate) event: Event,
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    after: Option<i64>,
    limit: Option<u32>,
    wait_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct FeedState {
    outbox: Outbox,
    verifier: Option<AuthVerifier>,
}

impl Outbox {
    /// `GET /v1/events` with no authentication, for a feed only reachable on loopback or a
    /// private network. Merge it into the service's router.
    pub fn feed_router(&self) -> Router {
        feed_router(self.clone(), None)
    }

    /// `GET /v1/events` for callers with a service token for this service (its
    /// `service_audience`), full or narrowed to `events:read`; anything else is a 401 (or a 403
    /// for a user's token).
    pub fn feed_router_with_auth(&self, verifier: AuthVerifier) -> Router {
        feed_router(self.clone(), Some(verifier))
    }
}

fn feed_router(outbox: Outbox, verifier: Option<AuthVerifier>) -> Router {
    Router::new()
        .route("/v1/events", get(events_get))
        .with_state(FeedState { outbox, verifier })
}

async fn events_get(
    State(state): State<FeedState>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Result<Response, Problem> {
    if let Some(verifier) = &state.verifier {
        let token = crate::auth::bearer(&headers).ok_or_else(|| {
            crate::auth::unauthorized(None, "the event feed needs a service token")
        })?;
        verifier.verify_feed_reader(token).await?;
    }
    let (after, limit, wait) = validate(&query)?;
    let unreadable = |err: sqlx::Error| {
        if crate::db::is_unavailable(&err) {
            Problem::unavailable("the outbox cannot be read right now")
        } else {
            Problem::internal(&err)
        }
    };
    let outbox_state = state.outbox.state().await.map_err(unreadable)?;
    if after < outbox_state.purged_through {
        return Ok(gone(after, &outbox_state));
    }
    let events = state
        .outbox
        .read_after_waiting(after, limit, wait)
        .await
        .map_err(unreadable)?;
    let last = events.last().and_then(|e| e.seq);
    let next = last.unwrap_or(after);
    // Read before the long-poll: whatever arrived meanwhile is in `events`.
    let head = last.unwrap_or_default().max(outbox_state.head);
    let events = events
        .into_iter()
        .map(|event| FeedItem {
            seq: event.seq.unwrap_or_default(),
            event,
        })
        .collect();
    Ok(Json(FeedPage {
        events,
        next,
        epoch: outbox_state.epoch,
        head: Some(head),
        purged_through: outbox_state.purged_through,
    })
    .into_response())
}

/// 410 Gone: the events after `after` up to the watermark were deleted by retention.
fn gone(after: i64, outbox: &super::outbox::OutboxState) -> Response {
    metrics::counter!("events_feed_gone_total").increment(1);
    let problem = Problem::typed(
        http::StatusCode::GONE,
        "events-gone",
        "Events no longer kept",
    )
    .with_detail(format!(
        "events {} to {} were deleted by retention; the oldest kept is {}",
        after + 1,
        outbox.purged_through,
        outbox.purged_through + 1
    ));
    let mut body = serde_json::to_value(&problem).unwrap_or_default();
    if let (Some(body), Ok(serde_json::Value::Object(more))) = (
        body.as_object_mut(),
        serde_json::to_value(Gone {
            oldest_kept: outbox.purged_through + 1,
            epoch: outbox.epoch.clone(),
        }),
    ) {
        body.extend(more);
    }
    let mut response = problem.into_response();
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    *response.body_mut() = axum::body::Body::from(body.to_string());
    response
}

fn validate(query: &FeedQuery) -> Result<(i64, u32, Duration), Problem> {
    let mut errors = Vec::new();
    let after = query.after.unwrap_or(0);
    if after < 0 {
        errors.push(FieldError::new("after", "must be 0 or more"));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let wait_ms = query.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        errors.push(FieldError::new(
            "wait_ms",
            format!("must be between 0 and {MAX_WAIT_MS}"),
        ));
    }
    if errors.is_empty() {
        Ok((after, limit, Duration::from_millis(wait_ms)))
    } else {
        Err(Problem::invalid_query(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(after: Option<i64>, limit: Option<u32>, wait_ms: Option<u64>) -> FeedQuery {
        FeedQuery {
            after,
            limit,
            wait_ms,
        }
    }

    #[test]
    fn parameters_have_defaults_and_bounds() {
        assert_eq!(
            validate(&query(None, None, None)).unwrap(),
            (0, 100, Duration::ZERO)
        );
        assert_eq!(
            validate(&query(Some(7), Some(500), Some(30_000))).unwrap(),
            (7, 500, Duration::from_secs(30))
        );
        let problem = validate(&query(Some(-1), Some(0), Some(30_001))).unwrap_err();
        assert_eq!(problem.status, 400);
        let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["after", "limit", "wait_ms"]);
        assert!(validate(&query(None, Some(501), None)).is_err());
    }
}

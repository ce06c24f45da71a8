//! The embedded transport: a producer serves its outbox as an ordered, long-polled feed.
//!
//! `GET /v1/events?after=<seq>&limit=<1..=500>&wait_ms=<0..=30000>` answers
//! `{"events": [{"seq": n, "event": {…}}], "next": n}`. It is internal: the gateway routes no
//! public path to it, and with [`Outbox::feed_router_with_auth`] it also wants a service token.

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
        let token = bearer(&headers).ok_or_else(|| {
            crate::auth::unauthorized(None, "the event feed needs a service token")
        })?;
        verifier.verify_feed_reader(token).await?;
    }
    let (after, limit, wait) = validate(&query)?;
    let events = state
        .outbox
        .read_after_waiting(after, limit, wait)
        .await
        .map_err(|err| {
            if crate::db::is_unavailable(&err) {
                Problem::unavailable("the outbox cannot be read right now")
            } else {
                Problem::internal(&err)
            }
        })?;
    let next = events.last().and_then(|e| e.seq).unwrap_or(after);
    let events = events
        .into_iter()
        .map(|event| FeedItem {
            seq: event.seq.unwrap_or_default(),
            event,
        })
        .collect();
    Ok(Json(FeedPage { events, next }).into_response())
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

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim())
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

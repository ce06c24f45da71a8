//! `Idempotency-Key` on `POST /v1/orders`, with Stripe's semantics: a key is the user's; a
//! repeat with the same key and body gets the first answer again (status, body, `Location`, and
//! `Idempotent-Replayed: true`), final client errors included; the same key with another body is
//! a 422 `idempotency-key-reused`; a repeat while the first is still running is a 409
//! `request-in-progress` with `Retry-After` (it never runs twice). Invalid bodies are refused
//! before the key is looked at, and a 5xx (a neighbour or the database down) is not kept: the key
//! is given up, so the same request can be sent again and run.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderName, HeaderValue, StatusCode, header};
use souk_chassis::{FieldError, Problem};

use super::retry_soon;
use crate::domain::IdempotencyKey;
use crate::store::{KeyDone, Store, StoredAnswer};

/// The header clients name their attempt with.
pub(super) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header marking a replayed answer.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's `Idempotency-Key`, if it sent one (one at most, valid).
#[derive(Debug)]
pub(super) struct KeyHeader(pub(super) Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for KeyHeader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let invalid = |message: String| {
            Problem::typed(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
            )
            .with_errors(vec![FieldError::new("Idempotency-Key", message)])
        };
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(invalid("send it once".into()));
        }
        IdempotencyKey::parse(value.as_bytes())
            .map(|key| Self(Some(key)))
            .map_err(invalid)
    }
}

/// A key this attempt holds. Dropped without being settled (the handler was cancelled, say by
/// the request timeout), it is given up in the background, so a retry is not blocked until its
/// lock lapses.
#[derive(Debug)]
pub(super) struct KeyHold {
    store: Store,
    user_id: String,
    key: String,
    owner: String,
    armed: bool,
}

impl KeyHold {
    /// `owner`'s hold on `key` of `user_id`.
    pub(super) fn new(store: Store, user_id: &str, key: &IdempotencyKey, owner: String) -> Self {
        Self {
            store,
            user_id: user_id.to_owned(),
            key: key.as_str().to_owned(),
            owner,
            armed: true,
        }
    }

    /// The key answered with `answer`, to store.
    pub(super) fn done(&self, answer: StoredAnswer) -> KeyDone {
        KeyDone {
            user_id: self.user_id.clone(),
            key: self.key.clone(),
            owner: self.owner.clone(),
            answer,
        }
    }

    /// The key has its answer (stored with the order, or by [`Store::finish_key`]).
    pub(super) fn settle(mut self) {
        self.armed = false;
    }

    /// Gives the key up now, without an answer.
    pub(super) async fn release(mut self) {
        self.armed = false;
        if let Err(err) = self
            .store
            .release_key(&self.user_id, &self.key, &self.owner)
            .await
        {
            tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot give up an idempotency key; it frees itself when its lock lapses");
        }
    }
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, user_id, key, owner) = (
            self.store.clone(),
            std::mem::take(&mut self.user_id),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        runtime.spawn(async move {
            if let Err(err) = store.release_key(&user_id, &key, &owner).await {
                tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot give up an abandoned idempotency key; it frees itself when its lock lapses");
            }
        });
    }
}

/// The response for a kept answer (`replayed` when sent again for a repeat).
pub(super) fn respond(answer: &StoredAnswer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        souk_chassis::problem::CONTENT_TYPE
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, content_type)],
        answer.body.clone(),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(location) = answer
        .location
        .as_deref()
        .and_then(|l| HeaderValue::try_from(l).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// 422: the key was used for another request.
pub(super) fn key_reused() -> Problem {
    Problem::typed(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "Idempotency-Key reused",
    )
    .with_detail(
        "this Idempotency-Key was used for a different request; use a new key for a new request",
    )
}

/// 409: the first request with this key is still running.
pub(super) fn in_progress() -> Problem {
    retry_soon(
        Problem::typed(
            StatusCode::CONFLICT,
            "request-in-progress",
            "Request in progress",
        )
        .with_detail("a request with this Idempotency-Key is still running; send it again shortly to get its answer"),
    )
}

//! Dead letters: events a consumer parked (poison, or out of retries), for an operator to read
//! and replay — from code, or through the admin routes a service can mount.
//!
//! `GET /v1/admin/dead-letters?consumer=&limit=&cursor=` lists them (`{items, next_cursor}`);
//! `POST /v1/admin/dead-letters/{id}/replay` (202) asks the consumer to hand the event to its
//! handler again on its next turn (within a few seconds). Both want an administrator's token.
//! They are internal, like the feed: every consuming service has the same paths, so the gateway
//! routes none of them; an operator calls the service's own address.
//! A replayed event that is handled leaves the list; one that fails again is parked anew.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::event::{Event, now_ms, rfc3339};
use crate::auth::AuthVerifier;
use crate::db::{Database, trusted_sql};
use crate::extract::{Json, Path, Query};
use crate::on_pool;
use crate::problem::Problem;

/// An event a consumer gave up on.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The dead letter's own id (UUIDv7), which replay takes.
    pub id: String,
    /// The consumer that parked it.
    pub consumer: String,
    /// The event.
    pub event: Event,
    /// The handler's last error.
    pub error: String,
    /// How many times the handler was called on it in all.
    pub attempts: i64,
    /// When it was last parked (Unix milliseconds).
    pub parked_ms: i64,
    /// When a replay was asked for, while it waits for the consumer to try again.
    pub replayed_ms: Option<i64>,
}

/// The dead letters of `consumer`, oldest first (at most 1000).
pub async fn dead_letters(db: &Database, consumer: &str) -> Result<Vec<DeadLetter>, sqlx::Error> {
    select(
        db,
        "WHERE consumer = $1 ORDER BY id LIMIT 1000",
        &[consumer],
    )
    .await
}

/// Asks the dead letter's consumer to hand it to its handler again on its next turn; `false`
/// when there is no such dead letter.
pub async fn replay_dead_letter(db: &Database, id: &str) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE event_dead_letters SET replayed_ms = $1 WHERE id = $2";
    let _turn = db.write_turn().await?;
    let done = on_pool!(db, |pool| sqlx::query(sql)
        .bind(now_ms())
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
    Ok(done == 1)
}

/// `GET /v1/admin/dead-letters` and `POST /v1/admin/dead-letters/{id}/replay` on `db`, for
/// administrators verified by `verifier` (a user token with role `admin`).
pub fn dead_letters_router(db: Database, verifier: AuthVerifier) -> Router {
    Router::new()
        .route("/v1/admin/dead-letters", get(dead_letters_list))
        .route(
            "/v1/admin/dead-letters/{id}/replay",
            post(dead_letters_replay),
        )
        .with_state(AdminState { db, verifier })
}

/// Rows chosen by `filter` (a `WHERE … ORDER BY … LIMIT …` tail whose `$1`, `$2`… are `binds`).
pub(super) async fn select(
    db: &Database,
    filter: &str,
    binds: &[&str],
) -> Result<Vec<DeadLetter>, sqlx::Error> {
    type Row = (String, String, String, String, i64, i64, Option<i64>);
    let sql = format!(
        "SELECT id, consumer, event, error, attempts, parked_ms, replayed_ms \
         FROM event_dead_letters {filter}"
    );
    let rows: Vec<Row> = on_pool!(db, |pool| {
        let mut query = sqlx::query_as(trusted_sql(sql.clone()));
        for bind in binds {
            query = query.bind(*bind);
        }
        query.fetch_all(pool).await?
    });
    rows.into_iter()
        .map(
            |(id, consumer, event, error, attempts, parked_ms, replayed_ms)| {
                let event =
                    Event::from_json(&event, None).map_err(|e| sqlx::Error::ColumnDecode {
                        index: "event".into(),
                        source: Box::new(e),
                    })?;
                Ok(DeadLetter {
                    id,
                    consumer,
                    event,
                    error,
                    attempts,
                    parked_ms,
                    replayed_ms,
                })
            },
        )
        .collect()
}

#[derive(Debug, Clone)]
struct AdminState {
    db: Database,
    verifier: AuthVerifier,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    consumer: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct DeadLetterView {
    id: String,
    consumer: String,
    event: Event,
    error: String,
    attempts: i64,
    parked_at: String,
    replay_requested_at: Option<String>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(letter: DeadLetter) -> Self {
        Self {
            id: letter.id,
            consumer: letter.consumer,
            event: letter.event,
            error: letter.error,
            attempts: letter.attempts,
            parked_at: rfc3339(letter.parked_ms),
            replay_requested_at: letter.replayed_ms.map(rfc3339),
        }
    }
}

async fn dead_letters_list(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    require_admin(&state.verifier, &headers).await?;
    let limit = crate::pagination::limit(query.limit)?;
    let after: String = match &query.cursor {
        Some(cursor) => crate::pagination::decode_cursor(cursor)?,
        None => String::new(),
    };
    let consumer = query.consumer.as_deref().unwrap_or_default();
    // The limit is a number checked above, so it may be written into the SQL.
    let filter = format!(
        "WHERE ($1 = '' OR consumer = $1) AND id > $2 ORDER BY id LIMIT {}",
        limit + 1
    );
    let mut letters = select(&state.db, &filter, &[consumer, &after])
        .await
        .map_err(|err| db_problem(&err))?;
    let more = letters.len() > limit as usize;
    letters.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            letters
                .last()
                .map(|l| crate::pagination::encode_cursor(&l.id))
        })
        .flatten();
    let items: Vec<DeadLetterView> = letters.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "items": items, "next_cursor": next_cursor })).into_response())
}

async fn dead_letters_replay(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    require_admin(&state.verifier, &headers).await?;
    let found = replay_dead_letter(&state.db, &id)
        .await
        .map_err(|err| db_problem(&err))?;
    if !found {
        return Err(Problem::not_found("no dead letter with this id"));
    }
    let body = serde_json::json!({ "id": id, "status": "replay_requested" });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn require_admin(verifier: &AuthVerifier, headers: &HeaderMap) -> Result<(), Problem> {
    let token = crate::auth::access_token(headers)?;
    verifier.verify(token).await?.require_admin().map(drop)
}

fn db_problem(err: &sqlx::Error) -> Problem {
    if crate::db::is_unavailable(err) {
        Problem::unavailable("the database cannot be reached right now")
    } else {
        Problem::internal(err)
    }
}

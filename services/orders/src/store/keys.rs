//! Idempotency keys, per user (Stripe's semantics). The key's row is inserted before the request
//! runs — the primary key lets exactly one attempt in — and is then either answered (`done`,
//! replayed to every repeat) or deleted (the attempt failed in a way worth retrying). An attempt
//! that died holding a key stops blocking it at `locked_until`, when another may take it over;
//! since an order's key is answered in the order's own transaction, a dead attempt never left an
//! order behind, and taking over cannot place a second one.

use souk_chassis::db::inline::execute_numbered;
use souk_chassis::on_pool;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::Timestamp;

/// What a request found when it claimed its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyClaim {
    /// This attempt holds the key (`owner`): run the request, then answer or release it.
    Run {
        /// This attempt's id, named by every later change of the key.
        owner: String,
    },
    /// The key was answered before: send that answer again.
    Replay(StoredAnswer),
    /// Another attempt holds the key right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// An answer kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// Its status.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
    /// Its `Location`, if it had one.
    pub location: Option<String>,
}

/// A key to mark answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDone {
    /// The user it belongs to.
    pub user_id: String,
    /// The key.
    pub key: String,
    /// The attempt holding it.
    pub owner: String,
    /// The answer.
    pub answer: StoredAnswer,
}

/// Marks a key answered, if `owner` still holds it. The same statement runs alone or inside the
/// transaction that places the order.
pub(super) const FINISH: &str = "UPDATE idempotency_keys SET state = 'done', status = $1, body = $2, \
    location = $3 WHERE user_id = $4 AND idem_key = $5 AND owner = $6 AND state = 'in_progress'";

/// `FINISH`, bound for `key` (a [`KeyDone`]).
macro_rules! finish_query {
    ($key:expr) => {
        sqlx::query($crate::store::keys::FINISH)
            .bind(i64::from($key.answer.status))
            .bind(&$key.answer.body)
            .bind(&$key.answer.location)
            .bind(&$key.user_id)
            .bind(&$key.key)
            .bind(&$key.owner)
    };
}
pub(super) use finish_query;

/// `FINISH`'s values for `key`, for the SQLite writer.
pub(super) fn finish_params(key: &KeyDone) -> [&dyn rusqlite::ToSql; 6] {
    [
        &key.answer.status,
        &key.answer.body,
        &key.answer.location,
        &key.user_id,
        &key.key,
        &key.owner,
    ]
}

type KeyRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl Store {
    /// Claims `key` of `user_id` for a request whose fingerprint is `fingerprint`, for
    /// `lock_for` at most.
    pub async fn claim_key(
        &self,
        user_id: &str,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        lock_for: std::time::Duration,
    ) -> Result<KeyClaim, StoreError> {
        let owner = Uuid::now_v7().to_string();
        let locked_until = now.plus(lock_for).millis();
        const CLAIM: &str = "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, \
             state, owner, locked_until, created_at) \
             VALUES ($1, $2, $3, 'in_progress', $4, $5, $6) \
             ON CONFLICT (user_id, idem_key) DO NOTHING";
        // A row deleted or taken over between our statements sends us round again; a few turns
        // settle it, as every turn either inserts, reads a decision, or loses to an attempt that
        // made progress.
        for _ in 0..5 {
            let inserted = if let Some(writer) = &self.writer {
                writer
                    .write(|tx| {
                        execute_numbered(
                            tx,
                            CLAIM,
                            &[
                                &user_id,
                                &key,
                                &fingerprint,
                                &owner,
                                &locked_until,
                                &now.millis(),
                            ],
                        )
                    })
                    .await?
                    == 1
            } else {
                on_pool!(&self.db, |pool| sqlx::query(CLAIM)
                    .bind(user_id)
                    .bind(key)
                    .bind(fingerprint)
                    .bind(&owner)
                    .bind(locked_until)
                    .bind(now.millis())
                    .execute(pool)
                    .await?
                    .rows_affected())
                    == 1
            };
            if inserted {
                return Ok(KeyClaim::Run { owner });
            }
            let row: Option<KeyRow> = on_pool!(&self.db, |pool| sqlx::query_as(
                "SELECT fingerprint, state, owner, locked_until, status, body, location \
                 FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
            )
            .bind(user_id)
            .bind(key)
            .fetch_optional(pool)
            .await?);
            let Some((stored, state, holder, until, status, body, location)) = row else {
                continue;
            };
            if stored != fingerprint {
                return Ok(KeyClaim::Mismatch);
            }
            if state == "done" {
                let (Some(status), Some(body)) = (status, body) else {
                    return Err(StoreError::corrupt(
                        "idempotency_keys",
                        "an answer is missing",
                    ));
                };
                let status = u16::try_from(status)
                    .map_err(|e| StoreError::corrupt("idempotency_keys.status", e.to_string()))?;
                return Ok(KeyClaim::Replay(StoredAnswer {
                    status,
                    body,
                    location,
                }));
            }
            if until > now.millis() {
                return Ok(KeyClaim::InProgress);
            }
            if self
                .take_over(user_id, key, &holder, &owner, locked_until)
                .await?
            {
                tracing::warn!(user = %user_id, "taking over an idempotency key whose attempt died");
                return Ok(KeyClaim::Run { owner });
            }
        }
        Ok(KeyClaim::InProgress)
    }

    async fn take_over(
        &self,
        user_id: &str,
        key: &str,
        holder: &str,
        owner: &str,
        locked_until: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.db.write_turn().await?;
        let taken = on_pool!(&self.db, |pool| sqlx::query(
            "UPDATE idempotency_keys SET owner = $1, locked_until = $2 \
             WHERE user_id = $3 AND idem_key = $4 AND owner = $5 AND state = 'in_progress'",
        )
        .bind(owner)
        .bind(locked_until)
        .bind(user_id)
        .bind(key)
        .bind(holder)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(taken == 1)
    }

    /// Keeps `answer` for replay; `false` if this attempt no longer holds the key.
    pub async fn finish_key(&self, key: &KeyDone) -> Result<bool, StoreError> {
        if let Some(writer) = &self.writer {
            let done = writer
                .write(|tx| execute_numbered(tx, FINISH, &finish_params(key)))
                .await?;
            return Ok(done == 1);
        }
        let done = on_pool!(&self.db, |pool| finish_query!(key)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Gives up `key` without an answer (the attempt failed in a way worth retrying), if
    /// `owner` still holds it.
    pub async fn release_key(
        &self,
        user_id: &str,
        key: &str,
        owner: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND owner = $3 \
             AND state = 'in_progress'",
        )
        .bind(user_id)
        .bind(key)
        .bind(owner)
        .execute(pool)
        .await
        .map(drop)?);
        Ok(())
    }

    /// Forgets keys made before `before`; returns how many.
    pub async fn purge_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        let _turn = self.db.write_turn().await?;
        Ok(on_pool!(&self.db, |pool| sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < $1"
        )
        .bind(before.millis())
        .execute(pool)
        .await?
        .rows_affected()))
    }
}

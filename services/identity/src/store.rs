//! Identity's storage, on SQLite or PostgreSQL: the same schema and SQL on both (text ids, Unix
//! seconds), so every query is written once and run on whichever pool is configured.

use souk_chassis::Database;
use souk_chassis::db::{DatabaseConfig, DbError, Migrations};
use souk_chassis::on_pool;
use sqlx::Row;

use crate::domain::Role;
use crate::keys::StoredKey;

/// One schema, written once: it uses nothing that differs between the engines.
const SCHEMA: &[(i64, &str, &str)] = &[
    (
        1,
        "identity",
        include_str!("../migrations/0001_identity.sql"),
    ),
    (
        2,
        "refresh indexes",
        include_str!("../migrations/0002_refresh_indexes.sql"),
    ),
];

/// Identity's migrations for both engines.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: SCHEMA,
    postgres: SCHEMA,
};

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A stored value is not one this service writes.
    #[error("stored {0} is invalid")]
    Corrupt(&'static str),
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was valid and is now used: issue a new pair in the same family.
    Rotated {
        /// Its account.
        user_id: String,
        /// Its family.
        family_id: String,
        /// When the family's login ends: rotation does not extend it.
        expires_at: i64,
    },
    /// It had been used (or revoked) already: someone replays it, so the family is revoked.
    Reused,
    /// Unknown or expired.
    Invalid,
}

/// Identity's store.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, role";

impl Store {
    /// Connects and migrates.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, DbError> {
        let db = Database::connect(config).await?;
        db.migrate(&MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// The pool, for readiness checks.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Creates an account; `false` when the email is taken.
    pub async fn insert_user(&self, user: &User, now: i64) -> Result<bool, StoreError> {
        let sql = "INSERT INTO users (id, email, name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT (email) DO NOTHING";
        let _turn = self.db.write_turn().await?;
        let done = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Makes an existing account an administrator.
    pub async fn promote(&self, email: &str) -> Result<(), StoreError> {
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(
            "UPDATE users SET role = 'admin' WHERE email = $1"
        )
        .bind(email)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The account with this normalised email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.user_where("email", email).await
    }

    /// The account with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.user_where("id", id).await
    }

    async fn user_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<User>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {column} = $1"
        ));
        let row = on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql).bind(value).fetch_optional(pool).await?;
            row.map(|row| -> Result<User, StoreError> {
                let role: String = row.try_get("role")?;
                Ok(User {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    name: row.try_get("name")?,
                    password_hash: row.try_get("password_hash")?,
                    role: Role::parse(&role).ok_or(StoreError::Corrupt("role"))?,
                })
            })
            .transpose()?
        });
        Ok(row)
    }

    /// Stores a new refresh token (by hash).
    pub async fn insert_refresh(
        &self,
        hash: &str,
        family_id: &str,
        user_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(hash)
            .bind(family_id)
            .bind(user_id)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Uses a refresh token, once. A second use of the same token — a replay, or a race with a
    /// thief — revokes its whole family, so neither copy works any more.
    pub async fn rotate_refresh(&self, hash: &str, now: i64) -> Result<Rotation, StoreError> {
        let claim = "UPDATE refresh_tokens SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
                     RETURNING user_id, family_id, expires_at";
        let turn = self.db.write_turn().await?;
        let claimed = on_pool!(&self.db, |pool| {
            let row = sqlx::query(claim)
                .bind(now)
                .bind(hash)
                .fetch_optional(pool)
                .await?;
            row.map(|row| -> Result<(String, String, i64), sqlx::Error> {
                Ok((
                    row.try_get("user_id")?,
                    row.try_get("family_id")?,
                    row.try_get("expires_at")?,
                ))
            })
            .transpose()?
        });
        drop(turn);
        if let Some((user_id, family_id, expires_at)) = claimed {
            return Ok(Rotation::Rotated {
                user_id,
                family_id,
                expires_at,
            });
        }
        let seen =
            "SELECT family_id, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1";
        let family = on_pool!(&self.db, |pool| {
            let row = sqlx::query(seen).bind(hash).fetch_optional(pool).await?;
            row.map(|row| -> Result<(String, bool), sqlx::Error> {
                let used: Option<i64> = row.try_get("used_at")?;
                let revoked: Option<i64> = row.try_get("revoked_at")?;
                Ok((
                    row.try_get("family_id")?,
                    used.is_some() || revoked.is_some(),
                ))
            })
            .transpose()?
        });
        match family {
            Some((family_id, true)) => {
                self.revoke_family(&family_id, now).await?;
                Ok(Rotation::Reused)
            }
            _ => Ok(Rotation::Invalid),
        }
    }

    /// Ends the login `hash` belongs to (logout): every refresh token of its family is revoked.
    /// Returns whether the token was known; an unknown one changes nothing.
    pub async fn revoke_family_of(&self, hash: &str, now: i64) -> Result<bool, StoreError> {
        let sql = "SELECT family_id FROM refresh_tokens WHERE token_hash = $1";
        let family: Option<String> = on_pool!(&self.db, |pool| sqlx::query_scalar(sql)
            .bind(hash)
            .fetch_optional(pool)
            .await?);
        match family {
            Some(family) => {
                self.revoke_family(&family, now).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Sets a new password hash and revokes every refresh token of the account, in one
    /// transaction: after a password change no earlier login can be refreshed.
    pub async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes refresh tokens whose login ended before `before` (expired, used or revoked alike:
    /// a whole family shares one end, so reuse detection loses nothing that could still work).
    /// Returns how many were deleted.
    pub async fn purge_refresh(&self, before: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM refresh_tokens WHERE expires_at < $1";
        let _turn = self.db.write_turn().await?;
        let deleted = on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(deleted)
    }

    /// Replaces a stored key's private half (sealing one stored in the clear).
    pub async fn reseal_key(&self, kid: &str, pkcs8: &str) -> Result<(), StoreError> {
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(
            "UPDATE signing_keys SET pkcs8 = $1 WHERE kid = $2"
        )
        .bind(pkcs8)
        .bind(kid)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Revokes every refresh token of a family.
    pub async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        let sql =
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL";
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(now)
            .bind(family_id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Every signing key that is active or retired after `retired_since`.
    pub async fn keys(&self, retired_since: i64) -> Result<Vec<StoredKey>, StoreError> {
        let sql = "SELECT kid, pkcs8, public_x, created_at, retired_at FROM signing_keys \
                   WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at, kid";
        let keys = on_pool!(&self.db, |pool| {
            let rows = sqlx::query(sql).bind(retired_since).fetch_all(pool).await?;
            rows.iter()
                .map(|row| -> Result<StoredKey, sqlx::Error> {
                    Ok(StoredKey {
                        kid: row.try_get("kid")?,
                        pkcs8: row.try_get("pkcs8")?,
                        public_x: row.try_get("public_x")?,
                        created_at: row.try_get("created_at")?,
                        retired_at: row.try_get("retired_at")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(keys)
    }

    /// Adds a new signing key and retires the others, in one transaction.
    pub async fn rotate_keys(&self, key: &StoredKey, now: i64) -> Result<(), StoreError> {
        on_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO signing_keys (kid, pkcs8, public_x, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&key.kid)
                .bind(&key.pkcs8)
                .bind(&key.public_x)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}

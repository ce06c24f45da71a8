//! The cart's storage: SQLite (embedded default) or Redis, chosen by the store URL's scheme.
//!
//! Both hold, per user, lines of (product, quantity) in the order they were first added, refuse a
//! 101st line atomically (a `BEGIN IMMEDIATE` transaction; a Lua script), and forget carts left
//! untouched for `abandoned_after_days` (a periodic purge; a TTL refreshed on every write).

mod redis;
mod sqlite;

use std::time::Duration;

use futures::future::BoxFuture;
use souk_chassis::db::{DbError, Migrations};
use souk_chassis::health::Check;
use uuid::Uuid;

use crate::config::StoreConfig;
use crate::domain::Line;

pub use self::redis::RedisStore;
pub use self::sqlite::SqliteStore;

/// The cart's migrations, embedded in the binary. PostgreSQL is not a cart store.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[(
        1,
        "cart",
        include_str!("../../migrations/sqlite/0001_cart.sql"),
    )],
    postgres: &[],
};

/// The event bookkeeping's tables (the cart consumes orders' events), on either SQL engine.
pub const EVENTS_MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        souk_chassis::events::INBOX_MIGRATION_SQLITE,
        souk_chassis::events::INBOX_RETENTION_MIGRATION_SQLITE,
    ],
    postgres: &[
        souk_chassis::events::INBOX_MIGRATION_POSTGRES,
        souk_chassis::events::INBOX_RETENTION_MIGRATION_POSTGRES,
    ],
};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no supported store (its text is withheld: it may hold a password).
    #[error("store url must start with sqlite:// or redis:// (got scheme {scheme:?})")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The SQLite database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// Redis could not be reached.
    #[error("cannot connect to Redis")]
    Redis(#[source] ::redis::RedisError),
}

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// SQLite failed on a connection used on the calling thread (a cart read, a line set).
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// Redis failed.
    #[error("redis error")]
    Redis(#[from] ::redis::RedisError),
    /// A stored value is not valid (written behind the cart's back).
    #[error("stored {what} is invalid: {reason}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    /// Whether the store cannot be reached right now (a 503) rather than failed a request (a 500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(err) => souk_chassis::db::is_unavailable(err),
            Self::Sqlite(err) => souk_chassis::db::inline::is_unavailable(err),
            Self::Redis(err) => {
                err.is_io_error()
                    || err.is_connection_refusal()
                    || err.is_connection_dropped()
                    || err.is_timeout()
            }
            Self::Corrupt { .. } => false,
        }
    }
}

/// Why a line could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The cart already holds [`crate::domain::MAX_LINES`] other products.
    #[error("the cart is full")]
    Full,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for SetError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Store(StoreError::Sqlite(err))
    }
}

/// The cart's store, of either kind. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite, the embedded default.
    Sqlite(SqliteStore),
    /// Redis.
    Redis(RedisStore),
}

impl Store {
    /// Opens the store `config.url` names; carts untouched for `abandoned_after` are forgotten.
    pub async fn open(config: &StoreConfig, abandoned_after: Duration) -> Result<Self, OpenError> {
        let url = config.url.expose();
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Self::Sqlite(
                SqliteStore::open(&config.database(), abandoned_after).await?,
            )),
            "redis" => Ok(Self::Redis(
                RedisStore::open(url, &config.key_prefix, abandoned_after).await?,
            )),
            other => Err(OpenError::UnsupportedScheme {
                scheme: other.to_owned(),
            }),
        }
    }

    /// The engine's name, for logs.
    pub fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Redis(_) => "redis",
        }
    }

    /// `user`'s lines, in the order they were first added.
    pub async fn lines(&self, user: &str) -> Result<Vec<Line>, StoreError> {
        match self {
            Self::Sqlite(store) => store.lines(user).await,
            Self::Redis(store) => store.lines(user).await,
        }
    }

    /// Adds or replaces `user`'s line for `line.product_id`; a new line is refused when the cart
    /// already holds the most lines.
    pub async fn set(&self, user: &str, line: Line) -> Result<(), SetError> {
        match self {
            Self::Sqlite(store) => store.set(user, line).await,
            Self::Redis(store) => store.set(user, line).await,
        }
    }

    /// Removes `user`'s line for `product` (nothing happens when there is none).
    pub async fn remove(&self, user: &str, product: Uuid) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.remove(user, product).await,
            Self::Redis(store) => store.remove(user, product).await,
        }
    }

    /// Removes `user`'s line for `product` unless it changed after `since` (Unix ms): what a
    /// confirmed order bought leaves the cart, what the shopper put back after it stays.
    pub async fn remove_unchanged_since(
        &self,
        user: &str,
        product: Uuid,
        since: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.remove_unchanged_since(user, product, since).await,
            Self::Redis(store) => store.remove_unchanged_since(user, product, since).await,
        }
    }

    /// Empties `user`'s cart.
    pub async fn clear(&self, user: &str) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.clear(user).await,
            Self::Redis(store) => store.clear(user).await,
        }
    }

    /// Forgets carts untouched for longer than the configured time; returns how many. Redis does
    /// this by itself (a TTL), so there it is a no-op.
    pub async fn purge_abandoned(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(store) => store.purge_abandoned().await,
            Self::Redis(_) => Ok(0),
        }
    }

    /// Closes the store's connections.
    pub async fn close(&self) {
        if let Self::Sqlite(store) = self {
            store.database().close().await;
        }
    }
}

impl Check for Store {
    fn name(&self) -> &str {
        match self {
            Self::Sqlite(store) => store.database().name(),
            Self::Redis(store) => store.name(),
        }
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        match self {
            Self::Sqlite(store) => store.database().check(),
            Self::Redis(store) => store.check(),
        }
    }
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn other_schemes_are_refused_without_echoing_the_url() {
        for url in ["postgres://root:pw@x/db", "rediss://:pw@x", "pw"] {
            let err = Store::open(&StoreConfig::with_url(url), Duration::from_secs(60))
                .await
                .unwrap_err();
            assert!(matches!(err, OpenError::UnsupportedScheme { .. }), "{url}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }
}

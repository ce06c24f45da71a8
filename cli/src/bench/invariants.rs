//! The checkout saga's invariants after a chaos run, held against the shop's books: read once,
//! the way the end-to-end crash harness reads them (`souk::books`: the services' SQLite files
//! under the data dir, read-only, or their PostgreSQL databases), and held to every invariant a
//! run can check knowing only which orders it was told were accepted.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use souk::books::{self, Books, Place};

/// One invariant and what broke it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) invariant: &'static str,
    pub(crate) violations: Vec<String>,
}

/// Waits (up to `within`) until every order has ended and every event is consumed, then checks
/// every invariant. `accepted` are the ids of the orders the load was told were accepted.
pub(crate) async fn check(
    place: &Place,
    accepted: &[String],
    within: Duration,
) -> Result<Vec<Check>, String> {
    let deadline = Instant::now() + within;
    loop {
        let books = Books::read(place).await?;
        if books.quiet() || Instant::now() > deadline {
            return Ok(books::check_books(&books, accepted)
                .into_iter()
                .map(|(invariant, violations)| Check {
                    invariant,
                    violations,
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where the shop on `data_dir` keeps its books: SQLite files there, or (`souk up --backend
/// postgres`) the databases on the server `SOUK_POSTGRES_URL` names, as `souk up` names them.
pub(crate) fn place(data_dir: &Path) -> Option<Place> {
    let sqlite = [
        "orders.db",
        "payments.db",
        "inventory.db",
        "history.db",
        "cart-events.db",
    ]
    .iter()
    .all(|f| data_dir.join(f).is_file());
    if sqlite {
        return Some(Place::Sqlite(data_dir.to_owned()));
    }
    let server = std::env::var("SOUK_POSTGRES_URL").ok()?;
    Some(Place::Postgres {
        server,
        prefix: crate::up::server_prefix(),
    })
}

//! Health endpoints: `/healthz` (the process answers) and `/readyz` (it can do its work).
//!
//! Readiness runs every registered [`Check`] with a deadline and reports each one; it also turns
//! false as soon as shutdown begins, so load balancers stop sending new work while in-flight
//! requests drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::StatusCode;
use serde::Serialize;

use crate::extract::Json;

/// How long one readiness check may take before it counts as failed.
const CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// One dependency that must be reachable for the service to be ready.
pub trait Check: Send + Sync + 'static {
    /// A short name for reports (`database`, `catalog`).
    fn name(&self) -> &str;
    /// `Ok` when the dependency answers; otherwise why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The service's health: its readiness checks and whether it is draining.
#[derive(Clone, Default)]
pub struct Health {
    checks: Vec<Arc<dyn Check>>,
    draining: Arc<AtomicBool>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|c| c.name().to_owned()).collect();
        f.debug_struct("Health")
            .field("checks", &names)
            .field("draining", &self.is_draining())
            .finish()
    }
}

#[derive(Debug, Serialize)]
struct Report {
    status: &'static str,
    checks: Vec<CheckReport>,
}

#[derive(Debug, Serialize)]
struct CheckReport {
    name: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Health {
    /// No checks yet: ready as long as not draining.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a readiness check.
    pub fn with_check(mut self, check: impl Check) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Marks the service as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Starts draining when `shutdown` fires. Must be called inside a Tokio runtime.
    pub fn drain_on(&self, shutdown: &crate::server::Shutdown) {
        let (health, shutdown) = (self.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.wait().await;
            health.start_draining();
        });
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    async fn report(&self) -> (bool, Report) {
        let runs = self.checks.iter().map(|check| async move {
            let result = match tokio::time::timeout(CHECK_DEADLINE, check.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "no answer within {} ms",
                    CHECK_DEADLINE.as_millis()
                )),
            };
            CheckReport {
                name: check.name().to_owned(),
                ok: result.is_ok(),
                error: result.err(),
            }
        });
        let mut checks = futures::future::join_all(runs).await;
        if self.is_draining() {
            checks.push(CheckReport {
                name: "shutdown".into(),
                ok: false,
                error: Some("draining".into()),
            });
        }
        let ready = checks.iter().all(|c| c.ok);
        (
            ready,
            Report {
                status: if ready { "ready" } else { "unavailable" },
                checks,
            },
        )
    }
}

/// `GET /healthz`: 200 while the process can answer at all.
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 when every check passes and the service is not draining, else 503.
pub async fn readyz(State(health): State<Health>) -> Response {
    let (ready, report) = health.report().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<(), String>);

    impl Check for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move { self.0.clone() })
        }
    }

    struct Hangs;

    impl Check for Hangs {
        fn name(&self) -> &str {
            "hangs"
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(futures::future::pending())
        }
    }

    #[tokio::test]
    async fn ready_when_all_checks_pass() {
        let health = Health::new().with_check(Fixed(Ok(())));
        assert!(health.report().await.0);
    }

    #[tokio::test]
    async fn a_failing_check_or_draining_makes_it_unready() {
        let failing = Health::new().with_check(Fixed(Err("down".into())));
        let (ready, report) = failing.report().await;
        assert!(!ready);
        assert_eq!(report.checks[0].error.as_deref(), Some("down"));

        let draining = Health::new();
        draining.start_draining();
        assert!(!draining.report().await.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_times_out() {
        let (ready, report) = Health::new().with_check(Hangs).report().await;
        assert!(!ready);
        assert!(
            report.checks[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("no answer")
        );
    }
}

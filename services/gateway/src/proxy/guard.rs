//! The guards in front of an upstream: what may refuse a routed, authorized request before any
//! of it is sent — a declared body over the route's limit, an injected fault, the upstream's
//! open breaker and its concurrency limit.
//!
//! They stand in that order: the body check and faults cost nothing and hold nothing, and apply
//! to in-process upstreams too; the breaker and the limit take a share of the upstream (a probe
//! slot, an in-flight slot) that only a request sure to be sent should take.

use http::StatusCode;
use http::header;
use http::request::Parts;

use crate::table::Route;
use crate::upstream::{Admission, Slot, Upstream};

use super::problem::{Problem, problem, too_large};

/// A request the breaker and the concurrency limit let through: its breaker verdict, to record
/// once it is known, and its slot under the limit, held until its answer has streamed back.
pub(super) struct Admitted<'a> {
    pub(super) verdict: Verdict<'a>,
    pub(super) slot: Slot,
}

/// The guards that apply to every upstream, in-process ones included: the declared body length
/// against the route's limit, then the route's and the upstream's injected faults.
pub(super) async fn check(route: &Route, parts: &Parts) -> Result<(), Problem> {
    if declared_length(parts).is_some_and(|length| length > route.body_limit) {
        return Err(too_large());
    }
    for decision in [route.faults.decide(), route.upstream.faults.decide()] {
        if let Some(delay) = decision.delay {
            let span = crate::spans::child(parts, "injected delay", || {
                vec![opentelemetry::KeyValue::new(
                    "souk.fault.delay_ms",
                    i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                )]
            });
            tokio::time::sleep(delay).await;
            crate::spans::end_child(span, None);
        }
        if let Some(status) = decision.abort {
            crate::spans::event(parts, "injected fault", || {
                vec![opentelemetry::KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                )]
            });
            return Err(problem(status, "fault injected for a chaos run"));
        }
    }
    Ok(())
}

/// Asks the breaker, then the concurrency limit (shedding rather than queueing), and pays into
/// the retry budget for an admitted request: retries may add a share of the load admitted.
pub(super) fn admit(route: &Route) -> Result<Admitted<'_>, Problem> {
    let upstream = &route.upstream;
    let probe = match upstream.breaker.admit(upstream.clock.now_ms()) {
        Admission::Allowed { probe } => probe,
        Admission::Refused { retry_after_ms } => {
            route.metrics.breaker_refusals.increment(1);
            upstream.publish_breaker_state();
            let retry_after = retry_after_ms.div_ceil(1_000).max(1).to_string();
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "this part of the shop is failing; try again shortly",
            )
            .with_header(header::RETRY_AFTER, &retry_after));
        }
    };
    let verdict = Verdict {
        upstream,
        probe,
        recorded: false,
    };
    let Some(slot) = upstream.acquire() else {
        return Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "this part of the shop is too busy; try again shortly",
        )
        .with_header(header::RETRY_AFTER, "1"));
    };
    upstream.budget.deposit();
    Ok(Admitted { verdict, slot })
}

/// How one admitted request ended, for the breaker; recorded once. A half-open probe dropped
/// unrecorded (its client went away, or it was shed) counts as failed: otherwise the breaker would
/// wait for its result forever, refusing every request meanwhile.
pub(super) struct Verdict<'a> {
    upstream: &'a Upstream,
    probe: bool,
    recorded: bool,
}

impl Verdict<'_> {
    pub(super) fn record(mut self, success: bool) {
        self.recorded = true;
        let now = self.upstream.clock.now_ms();
        self.upstream.breaker.record(success, self.probe, now);
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let now = self.upstream.clock.now_ms();
            self.upstream.breaker.record(false, true, now);
            self.upstream.publish_breaker_state();
        }
    }
}

/// The request's `Content-Length`, when it declares one that parses.
pub(super) fn declared_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

//! Whether an attempt that did not end well is sent again: one pure decision over what happened
//! and what the request allows, so that every branch is tested here rather than through sockets.
//!
//! A retry is only ever sent for a request that is safe to send twice (an idempotent method, or
//! an `Idempotency-Key`), or one whose connection was never opened; within `max_retries`; with a
//! body that can be sent again; when the wait (the upstream's `Retry-After` or the jittered
//! backoff, whichever is longer) ends before the route's deadline; and, unless nothing reached
//! the upstream, paid from its retry budget.

use std::time::Duration;

use http::request::Parts;
use http::{Method, Response, header};

use super::forward::Outcome;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What the decision knows of the request, besides how its last attempt ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    /// Whether sending it twice is safe (see [`safe_to_repeat`]).
    pub(super) idempotent: bool,
    /// Attempts sent so far, the last one included.
    pub(super) attempt: u32,
    /// The upstream's `retry.max_retries`.
    pub(super) max_retries: u32,
    /// Whether its body can be sent again: buffered, or none at all.
    pub(super) replayable: bool,
}

/// The clock and the dice, read only once a retry is possible at all, so a request answered at
/// its first attempt pays for neither.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// This attempt's jittered backoff ([`backoff`]).
    pub(super) backoff: Duration,
    /// What is left of the route's timeout.
    pub(super) time_left: Duration,
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Send it again (to another endpoint when there is one) after `wait`. `from_budget`: the
    /// retry must be paid from the upstream's retry budget, which caps the extra load retries
    /// make; a connection that could not be opened cost the upstream nothing, so its retry is
    /// free.
    Retry { wait: Duration, from_budget: bool },
    /// The attempt's result is the answer: an upstream's answer other than 502, 503 or 504, or
    /// the client's own body at fault.
    Final,
    /// It may have reached the upstream, and sending it twice is not safe.
    NotIdempotent,
    /// `max_retries` retries were sent already.
    Exhausted,
    /// Its body was streamed to the failed attempt and is gone.
    NotReplayable,
    /// The wait would end past the route's deadline.
    PastDeadline,
}

/// Decides whether the attempt that ended in `outcome` is sent again. `timing` is called only
/// when nothing else has ruled a retry out.
pub(super) fn retry_decision<B>(
    outcome: &Outcome<B>,
    request: Request,
    timing: impl FnOnce() -> Timing,
) -> Decision {
    let asked = match outcome {
        // Nothing was sent: any method may go elsewhere.
        Outcome::Unreachable => Duration::ZERO,
        Outcome::Overloaded(response) if request.idempotent => retry_after(response),
        Outcome::TimedOut | Outcome::Broken if request.idempotent => Duration::ZERO,
        Outcome::Overloaded(_) | Outcome::TimedOut | Outcome::Broken => {
            return Decision::NotIdempotent;
        }
        Outcome::Answered(_)
        | Outcome::Failed(_)
        | Outcome::BodyTooLarge
        | Outcome::BadClientBody => return Decision::Final,
    };
    if request.attempt > request.max_retries {
        return Decision::Exhausted;
    }
    if !request.replayable {
        return Decision::NotReplayable;
    }
    let timing = timing();
    let wait = asked.max(timing.backoff);
    if wait >= timing.time_left {
        return Decision::PastDeadline;
    }
    Decision::Retry {
        wait,
        from_budget: !matches!(outcome, Outcome::Unreachable),
    }
}

/// Whether a request may be sent twice: an idempotent method, or an `Idempotency-Key` the
/// upstream deduplicates by.
pub(super) fn safe_to_repeat(parts: &Parts) -> bool {
    is_idempotent(&parts.method) || parts.headers.contains_key(IDEMPOTENCY_KEY)
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// How long an overloaded upstream asked us to wait (`Retry-After` in seconds), if it said.
fn retry_after<B>(response: &Response<B>) -> Duration {
    response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// Exponential backoff with full jitter: a random wait up to `base × 2^(attempt-1)`, capped.
pub(super) fn backoff(config: &crate::config::RetryConfig, attempt: u32) -> Duration {
    let ceiling = config
        .backoff_base_ms
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(config.backoff_max_ms);
    Duration::from_millis(fastrand::u64(0..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryConfig;

    /// An outcome with no body to read.
    type Tried = Outcome<()>;

    /// A GET after its first attempt, with retries left and a buffered body.
    const GET: Request = Request {
        idempotent: true,
        attempt: 1,
        max_retries: 2,
        replayable: true,
    };
    const POST: Request = Request {
        idempotent: false,
        ..GET
    };

    fn answer(status: u16, retry_after: Option<&str>) -> Response<()> {
        let mut response = Response::builder().status(status);
        if let Some(value) = retry_after {
            response = response.header(header::RETRY_AFTER, value);
        }
        response.body(()).unwrap()
    }

    fn overloaded(retry_after: Option<&str>) -> Tried {
        Outcome::Overloaded(answer(503, retry_after))
    }

    fn timing(backoff_ms: u64, time_left_ms: u64) -> impl FnOnce() -> Timing {
        move || Timing {
            backoff: Duration::from_millis(backoff_ms),
            time_left: Duration::from_millis(time_left_ms),
        }
    }

    fn untimed() -> Timing {
        panic!("the clock is read only when a retry is possible")
    }

    #[test]
    fn answers_and_client_body_failures_are_final() {
        for outcome in [
            Outcome::Answered(answer(404, None)),
            Outcome::Failed(answer(500, None)),
            Outcome::BodyTooLarge,
            Outcome::BadClientBody,
        ] {
            assert_eq!(retry_decision(&outcome, GET, untimed), Decision::Final);
        }
    }

    #[test]
    fn what_may_have_reached_the_upstream_is_retried_only_when_safe_to_repeat() {
        for outcome in [overloaded(None), Outcome::TimedOut, Outcome::Broken] {
            assert_eq!(
                retry_decision(&outcome, POST, untimed),
                Decision::NotIdempotent
            );
            assert_eq!(
                retry_decision(&outcome, GET, timing(5, 1_000)),
                Decision::Retry {
                    wait: Duration::from_millis(5),
                    from_budget: true
                }
            );
        }
    }

    #[test]
    fn a_connection_never_opened_is_retried_for_any_method_and_free() {
        assert_eq!(
            retry_decision(&Tried::Unreachable, POST, timing(5, 1_000)),
            Decision::Retry {
                wait: Duration::from_millis(5),
                from_budget: false
            }
        );
    }

    #[test]
    fn retries_stop_after_max_retries() {
        let last = Request { attempt: 3, ..GET };
        assert_eq!(
            retry_decision(&Tried::Unreachable, last, untimed),
            Decision::Exhausted
        );
        let one_left = Request { attempt: 2, ..GET };
        assert!(matches!(
            retry_decision(&Tried::Unreachable, one_left, timing(0, 1_000)),
            Decision::Retry { .. }
        ));
        let none = Request {
            max_retries: 0,
            ..GET
        };
        assert_eq!(
            retry_decision(&Tried::TimedOut, none, untimed),
            Decision::Exhausted
        );
    }

    #[test]
    fn a_streamed_body_is_never_sent_again() {
        let streamed = Request {
            replayable: false,
            ..GET
        };
        assert_eq!(
            retry_decision(&Tried::Unreachable, streamed, untimed),
            Decision::NotReplayable
        );
    }

    #[test]
    fn the_longer_of_retry_after_and_backoff_is_waited_within_the_deadline() {
        let asked = overloaded(Some(" 2 "));
        assert_eq!(
            retry_decision(&asked, GET, timing(5, 2_001)),
            Decision::Retry {
                wait: Duration::from_secs(2),
                from_budget: true
            }
        );
        assert_eq!(
            retry_decision(&asked, GET, timing(5, 2_000)),
            Decision::PastDeadline
        );
        // A Retry-After that is not a number of seconds (an HTTP date) is not honoured.
        assert_eq!(
            retry_decision(
                &overloaded(Some("Fri, 31 Dec 1999 23:59:59 GMT")),
                GET,
                timing(5, 10)
            ),
            Decision::Retry {
                wait: Duration::from_millis(5),
                from_budget: true
            }
        );
        assert_eq!(
            retry_decision(&Tried::Broken, GET, timing(10, 10)),
            Decision::PastDeadline
        );
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let config = RetryConfig {
            backoff_base_ms: 10,
            backoff_max_ms: 50,
            ..RetryConfig::default()
        };
        for attempt in 1..20 {
            let ceiling = (10u64 << (attempt - 1).min(16)).min(50);
            assert!(backoff(&config, attempt) <= Duration::from_millis(ceiling));
        }
    }

    #[test]
    fn only_safe_methods_are_idempotent() {
        assert!(
            is_idempotent(&Method::GET)
                && is_idempotent(&Method::PUT)
                && is_idempotent(&Method::DELETE)
        );
        assert!(!is_idempotent(&Method::POST) && !is_idempotent(&Method::PATCH));
    }
}

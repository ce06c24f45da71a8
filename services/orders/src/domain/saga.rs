//! The checkout saga as a pure state machine: where a saga stands ([`Step`]) × what its last
//! remote call came to ([`Outcome`]) → where it stands next ([`next`]). The runner
//! (`crate::saga`) does the calls and persists every step; everything it decides is decided here.
//!
//! ```text
//!            Reserved          Captured          Committed
//!   Reserve ─────────▶ Charge ─────────▶ Commit ──────────▶ Confirmed
//!      │                 │                 │ hold gone and
//!      │ out of stock,   │ declined,       │ units sold (out_of_stock)
//!      │ hold lapsed,    │ refused, order  ▼
//!      │ or failures     │ cancelled, or failures past the deadline
//!      │ past the        ▼
//!      │ deadline   Release{refund} ── Released ──▶ Refund ── Refunded ──▶ Cancelled(reason)
//!      └──────────▶ Release{no refund} ── Released ─────────────────────▶ Cancelled(reason)
//! ```
//!
//! Rules the property tests below hold it to:
//! - `Confirmed` and `Cancelled` are final: no outcome leaves them;
//! - `Confirmed` is reached only by inventory's commit, after a capture, after a reservation, with
//!   no compensation on the way: no order is confirmed unless its stock is committed;
//! - `Cancelled` is reached only through `Release` (every hold given back, or a tombstone left), and
//!   through `Refund` too whenever a charge was ever asked for;
//! - compensation never goes forward again, and has no deadline: only success moves it on;
//! - a forward step fails over to compensation once its deadline has passed (the runner also
//!   checks the deadline before each forward call, so a saga resumed late never calls forward);
//! - the commit has no deadline either: the money is taken, and only inventory's answer (the sale
//!   made, or the units gone) settles it.

use std::time::Duration;

use super::CancelReason;

/// Where a saga stands: the step it runs next, or the end it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Hold the order's lines in inventory.
    Reserve,
    /// Charge the order's total in payments.
    Charge,
    /// Turn the reservation into a sale in inventory (the charge was captured).
    Commit,
    /// Give the reservation back (or leave a tombstone so a late one is refused); then refund if
    /// a charge was ever asked for.
    Release {
        /// Why the order is being cancelled.
        reason: CancelReason,
        /// Whether a charge may have been made, so a refund must follow.
        refund: bool,
    },
    /// Refund the order's payment (or leave a tombstone so a late charge is refused).
    Refund {
        /// Why the order is being cancelled.
        reason: CancelReason,
    },
    /// Done: stock held and payment captured.
    Confirmed,
    /// Done: everything given back.
    Cancelled(CancelReason),
}

/// What a step's remote call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Inventory holds every line.
    Reserved,
    /// Inventory lacks units of some line.
    OutOfStock,
    /// Inventory will not hold for this order any more (released or expired before), or refused
    /// the lines for good.
    ReservationRefused,
    /// Payments captured the total.
    Captured,
    /// Inventory sold the reserved units (now or before).
    Committed,
    /// Inventory will not sell them: the hold lapsed and the units went to someone else (or the
    /// reservation was released).
    CommitRefused,
    /// The card was declined.
    Declined,
    /// Payments refused the charge for good (invalid, not the user's card, a conflicting payment).
    ChargeRefused,
    /// Payments holds a tombstone for the order: it was refunded before any charge, and will never
    /// be charged.
    OrderCancelled,
    /// Inventory gave the units back (or recorded the tombstone).
    Released,
    /// Payments refunded the charge, or recorded that there was none.
    Refunded,
    /// The call did not settle anything: try again later.
    Failed(Failure),
}

/// Why a call settled nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The service could not answer (unreachable, timed out, 5xx), or refused us for now (401,
    /// 403, 429: a token or capacity problem that may pass).
    Unavailable,
    /// Payments answered, but its card processor failed: nothing was charged.
    Processor,
    /// The service is busy with this very order (a charge in progress).
    Busy,
}

impl Step {
    /// Whether the saga has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled(_))
    }

    /// Whether this step moves the order forward (and so has a deadline, checked before its
    /// call). The commit is not one: it settles what the capture started.
    pub fn is_forward(self) -> bool {
        matches!(self, Self::Reserve | Self::Charge)
    }

    /// The step's name, as stored and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reserve => "reserve",
            Self::Charge => "charge",
            Self::Commit => "commit",
            Self::Release { .. } => "release",
            Self::Refund { .. } => "refund",
            Self::Confirmed => "confirmed",
            Self::Cancelled(_) => "cancelled",
        }
    }

    /// The cancel reason the step carries, if any (stored beside the name).
    pub fn reason(self) -> Option<CancelReason> {
        match self {
            Self::Release { reason, .. } | Self::Refund { reason } | Self::Cancelled(reason) => {
                Some(reason)
            }
            _ => None,
        }
    }

    /// Whether a refund follows (stored beside the name).
    pub fn refund(self) -> bool {
        matches!(
            self,
            Self::Release { refund: true, .. } | Self::Refund { .. }
        )
    }

    /// A step from its stored parts; `None` if they do not fit together.
    pub fn from_parts(name: &str, reason: Option<CancelReason>, refund: bool) -> Option<Self> {
        match (name, reason) {
            ("reserve", None) => Some(Self::Reserve),
            ("charge", None) => Some(Self::Charge),
            ("commit", None) => Some(Self::Commit),
            ("release", Some(reason)) => Some(Self::Release { reason, refund }),
            ("refund", Some(reason)) => Some(Self::Refund { reason }),
            ("confirmed", None) => Some(Self::Confirmed),
            ("cancelled", Some(reason)) => Some(Self::Cancelled(reason)),
            _ => None,
        }
    }
}

/// Where a saga at `step` goes after `outcome`. Returning `step` itself means "try it again
/// later". `past_deadline` says whether the order's deadline for moving forward has passed.
pub fn next(step: Step, outcome: Outcome, past_deadline: bool) -> Step {
    match step {
        Step::Reserve => match outcome {
            Outcome::Reserved => Step::Charge,
            Outcome::OutOfStock => release(CancelReason::OutOfStock, false),
            Outcome::ReservationRefused => release(CancelReason::Timeout, false),
            _ if past_deadline => release(CancelReason::Timeout, false),
            _ => step,
        },
        Step::Charge => match outcome {
            Outcome::Captured => Step::Commit,
            Outcome::Declined => release(CancelReason::PaymentDeclined, true),
            Outcome::ChargeRefused => release(CancelReason::PaymentFailed, true),
            Outcome::OrderCancelled => release(CancelReason::Timeout, true),
            Outcome::Failed(Failure::Processor) if past_deadline => {
                release(CancelReason::PaymentFailed, true)
            }
            _ if past_deadline => release(CancelReason::Timeout, true),
            _ => step,
        },
        Step::Commit => match outcome {
            Outcome::Committed => Step::Confirmed,
            Outcome::CommitRefused => release(CancelReason::OutOfStock, true),
            _ => step,
        },
        Step::Release { reason, refund } => match outcome {
            Outcome::Released if refund => Step::Refund { reason },
            Outcome::Released => Step::Cancelled(reason),
            _ => step,
        },
        Step::Refund { reason } => match outcome {
            Outcome::Refunded => Step::Cancelled(reason),
            _ => step,
        },
        Step::Confirmed | Step::Cancelled(_) => step,
    }
}

fn release(reason: CancelReason, refund: bool) -> Step {
    Step::Release { reason, refund }
}

/// The delay before retry number `attempt` (0 for the first): exponential from `base`, capped at
/// `max`, with full jitter (`jitter` in `0.0..=1.0` picks a point in `0..=cap`), so instances that
/// failed together do not retry together.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let cap = base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    cap.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REASON: CancelReason = CancelReason::Timeout;

    fn any_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Reserved),
            Just(Outcome::OutOfStock),
            Just(Outcome::ReservationRefused),
            Just(Outcome::Captured),
            Just(Outcome::Committed),
            Just(Outcome::CommitRefused),
            Just(Outcome::Declined),
            Just(Outcome::ChargeRefused),
            Just(Outcome::OrderCancelled),
            Just(Outcome::Released),
            Just(Outcome::Refunded),
            Just(Outcome::Failed(Failure::Unavailable)),
            Just(Outcome::Failed(Failure::Processor)),
            Just(Outcome::Failed(Failure::Busy)),
        ]
    }

    fn any_step() -> impl Strategy<Value = Step> {
        let reason = proptest::sample::select(CancelReason::ALL.to_vec());
        prop_oneof![
            Just(Step::Reserve),
            Just(Step::Charge),
            Just(Step::Commit),
            (reason.clone(), any::<bool>())
                .prop_map(|(reason, refund)| Step::Release { reason, refund }),
            reason.clone().prop_map(|reason| Step::Refund { reason }),
            Just(Step::Confirmed),
            reason.prop_map(Step::Cancelled),
        ]
    }

    #[test]
    fn the_happy_path_reserves_charges_commits_and_confirms() {
        let step = next(Step::Reserve, Outcome::Reserved, false);
        assert_eq!(step, Step::Charge);
        let step = next(step, Outcome::Captured, false);
        assert_eq!(step, Step::Commit);
        assert_eq!(next(step, Outcome::Committed, false), Step::Confirmed);
    }

    #[test]
    fn a_commit_refused_refunds_out_of_stock_and_a_failing_one_waits_past_the_deadline() {
        assert_eq!(
            next(Step::Commit, Outcome::CommitRefused, false),
            Step::Release {
                reason: CancelReason::OutOfStock,
                refund: true
            }
        );
        let down = Outcome::Failed(Failure::Unavailable);
        assert_eq!(next(Step::Commit, down, true), Step::Commit);
        assert_eq!(
            next(Step::Commit, Outcome::Committed, true),
            Step::Confirmed
        );
    }

    #[test]
    fn each_refusal_has_its_reason_and_compensation() {
        let cases = [
            (
                Step::Reserve,
                Outcome::OutOfStock,
                CancelReason::OutOfStock,
                false,
            ),
            (
                Step::Reserve,
                Outcome::ReservationRefused,
                CancelReason::Timeout,
                false,
            ),
            (
                Step::Charge,
                Outcome::Declined,
                CancelReason::PaymentDeclined,
                true,
            ),
            (
                Step::Charge,
                Outcome::ChargeRefused,
                CancelReason::PaymentFailed,
                true,
            ),
            (
                Step::Charge,
                Outcome::OrderCancelled,
                CancelReason::Timeout,
                true,
            ),
        ];
        for (step, outcome, reason, refund) in cases {
            assert_eq!(next(step, outcome, false), Step::Release { reason, refund });
        }
    }

    #[test]
    fn failures_retry_until_the_deadline_then_compensate() {
        let down = Outcome::Failed(Failure::Unavailable);
        assert_eq!(next(Step::Reserve, down, false), Step::Reserve);
        assert_eq!(next(Step::Charge, down, false), Step::Charge);
        assert_eq!(
            next(Step::Reserve, down, true),
            Step::Release {
                reason: REASON,
                refund: false
            }
        );
        assert_eq!(
            next(Step::Charge, Outcome::Failed(Failure::Busy), true),
            Step::Release {
                reason: REASON,
                refund: true
            }
        );
        assert_eq!(
            next(Step::Charge, Outcome::Failed(Failure::Processor), true),
            Step::Release {
                reason: CancelReason::PaymentFailed,
                refund: true
            }
        );
    }

    #[test]
    fn compensation_ignores_the_deadline_and_ends_cancelled() {
        let release = Step::Release {
            reason: REASON,
            refund: true,
        };
        assert_eq!(
            next(release, Outcome::Failed(Failure::Unavailable), true),
            release
        );
        let refund = next(release, Outcome::Released, true);
        assert_eq!(refund, Step::Refund { reason: REASON });
        assert_eq!(next(refund, Outcome::Failed(Failure::Busy), true), refund);
        assert_eq!(
            next(refund, Outcome::Refunded, true),
            Step::Cancelled(REASON)
        );
        let release_only = Step::Release {
            reason: REASON,
            refund: false,
        };
        assert_eq!(
            next(release_only, Outcome::Released, false),
            Step::Cancelled(REASON)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        assert_eq!(backoff(0, base, max, 1.0), base);
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(10, base, max, 1.0), max);
        assert_eq!(backoff(u32::MAX, base, max, 1.0), max);
        assert_eq!(backoff(4, base, max, 0.0), Duration::ZERO);
        assert_eq!(backoff(1, base, max, 0.5), base);
    }

    proptest! {
        #[test]
        fn stored_parts_round_trip(step in any_step()) {
            prop_assert_eq!(Step::from_parts(step.name(), step.reason(), step.refund()), Some(step));
        }

        #[test]
        fn no_outcome_leaves_a_final_step(step in any_step(), outcome in any_outcome(), late in any::<bool>()) {
            if step.is_final() {
                prop_assert_eq!(next(step, outcome, late), step);
            }
        }

        #[test]
        fn compensation_never_goes_forward_again(step in any_step(), outcome in any_outcome(), late in any::<bool>()) {
            let after = next(step, outcome, late);
            if matches!(step, Step::Release { .. } | Step::Refund { .. }) {
                prop_assert!(!after.is_forward() && !matches!(after, Step::Commit | Step::Confirmed));
                prop_assert_eq!(after.reason(), step.reason(), "the reason never changes");
            }
        }

        /// Any run from a fresh order: confirmed only by a capture after a reservation; cancelled
        /// only after every compensation that may be needed succeeded.
        #[test]
        fn every_run_ends_confirmed_or_fully_compensated(
            run in proptest::collection::vec((any_outcome(), any::<bool>()), 0..40)
        ) {
            let mut step = Step::Reserve;
            let (mut reserved, mut charged, mut released, mut refunded) = (false, false, false, false);
            let mut captured = false;
            let mut late = false;
            for (outcome, now_late) in run {
                late |= now_late; // once past, the deadline stays past
                let after = next(step, outcome, late);
                match (step, after) {
                    (Step::Reserve, Step::Charge) => {
                        prop_assert_eq!(outcome, Outcome::Reserved);
                        reserved = true;
                    }
                    (Step::Charge, Step::Commit) => {
                        prop_assert_eq!(outcome, Outcome::Captured);
                        captured = true;
                    }
                    (Step::Commit, Step::Confirmed) => prop_assert_eq!(outcome, Outcome::Committed),
                    (Step::Release { .. }, s) if s != step => {
                        prop_assert_eq!(outcome, Outcome::Released);
                        released = true;
                    }
                    (Step::Refund { .. }, s) if s != step => {
                        prop_assert_eq!(outcome, Outcome::Refunded);
                        refunded = true;
                    }
                    _ => {}
                }
                if after == Step::Charge {
                    charged = true;
                }
                if after == Step::Confirmed {
                    prop_assert!(reserved && charged && captured && !released && !refunded);
                    prop_assert!(matches!(step, Step::Commit | Step::Confirmed), "confirmed only by a commit");
                }
                if let Step::Cancelled(_) = after {
                    prop_assert!(released, "cancelled without releasing");
                    prop_assert!(refunded || !charged, "cancelled without refunding a charge");
                }
                step = after;
            }
        }

        /// Past the deadline, with compensation succeeding and inventory answering the commit,
        /// every saga ends within three steps.
        #[test]
        fn past_the_deadline_every_saga_ends(step in any_step(), sold in any::<bool>(), failure in prop_oneof![
            Just(Failure::Unavailable), Just(Failure::Processor), Just(Failure::Busy)
        ]) {
            let mut step = step;
            for _ in 0..3 {
                let outcome = match step {
                    Step::Release { .. } => Outcome::Released,
                    Step::Refund { .. } => Outcome::Refunded,
                    Step::Commit if sold => Outcome::Committed,
                    Step::Commit => Outcome::CommitRefused,
                    _ => Outcome::Failed(failure),
                };
                step = next(step, outcome, true);
            }
            prop_assert!(step.is_final(), "{:?}", step);
        }

        #[test]
        fn backoff_never_exceeds_its_cap(attempt in 0u32..100, base in 1u64..1000, max in 1u64..10_000, jitter in 0.0f64..=1.0) {
            let max = Duration::from_millis(max.max(base));
            prop_assert!(backoff(attempt, Duration::from_millis(base), max, jitter) <= max);
        }
    }
}

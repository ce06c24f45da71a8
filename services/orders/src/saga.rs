//! The saga runner: claims unfinished sagas under a lease and advances them, one remote call at a
//! time, by the rules of [`crate::domain::saga`].
//!
//! - **Claiming.** A loop looks for due, unleased sagas at start, whenever an order is placed
//!   here, and every `recovery_interval_ms` — which is also how sagas left behind by a crashed
//!   instance (their lease lapsed) are resumed. A claim is one conditional `UPDATE` that sets a
//!   fresh owner id and `lease_until`, so among several instances on one database exactly one gets
//!   each saga.
//! - **Advancing.** Before each remote call the owner makes sure its lease outlasts the call
//!   (a lease is longer than any call can take, which config validation checks), and again once
//!   it holds what the call needs (a service token: fetched single-flight, so never waited for
//!   longer than one identity call). It renews the lease only when its last write of it is older
//!   than half the lease's margin over a call (`fresh_for`): the claim or the previous step's
//!   write, a moment ago, already covers the call, and renewing anyway cost two writing
//!   transactions per step. After the call, the next step or the failed attempt is written,
//!   each write conditional on still owning the saga and setting a fresh lease. An owner that
//!   lost its lease changes nothing and stops; since every step is idempotent at the service it
//!   calls, a call made twice across a takeover does no harm.
//! - **Retrying.** A failed step is retried after exponential backoff with full jitter, holding
//!   the lease while it waits; reserving and charging give up at the order's deadline and
//!   compensate; compensation and the commit retry until they are answered.
//! - **The deadline** is checked before every forward call (reserve, charge), not only after
//!   one: a saga resumed after its instance was down past the deadline compensates at once
//!   instead of charging late.
//! - **Committing.** After the capture the saga asks inventory to sell the held units, and waits
//!   for its answer before confirming: no order is confirmed unless its stock is committed. If
//!   the hold lapsed and the units were sold meanwhile, the order is refunded and cancelled
//!   `out_of_stock`.
//! - **Ending.** Confirming or cancelling is one transaction: the order's status, the saga's end
//!   and the event in the outbox.

use std::sync::Arc;
use std::time::Duration;

use souk_chassis::client::ServiceTokens;
use souk_chassis::events::Outbox;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use crate::clients::{Attempt, Inventory, Payments};
use crate::config::SagaConfig;
use crate::domain::saga::{backoff, next};
use crate::domain::{Failure, Order, Outcome, Step, Timestamp};
use crate::store::{SagaRow, Store, StoreError};
use crate::{events, metrics};
use souk_chassis::lifeline::Alive;

/// Advances checkout sagas. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SagaRunner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    inventory: Inventory,
    payments: Payments,
    tokens: ServiceTokens,
    outbox: Outbox,
    config: SagaConfig,
    /// How long after a write of the lease a call may still start without renewing it: half
    /// of what the lease leaves over the longest call, so a call started within it ends before
    /// the lease lapses.
    fresh_for: Duration,
    wake: Notify,
    slots: Arc<Semaphore>,
}

/// The services and settings a runner works with.
#[derive(Debug)]
pub struct SagaParts {
    /// Orders' store.
    pub store: Store,
    /// Inventory, for reserving and releasing.
    pub inventory: Inventory,
    /// Payments, for charging and refunding.
    pub payments: Payments,
    /// Service tokens for both.
    pub tokens: ServiceTokens,
    /// The outbox, woken when an order ends.
    pub outbox: Outbox,
    /// Timing.
    pub config: SagaConfig,
    /// The longest a step's remote call can take (a service token, then the call), shorter
    /// than the lease (config validation checks it).
    pub call_budget: Duration,
}

impl SagaRunner {
    /// A runner; nothing runs until [`SagaRunner::spawn`].
    pub fn new(parts: SagaParts) -> Self {
        let slots = Arc::new(Semaphore::new(parts.config.concurrency));
        let fresh_for = parts.config.lease().saturating_sub(parts.call_budget) / 2;
        Self {
            inner: Arc::new(Inner {
                store: parts.store,
                inventory: parts.inventory,
                payments: parts.payments,
                tokens: parts.tokens,
                outbox: parts.outbox,
                config: parts.config,
                fresh_for,
                wake: Notify::new(),
                slots,
            }),
        }
    }

    /// Looks for due sagas now (an order was just placed) instead of at the next interval.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Starts the claiming loop; it and every saga task stop when `alive` says the service is
    /// gone.
    pub fn spawn(&self, alive: Alive) {
        let runner = self.clone();
        tokio::spawn(async move { runner.run(alive).await });
    }

    async fn run(self, mut alive: Alive) {
        let interval = self.inner.config.recovery_interval();
        loop {
            self.start_due(&alive).await;
            tokio::select! {
                () = alive.gone() => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Claims as many due sagas as there are free slots, and starts a task for each.
    async fn start_due(&self, alive: &Alive) {
        let inner = &self.inner;
        let free = inner.slots.available_permits();
        if free == 0 {
            return;
        }
        let now = Timestamp::now();
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let due = match inner.store.due_sagas(now, limit).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot look for due sagas; will retry");
                return;
            }
        };
        for order_id in due {
            let Ok(slot) = Arc::clone(&inner.slots).try_acquire_owned() else {
                return;
            };
            let owner = Uuid::now_v7().to_string();
            let lease_until = now.plus(inner.config.lease());
            match inner
                .store
                .claim_saga(order_id, &owner, now, lease_until)
                .await
            {
                Ok(Some(saga)) => {
                    let (runner, alive) = (self.clone(), alive.clone());
                    let span = saga_span(&saga);
                    tokio::spawn(
                        async move {
                            let _slot = slot;
                            runner.drive(saga, owner, now, alive).await;
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {} // another instance claimed it first
                Err(err) => {
                    tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "cannot claim a saga; will retry");
                    return;
                }
            }
        }
    }

    /// Advances one claimed saga until it ends, loses its lease, or the service goes away.
    /// `leased_at` is when the claim's lease was counted from.
    async fn drive(&self, saga: SagaRow, owner: String, leased_at: Timestamp, mut alive: Alive) {
        let result = tokio::select! {
            result = self.advance(&saga, &owner, leased_at) => result,
            () = alive.gone() => Ok(()),
        };
        if let Err(err) = result {
            // The lease lapses and the saga is claimed again, here or elsewhere.
            tracing::warn!(error = %souk_chassis::problem::ErrorChain(&err), "saga interrupted by a storage failure; it resumes when its lease lapses");
        }
    }

    async fn advance(
        &self,
        saga: &SagaRow,
        owner: &str,
        mut leased_at: Timestamp,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let id = saga.order_id;
        let Some(order) = inner.store.order(id).await? else {
            return Err(StoreError::Corrupt {
                column: "sagas.order_id",
                reason: format!("saga of a missing order {id}"),
            });
        };
        let lease = inner.config.lease();
        let (mut step, mut attempts) = (saga.step, saga.attempts);
        // How the last forward call failed: what the deadline, once passed, gives up on.
        let mut last_failure = Failure::Unavailable;
        while !step.is_final() {
            if !self.hold_lease(id, owner, &mut leased_at).await? {
                tracing::info!(
                    step = step.name(),
                    "lost the saga's lease; another instance has it"
                );
                return Ok(());
            }
            let late = || {
                Attempt::new(
                    Outcome::Failed(last_failure),
                    "the order's deadline passed before the call",
                )
            };
            let attempt = if step.is_forward() && Timestamp::now() >= saga.deadline_at {
                late()
            } else {
                match self.prepare(step, &order).await {
                    Prepared::Settled(attempt) => attempt,
                    Prepared::Call(token) => {
                        // What the step needs is in hand, however long that took: make sure
                        // the lease still outlasts the call (renewing it if getting it took
                        // long), and that the deadline has not passed meanwhile.
                        if !self.hold_lease(id, owner, &mut leased_at).await? {
                            tracing::info!(
                                step = step.name(),
                                "lost the saga's lease while getting ready; another instance has it"
                            );
                            return Ok(());
                        }
                        if step.is_forward() && Timestamp::now() >= saga.deadline_at {
                            late()
                        } else {
                            let attempt = self
                                .call(step, &order, &token)
                                .instrument(step_span(step))
                                .await;
                            souk_chassis::crash::point(crash_point_after(step));
                            attempt
                        }
                    }
                }
            };
            if let Some(hold_until) = attempt.hold_until {
                self.check_hold(hold_until, saga.deadline_at);
            }
            let now = Timestamp::now();
            let after = next(step, attempt.outcome, now >= saga.deadline_at);
            if let Outcome::Failed(failure) = attempt.outcome {
                last_failure = failure;
            }
            if after == step {
                let next_at = self.retry_at(step, attempts, now, saga.deadline_at);
                attempts = attempts.saturating_add(1);
                let kept = inner
                    .store
                    .retry_step(
                        id,
                        owner,
                        step,
                        attempts,
                        next_at,
                        next_at.plus(lease),
                        &attempt.note,
                        now,
                    )
                    .await?;
                if !kept {
                    return Ok(());
                }
                leased_at = next_at;
                metrics::retry(step.name());
                tracing::warn!(step = step.name(), attempts, note = %attempt.note, "saga step failed; will retry");
                tokio::time::sleep(now.until(next_at)).await;
                continue;
            }
            if after.is_final() {
                return self
                    .finish(&order, owner, step, after, now)
                    .instrument(step_span(after))
                    .await;
            }
            if !inner
                .store
                .advance(id, owner, step, after, now, now.plus(lease))
                .await?
            {
                return Ok(());
            }
            leased_at = now;
            tracing::info!(from = step.name(), to = after.name(), note = %attempt.note, "saga step done");
            (step, attempts) = (after, 0);
        }
        Ok(())
    }

    /// Makes sure `owner`'s lease on saga `id` outlasts a call started now: renews it unless
    /// its last write, at `leased_at`, is within `fresh_for` (then it covers the call already).
    /// `false` if the lease was lost.
    async fn hold_lease(
        &self,
        id: Uuid,
        owner: &str,
        leased_at: &mut Timestamp,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let now = Timestamp::now();
        if now < leased_at.plus(inner.fresh_for) {
            return Ok(true);
        }
        let renewed = inner
            .store
            .renew_lease(id, owner, now.plus(inner.config.lease()))
            .await?;
        if renewed {
            *leased_at = now;
        }
        Ok(renewed)
    }

    /// When to try `step` again after its `attempts`th failure: backoff with jitter, but a
    /// forward step no later than its deadline (where it fails over to compensation).
    fn retry_at(
        &self,
        step: Step,
        attempts: u32,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Timestamp {
        let config = &self.inner.config;
        let delay = backoff(
            attempts,
            std::time::Duration::from_millis(config.retry_base_ms),
            std::time::Duration::from_millis(config.retry_max_ms),
            fastrand::f64(),
        );
        let at = now.plus(delay);
        if step.is_forward() && at > deadline {
            deadline.max(now)
        } else {
            at
        }
    }

    /// Inventory's hold must outlive the deadline plus a lease (the last forward call may start
    /// just before the deadline and take up to a lease), or a capture may find it lapsed. The
    /// commit keeps the stock right even then; this says loudly that the configuration is wrong.
    fn check_hold(&self, hold_until: Timestamp, deadline: Timestamp) {
        let needed = deadline.plus(self.inner.config.lease());
        if hold_until < needed {
            metrics::hold_too_short();
            tracing::error!(
                hold_until = %hold_until.to_rfc3339(),
                needed = %needed.to_rfc3339(),
                "inventory's hold lapses before the saga's deadline plus its lease: raise inventory's reservation_ttl_secs or lower orders' saga.deadline_secs"
            );
        }
    }

    /// What `step` needs before its remote call: a service token for the service it calls — or
    /// its outcome already, when there is nothing to call.
    async fn prepare(&self, step: Step, order: &Order) -> Prepared {
        let audience = match step {
            Step::Reserve | Step::Commit | Step::Release { .. } => "inventory",
            Step::Charge | Step::Refund { .. } => "payments",
            Step::Confirmed | Step::Cancelled(_) => {
                return Prepared::Settled(Attempt::new(
                    Outcome::Failed(Failure::Unavailable),
                    "the saga has ended",
                ));
            }
        };
        if step == Step::Charge && order.total.amount == 0 {
            return Prepared::Settled(Attempt::new(Outcome::Captured, "nothing to charge"));
        }
        match self.inner.tokens.token(audience).await {
            Ok(token) => Prepared::Call(token),
            Err(err) => Prepared::Settled(Attempt::failed(&err)),
        }
    }

    /// Makes `step`'s remote call for `order` with service token `token`.
    async fn call(&self, step: Step, order: &Order, token: &str) -> Attempt {
        let inner = &self.inner;
        match step {
            Step::Reserve => inner.inventory.reserve(token, order).await,
            Step::Commit => inner.inventory.commit(token, order.id).await,
            Step::Release { .. } => inner.inventory.release(token, order.id).await,
            Step::Charge => inner.payments.charge(token, order).await,
            Step::Refund { .. } => inner.payments.refund(token, order.id).await,
            Step::Confirmed | Step::Cancelled(_) => {
                Attempt::new(Outcome::Failed(Failure::Unavailable), "the saga has ended")
            }
        }
    }

    /// Ends the saga at `to`, with the order's status and its event, in one transaction.
    async fn finish(
        &self,
        order: &Order,
        owner: &str,
        from: Step,
        to: Step,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let event = match to {
            Step::Cancelled(reason) => events::cancelled(order, reason, now),
            _ => events::confirmed(order, now),
        };
        if !inner
            .store
            .finish_saga(order.id, owner, from, to, now, &event)
            .await?
        {
            return Ok(());
        }
        souk_chassis::crash::point("orders.after-commit-before-publish");
        inner.outbox.notify();
        match to {
            Step::Cancelled(reason) => {
                metrics::cancelled(reason);
                tracing::info!(reason = reason.as_str(), "order cancelled");
            }
            _ => {
                metrics::confirmed();
                tracing::info!("order confirmed");
            }
        }
        Ok(())
    }
}

/// What a step needs before its call, or its outcome when it needs no call.
enum Prepared {
    /// Call, with this service token.
    Call(String),
    /// Settled without a call (nothing to charge; no token to be had).
    Settled(Attempt),
}

/// The crash point (`souk_chassis::crash`) just after `step`'s remote call answered and before
/// the saga writes what came of it: the moment a crash leaves the other service ahead of orders.
fn crash_point_after(step: Step) -> &'static str {
    match step {
        Step::Reserve => "orders.after-reserve-before-persist",
        Step::Charge => "orders.after-charge-before-confirm",
        Step::Commit => "orders.after-stock-commit-before-confirm",
        Step::Release { .. } => "orders.after-release-before-persist",
        Step::Refund { .. } => "orders.after-refund-before-persist",
        Step::Confirmed | Step::Cancelled(_) => "orders.after-final-step",
    }
}

/// The span of one run of a saga: a child of the request that placed the order, so the
/// checkout and its saga are one trace.
fn saga_span(saga: &SagaRow) -> tracing::Span {
    let span = tracing::info_span!(
        "saga",
        otel.name = "saga",
        order = %saga.order_id,
        "saga.step" = saga.step.name(),
        "saga.attempts" = saga.attempts,
        "souk.service" = crate::NAME,
    );
    souk_chassis::telemetry::continue_from(&span, saga.traceparent.as_deref(), false);
    span
}

/// The span of one step's call (reserve, charge, commit, release, refund) or end (confirmed,
/// cancelled).
fn step_span(step: Step) -> tracing::Span {
    tracing::info_span!(
        "saga step",
        otel.name = %format_args!("saga {}", step.name()),
        "saga.step" = step.name(),
        "souk.service" = crate::NAME,
    )
}

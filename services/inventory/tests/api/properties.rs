//! Property tests against the real SQLite store: random sequences of set-stock, reserve, release,
//! commit, time passing and expiry give the same answers as a small model of the rules, and every
//! stock row keeps received = available + reserved + sold with nothing negative.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use souk_chassis::test_util::{Backend, TestDatabase};
use souk_inventory::domain::{Line, Lines, ReservationState, Timestamp};
use souk_inventory::store::{Lapsed, ReserveError, Store, TransitionError};
use uuid::Uuid;

const PRODUCTS: usize = 3;
const ORDERS: usize = 4;
const TTL_MS: i64 = 100;

#[derive(Debug, Clone)]
enum Op {
    SetStock {
        product: usize,
        available: i64,
    },
    Reserve {
        order: usize,
        lines: Vec<(usize, i64)>,
    },
    Release {
        order: usize,
    },
    Commit {
        order: usize,
        retake: bool,
    },
    Wait {
        ms: i64,
    },
    ExpireDue,
}

fn op() -> impl Strategy<Value = Op> {
    let lines = proptest::collection::btree_map(0..PRODUCTS, 1..4i64, 1..=PRODUCTS)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>());
    prop_oneof![
        1 => (0..PRODUCTS, 0..8i64).prop_map(|(product, available)| Op::SetStock { product, available }),
        3 => (0..ORDERS, lines).prop_map(|(order, lines)| Op::Reserve { order, lines }),
        2 => (0..ORDERS).prop_map(|order| Op::Release { order }),
        2 => (0..ORDERS, any::<bool>()).prop_map(|(order, retake)| Op::Commit { order, retake }),
        1 => (0..150i64).prop_map(|ms| Op::Wait { ms }),
        1 => Just(Op::ExpireDue),
    ]
}

/// What a step answered, reduced to what the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done(ReservationState),
    Replayed(ReservationState),
    OutOfStock,
    Conflict(ReservationState),
    NotFound,
    Expired(u64),
    Set,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Row {
    available: i64,
    reserved: i64,
    sold: i64,
    received: i64,
}

#[derive(Debug, Clone)]
struct Order {
    state: ReservationState,
    expires_at: Option<i64>,
    lines: Vec<(usize, i64)>,
}

/// The rules, as plainly as they can be written.
#[derive(Debug, Default)]
struct Model {
    stock: [Row; PRODUCTS],
    orders: HashMap<usize, Order>,
    now: i64,
}

impl Model {
    fn give_back(&mut self, order: usize, to: ReservationState) {
        let held = self.orders.get_mut(&order).unwrap();
        held.state = to;
        for &(p, q) in &held.lines.clone() {
            self.stock[p].available += q;
            self.stock[p].reserved -= q;
        }
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        use ReservationState::*;
        match op {
            Op::SetStock { product, available } => {
                let row = &mut self.stock[*product];
                row.received += available - row.available;
                row.available = *available;
                Outcome::Set
            }
            Op::Reserve { order, lines } => {
                if let Some(held) = self.orders.get(order) {
                    return if held.lines == *lines {
                        Outcome::Replayed(held.state)
                    } else {
                        Outcome::Conflict(held.state)
                    };
                }
                if lines.iter().any(|&(p, q)| self.stock[p].available < q) {
                    return Outcome::OutOfStock;
                }
                for &(p, q) in lines {
                    self.stock[p].available -= q;
                    self.stock[p].reserved += q;
                }
                let expires_at = Some(self.now + TTL_MS);
                self.orders.insert(
                    *order,
                    Order {
                        state: Held,
                        expires_at,
                        lines: lines.clone(),
                    },
                );
                Outcome::Done(Held)
            }
            Op::Release { order } => match self.orders.get(order).map(|h| h.state) {
                None => {
                    self.orders.insert(
                        *order,
                        Order {
                            state: Released,
                            expires_at: None,
                            lines: vec![],
                        },
                    );
                    Outcome::Done(Released)
                }
                Some(Held) => {
                    self.give_back(*order, Released);
                    Outcome::Done(Released)
                }
                Some(Committed) => Outcome::Conflict(Committed),
                Some(Expired) => {
                    self.orders.get_mut(order).unwrap().state = Released;
                    Outcome::Done(Released)
                }
                Some(state) => Outcome::Done(state),
            },
            Op::Commit { order, retake } => {
                let Some(mut held) = self.orders.get(order).cloned() else {
                    return Outcome::NotFound;
                };
                if held.state == Held && held.expires_at.is_some_and(|at| at <= self.now) {
                    self.give_back(*order, Expired);
                    held.state = Expired;
                }
                match held.state {
                    Expired if *retake => {
                        if held.lines.iter().any(|&(p, q)| self.stock[p].available < q) {
                            return Outcome::OutOfStock;
                        }
                        for &(p, q) in &held.lines {
                            self.stock[p].available -= q;
                            self.stock[p].sold += q;
                        }
                        self.orders.get_mut(order).unwrap().state = Committed;
                        Outcome::Done(Committed)
                    }
                    Held => {
                        self.orders.get_mut(order).unwrap().state = Committed;
                        for &(p, q) in &held.lines {
                            self.stock[p].reserved -= q;
                            self.stock[p].sold += q;
                        }
                        Outcome::Done(Committed)
                    }
                    Committed => Outcome::Done(Committed),
                    state => Outcome::Conflict(state),
                }
            }
            Op::Wait { ms } => {
                self.now += ms;
                Outcome::Set
            }
            Op::ExpireDue => {
                let due: Vec<usize> = self
                    .orders
                    .iter()
                    .filter(|(_, h)| {
                        h.state == Held && h.expires_at.is_some_and(|at| at <= self.now)
                    })
                    .map(|(o, _)| *o)
                    .collect();
                for order in &due {
                    self.give_back(*order, Expired);
                }
                Outcome::Expired(due.len() as u64)
            }
        }
    }
}

/// One case's products and orders in the shared store, with fresh ids.
struct Case<'a> {
    store: &'a Store,
    products: Vec<(Uuid, String)>,
    orders: Vec<Uuid>,
    start: i64,
}

impl Case<'_> {
    fn now(&self, model: &Model) -> Timestamp {
        Timestamp::from_millis(self.start + model.now)
    }

    async fn apply(&self, op: &Op, model: &Model) -> Outcome {
        let now = self.now(model);
        match op {
            Op::SetStock { product, available } => {
                let (_, sku) = &self.products[*product];
                self.store
                    .set_available(sku, *available, now)
                    .await
                    .unwrap()
                    .unwrap();
                Outcome::Set
            }
            Op::Reserve { order, lines } => {
                let lines = Lines::new(
                    lines
                        .iter()
                        .map(|&(p, quantity)| Line {
                            product_id: self.products[p].0,
                            quantity,
                        })
                        .collect(),
                )
                .unwrap();
                let expires_at = now.plus(Duration::from_millis(TTL_MS as u64));
                match self
                    .store
                    .reserve(self.orders[*order], &lines, expires_at, now)
                    .await
                {
                    Ok(r) if r.created => Outcome::Done(r.reservation.state),
                    Ok(r) => Outcome::Replayed(r.reservation.state),
                    Err(ReserveError::OutOfStock(_)) => Outcome::OutOfStock,
                    Err(ReserveError::Conflict(r)) => Outcome::Conflict(r.state),
                    Err(ReserveError::Store(err)) => panic!("{err}"),
                }
            }
            Op::Release { order } => transition(self.store.release(self.orders[*order], now).await),
            Op::Commit { order, retake } => {
                let lapsed = if *retake {
                    Lapsed::TakeAgain
                } else {
                    Lapsed::Refuse
                };
                transition(self.store.commit(self.orders[*order], now, lapsed).await)
            }
            Op::Wait { .. } => Outcome::Set,
            Op::ExpireDue => Outcome::Expired(self.store.expire_due(now, 100).await.unwrap()),
        }
    }

    async fn check(&self, model: &Model) -> Result<(), TestCaseError> {
        for (n, (id, _)) in self.products.iter().enumerate() {
            let stock = self.store.stock(*id).await.unwrap().unwrap();
            prop_assert!(stock.is_consistent(), "{stock:?}");
            let row = Row {
                available: stock.available,
                reserved: stock.reserved,
                sold: stock.sold,
                received: stock.received,
            };
            prop_assert_eq!(row, model.stock[n]);
        }
        Ok(())
    }
}

fn transition(result: Result<souk_inventory::domain::Reservation, TransitionError>) -> Outcome {
    match result {
        Ok(r) => Outcome::Done(r.state),
        Err(TransitionError::NotFound) => Outcome::NotFound,
        Err(TransitionError::OutOfStock(_)) => Outcome::OutOfStock,
        Err(TransitionError::Conflict(r)) => Outcome::Conflict(r.state),
        Err(TransitionError::Store(err)) => panic!("{err}"),
    }
}

/// Runs in its own runtime: proptest's runner is synchronous. Each case gets a fresh database, so
/// the expiry of one case never sees another's holds.
#[test]
fn random_operations_match_the_model_and_keep_the_invariant() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(0..6i64, PRODUCTS),
        proptest::collection::vec(op(), 1..40),
    );
    let result = runner.run(&strategy, |(initial, ops)| {
        runtime.block_on(async {
            let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
            let store = Store::open(&db.config).await.unwrap();
            let case = Case {
                store: &store,
                products: (0..PRODUCTS)
                    .map(|_| {
                        let id = Uuid::now_v7();
                        (id, format!("P-{}", id.simple()))
                    })
                    .collect(),
                orders: (0..ORDERS).map(|_| Uuid::now_v7()).collect(),
                start: Timestamp::now().millis(),
            };
            let mut model = Model::default();
            for (n, (id, sku)) in case.products.iter().enumerate() {
                store
                    .add_product(*id, sku, initial[n], case.now(&model))
                    .await
                    .unwrap();
                model.stock[n] = Row {
                    available: initial[n],
                    received: initial[n],
                    ..Row::default()
                };
            }
            for op in &ops {
                let got = case.apply(op, &model).await;
                let expected = model.apply(op);
                prop_assert_eq!(got, expected, "{:?}", op);
                case.check(&model).await?;
            }
            store.database().close().await;
            Ok(())
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

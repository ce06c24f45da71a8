//! Reservations: the lines an order holds and the state machine they move through.
//!
//! ```text
//!            commit              release
//! committed <────── held ──────────────> released
//!     ^              │ expires_at passes     ^
//!     │              └──────────────────> expired
//!     │  the saga's commit, if the units     │ release
//!     └──── are still on sale ───────────────┘ (final: units went back at expiry)
//! ```
//! Every step is idempotent: repeating the step that was taken is a no-op, taking another step
//! from a final state is refused. Releasing an order inventory never saw leaves a `released`
//! tombstone, so a reservation that arrives after its order was cancelled is refused. An
//! `expired` hold is not quite final: the checkout saga's commit may still sell it from the
//! units on sale (a capture that came late), until a release makes it `released`.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// Most units of one product a line may hold.
pub const MAX_LINE_QUANTITY: i64 = 99;
/// Most lines one reservation may have.
pub const MAX_LINES: usize = 100;

/// One product and how many units of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
pub struct Line {
    /// The product (catalog id).
    pub product_id: Uuid,
    /// Units, 1 to 99.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: i64,
}

/// The lines of a reservation: 1 to 100, each product once, each quantity 1 to 99. Kept sorted
/// by product id, which is also the order rows are locked in, so two reservations never wait on
/// each other in opposite orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<Line>);

/// Why lines were refused; `index` is the position in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    /// No lines, or more than [`MAX_LINES`].
    #[error("must hold 1 to {MAX_LINES} lines (got {0})")]
    Count(usize),
    /// A quantity outside 1..=99.
    #[error("must be 1 to {MAX_LINE_QUANTITY}")]
    Quantity {
        /// Which line.
        index: usize,
    },
    /// A product named twice: the caller merges its own lines.
    #[error("this product is already on line {first}")]
    Duplicate {
        /// Which line.
        index: usize,
        /// The line that named it first.
        first: usize,
    },
}

impl Lines {
    /// Validates lines as a caller sent them. Every invalid line is reported.
    pub fn new(lines: Vec<Line>) -> Result<Self, Vec<LinesError>> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(vec![LinesError::Count(lines.len())]);
        }
        let mut errors = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (index, line) in lines.iter().enumerate() {
            if !(1..=MAX_LINE_QUANTITY).contains(&line.quantity) {
                errors.push(LinesError::Quantity { index });
            }
            if let Some(&first) = seen.get(&line.product_id) {
                errors.push(LinesError::Duplicate { index, first });
            } else {
                seen.insert(line.product_id, index);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut lines = lines;
        lines.sort();
        Ok(Self(lines))
    }

    /// Lines read back from the store, trusted as written (sorted here all the same).
    pub fn stored(mut lines: Vec<Line>) -> Self {
        lines.sort();
        Self(lines)
    }

    /// The lines, by product id.
    pub fn as_slice(&self) -> &[Line] {
        &self.0
    }
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationState {
    /// Units are set aside for the order.
    Held,
    /// The order was cancelled; units went back on sale (or it never held any: a tombstone).
    Released,
    /// The order was confirmed; units are sold.
    Committed,
    /// Nobody confirmed or cancelled in time; units went back on sale.
    Expired,
}

/// What a step does from a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take it: the state changes and units move.
    Apply,
    /// It was taken before: answer as it stands, change nothing.
    AlreadyDone,
    /// Not from here: the reservation reached another final state.
    Refused,
}

impl ReservationState {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Released => "released",
            Self::Committed => "committed",
            Self::Expired => "expired",
        }
    }

    /// Reads a stored state.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Held, Self::Released, Self::Committed, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == value)
    }

    /// Releasing (the order was cancelled): from `held`; `released` and `expired` already gave
    /// their units back; a sale cannot be undone here.
    pub fn release(self) -> Step {
        match self {
            Self::Held => Step::Apply,
            Self::Released | Self::Expired => Step::AlreadyDone,
            Self::Committed => Step::Refused,
        }
    }

    /// Committing (the order was confirmed): only a hold becomes a sale.
    pub fn commit(self) -> Step {
        match self {
            Self::Held => Step::Apply,
            Self::Committed => Step::AlreadyDone,
            Self::Released | Self::Expired => Step::Refused,
        }
    }
}

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The order it is for.
    pub order_id: Uuid,
    /// Where it stands.
    pub state: ReservationState,
    /// When a hold lapses; `None` for a tombstone, which never held anything.
    pub expires_at: Option<Timestamp>,
    /// What it holds (or held).
    pub lines: Lines,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u128, quantity: i64) -> Line {
        Line {
            product_id: Uuid::from_u128(n),
            quantity,
        }
    }

    #[test]
    fn lines_are_bounded_unique_and_sorted() {
        let lines = Lines::new(vec![line(2, 1), line(1, 99)]).unwrap();
        assert_eq!(lines.as_slice(), &[line(1, 99), line(2, 1)]);
        assert_eq!(Lines::new(vec![]), Err(vec![LinesError::Count(0)]));
        let many = (0..101).map(|n| line(n, 1)).collect();
        assert_eq!(Lines::new(many), Err(vec![LinesError::Count(101)]));
        let bad = Lines::new(vec![line(1, 0), line(2, 100), line(1, 5)]).unwrap_err();
        assert_eq!(
            bad,
            vec![
                LinesError::Quantity { index: 0 },
                LinesError::Quantity { index: 1 },
                LinesError::Duplicate { index: 2, first: 0 },
            ]
        );
    }

    #[test]
    fn steps_repeat_as_no_ops_and_final_states_refuse_the_other_step() {
        use ReservationState::*;
        assert_eq!(Held.release(), Step::Apply);
        assert_eq!(Held.commit(), Step::Apply);
        assert_eq!(Released.release(), Step::AlreadyDone);
        assert_eq!(Expired.release(), Step::AlreadyDone);
        assert_eq!(Committed.commit(), Step::AlreadyDone);
        assert_eq!(Committed.release(), Step::Refused);
        assert_eq!(Released.commit(), Step::Refused);
        assert_eq!(Expired.commit(), Step::Refused);
        for state in [Held, Released, Committed, Expired] {
            assert_eq!(ReservationState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ReservationState::parse("HELD"), None);
    }
}

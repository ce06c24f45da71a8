//! The simulated card processor: a card vault, charges and refunds, behaving as a real
//! processor's API does for the shop's test cards.
//!
//! It stands for an external system. Its tables (`processor_*`, see
//! `migrations/0002_processor.sql`) share payments' database only because a laptop has one; in
//! production they are the processor's, and payments would hold nothing but its tokens. This
//! module is the only code that reads them, and the vault is the only place a card number rests —
//! sealed (chassis `seal`, bound to its token) with `vault_key`/`vault_key_file`, which live
//! outside the database. It approves any Luhn-valid card: `simulated = false` (the production
//! overlay) keeps it from running at all.
//!
//! Like a real processor it is idempotent: a charge or refund names an idempotency key, and asking
//! again with that key returns the first result instead of charging twice. That is what makes a
//! retry after a crash safe, whatever payments had or had not recorded before it died.
//!
//! Test cards (any other Luhn-valid number is approved):
//! - `4000000000000002`: declined, `card_declined`;
//! - `4000000000009995`: declined, `insufficient_funds`;
//! - `4000000000000119`: the processor fails every time (retryable; nothing is recorded).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use souk_chassis::Database;
use souk_chassis::on_pool;
use souk_chassis::seal::Sealer;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{CardNumber, ChargeOutcome, Currency, DeclineCode, Money, Timestamp};

/// The test cards with an outcome other than approval.
pub mod test_cards {
    /// Declined with `card_declined`.
    pub const DECLINED: &str = "4000000000000002";
    /// Declined with `insufficient_funds`.
    pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
    /// The processor fails (retryable), every time.
    pub const PROCESSOR_ERROR: &str = "4000000000000119";
}

/// How the simulated processor behaves (`[payments.processor]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Added to every call, as a network round trip to a real processor would be.
    pub latency_ms: u64,
    /// Share of charges, 0 to 100, that fail with a retryable processor error (for chaos runs).
    pub failure_percent: u8,
    /// Whether to run the simulated processor at all. It approves every Luhn-valid card and
    /// keeps card numbers in a vault of its own: for development and demonstrations, never for
    /// taking money. With `false` payments refuses to start (souk has no real processor yet):
    /// the production overlay says so.
    pub simulated: bool,
    /// The secret that seals the vault's card numbers (32+ characters; from a Secret in a
    /// deployment: `SOUK_PAYMENTS__PROCESSOR__VAULT_KEY`). Empty: read from `vault_key_file`.
    pub vault_key: souk_chassis::Secret,
    /// A file holding that secret, made (`0600`, random) when missing.
    pub vault_key_file: String,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            failure_percent: 0,
            simulated: true,
            vault_key: souk_chassis::Secret::default(),
            vault_key_file: ".souk/payments-vault.key".into(),
        }
    }
}

/// What the vault's sealing key is derived for (chassis `seal`).
pub const VAULT_PURPOSE: &str = "souk simulated processor vault";

/// A charge as the processor recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// `ch_…`.
    pub id: String,
    /// The card token charged.
    pub token: String,
    /// How much.
    pub amount: Money,
    /// Approved (captured) or declined.
    pub outcome: ChargeOutcome,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A refund as the processor recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorRefund {
    /// `re_…`.
    pub id: String,
    /// The charge refunded, in full.
    pub charge_id: String,
}

/// Why the processor did not answer with a result.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// It failed before charging anything: the same call may succeed later.
    #[error("the processor is unavailable")]
    Unavailable,
    /// The token names no card in the vault.
    #[error("unknown card token")]
    UnknownToken,
    /// The idempotency key was used before for a different charge.
    #[error("idempotency key {key} was used for another charge")]
    KeyReused {
        /// The key.
        key: String,
    },
    /// The charge to refund does not exist or was declined.
    #[error("charge {charge_id} cannot be refunded")]
    NotRefundable {
        /// The charge.
        charge_id: String,
    },
    /// Its storage failed.
    #[error("the processor's storage failed")]
    Storage(#[from] sqlx::Error),
    /// A vault entry could not be sealed or opened (the wrong vault key, say).
    #[error("the processor's vault failed: {0}")]
    Vault(String),
}

/// A handle on the simulated processor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Processor {
    db: Database,
    latency: Duration,
    failure_percent: u8,
    charge_calls: Arc<AtomicU64>,
    /// Seals card numbers in the vault: a copy of the database holds none in the clear.
    sealer: Sealer,
}

impl Processor {
    /// The processor, keeping its records in `db`, its vault sealed by `sealer`.
    pub fn new(db: Database, config: &ProcessorConfig, sealer: Sealer) -> Self {
        Self {
            db,
            latency: Duration::from_millis(config.latency_ms),
            failure_percent: config.failure_percent,
            charge_calls: Arc::new(AtomicU64::new(0)),
            sealer,
        }
    }

    /// Seals the card numbers an older version kept in the clear; returns how many.
    pub async fn seal_plain_cards(&self) -> Result<u64, ProcessorError> {
        let sql =
            "SELECT token, card_number FROM processor_vault WHERE card_number NOT LIKE 'sealed:%'";
        let plain: Vec<(String, String)> =
            on_pool!(&self.db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        for (token, number) in &plain {
            let sealed = self.seal(number, token)?;
            let _turn = self.db.write_turn().await?;
            on_pool!(&self.db, |pool| sqlx::query(
                "UPDATE processor_vault SET card_number = $1 WHERE token = $2"
            )
            .bind(&sealed)
            .bind(token)
            .execute(pool)
            .await?
            .rows_affected());
        }
        Ok(plain.len() as u64)
    }

    fn seal(&self, number: &str, token: &str) -> Result<String, ProcessorError> {
        self.sealer
            .seal(number.as_bytes(), token)
            .map_err(|e| ProcessorError::Vault(e.to_string()))
    }

    /// Keeps `card` in the vault and returns the token that stands for it from now on.
    pub async fn tokenize(
        &self,
        card: &CardNumber,
        now: Timestamp,
    ) -> Result<String, ProcessorError> {
        self.round_trip().await;
        let token = format!("tok_{}", Uuid::now_v7().simple());
        let sql =
            "INSERT INTO processor_vault (token, card_number, created_at) VALUES ($1, $2, $3)";
        let sealed = self.seal(card.digits(), &token)?;
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(&token)
            .bind(&sealed)
            .bind(now.millis())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(token)
    }

    /// Authorises and captures `amount` on the card behind `token`, once per `key`: a repeated
    /// key returns the first charge (approved or declined) without charging again.
    pub async fn charge(
        &self,
        key: &str,
        token: &str,
        amount: &Money,
        now: Timestamp,
    ) -> Result<Charge, ProcessorError> {
        self.charge_calls.fetch_add(1, Ordering::Relaxed);
        self.round_trip().await;
        if self.failure_percent > 0 && fastrand::u8(0..100) < self.failure_percent {
            return Err(ProcessorError::Unavailable);
        }
        if let Some(charge) = self.find_charge(key).await? {
            return same_charge(key, charge, token, amount);
        }
        let outcome = match self.card_number(token).await?.as_str() {
            test_cards::PROCESSOR_ERROR => return Err(ProcessorError::Unavailable),
            test_cards::DECLINED => ChargeOutcome::Declined(DeclineCode::CardDeclined),
            test_cards::INSUFFICIENT_FUNDS => {
                ChargeOutcome::Declined(DeclineCode::InsufficientFunds)
            }
            _ => ChargeOutcome::Captured,
        };
        let (outcome_name, decline_code) = match outcome {
            ChargeOutcome::Captured => ("approved", None),
            ChargeOutcome::Declined(code) => ("declined", Some(code.as_str())),
        };
        let sql = "INSERT INTO processor_charges \
             (idempotency_key, charge_id, token, amount, currency, outcome, decline_code, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING";
        let _turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(key)
            .bind(format!("ch_{}", Uuid::now_v7().simple()))
            .bind(token)
            .bind(amount.amount)
            .bind(amount.currency.as_str())
            .bind(outcome_name)
            .bind(decline_code)
            .bind(now.millis())
            .execute(pool)
            .await?
            .rows_affected());
        // Whoever inserted first, the stored charge is the answer.
        let charge = self.find_charge(key).await?.ok_or_else(|| {
            ProcessorError::Storage(sqlx::Error::Protocol("a stored charge vanished".into()))
        })?;
        same_charge(key, charge, token, amount)
    }

    /// The charge made under `key`, if any.
    pub async fn find_charge(&self, key: &str) -> Result<Option<Charge>, ProcessorError> {
        let sql = "SELECT * FROM processor_charges WHERE idempotency_key = $1";
        on_pool!(&self.db, |pool| {
            let row = sqlx::query(sql).bind(key).fetch_optional(pool).await?;
            row.as_ref().map(charge_from_row).transpose()
        })
    }

    /// Refunds approved charge `charge_id` in full, once per `key`.
    pub async fn refund(
        &self,
        key: &str,
        charge_id: &str,
        now: Timestamp,
    ) -> Result<ProcessorRefund, ProcessorError> {
        self.round_trip().await;
        if let Some(refund) = self.find_refund(key).await? {
            return Ok(refund);
        }
        let sql = "INSERT INTO processor_refunds (idempotency_key, refund_id, charge_id, amount, created_at) \
             SELECT $1, $2, charge_id, amount, $3 FROM processor_charges \
             WHERE charge_id = $4 AND outcome = 'approved' \
             ON CONFLICT DO NOTHING";
        let turn = self.db.write_turn().await?;
        on_pool!(&self.db, |pool| sqlx::query(sql)
            .bind(key)
            .bind(format!("re_{}", Uuid::now_v7().simple()))
            .bind(now.millis())
            .bind(charge_id)
            .execute(pool)
            .await?
            .rows_affected());
        drop(turn);
        match self.find_refund(key).await? {
            Some(refund) if refund.charge_id == charge_id => Ok(refund),
            _ => Err(ProcessorError::NotRefundable {
                charge_id: charge_id.to_owned(),
            }),
        }
    }

    /// How many charge calls reached the processor since it was created (replays included):
    /// what tests count to show that duplicates stop before it.
    pub fn charge_calls(&self) -> u64 {
        self.charge_calls.load(Ordering::Relaxed)
    }

    async fn round_trip(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// The vault's number for `token`: the one read of a card number in the shop.
    async fn card_number(&self, token: &str) -> Result<String, ProcessorError> {
        let sql = "SELECT card_number FROM processor_vault WHERE token = $1";
        let stored: Option<String> = on_pool!(&self.db, |pool| sqlx::query_scalar(sql)
            .bind(token)
            .fetch_optional(pool)
            .await?);
        let stored = stored.ok_or(ProcessorError::UnknownToken)?;
        if !souk_chassis::seal::is_sealed(&stored) {
            return Ok(stored);
        }
        let opened = self
            .sealer
            .open(&stored, token)
            .map_err(|e| ProcessorError::Vault(e.to_string()))?;
        String::from_utf8(opened).map_err(|e| ProcessorError::Vault(e.to_string()))
    }

    async fn find_refund(&self, key: &str) -> Result<Option<ProcessorRefund>, ProcessorError> {
        let sql = "SELECT refund_id, charge_id FROM processor_refunds WHERE idempotency_key = $1";
        let row: Option<(String, String)> = on_pool!(&self.db, |pool| sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(id, charge_id)| ProcessorRefund { id, charge_id }))
    }
}

/// A charge found under `key` answers a call only if the call asks for the same thing.
fn same_charge(
    key: &str,
    charge: Charge,
    token: &str,
    amount: &Money,
) -> Result<Charge, ProcessorError> {
    if charge.token == token && charge.amount == *amount {
        Ok(charge)
    } else {
        Err(ProcessorError::KeyReused {
            key: key.to_owned(),
        })
    }
}

fn charge_from_row<'r, R>(row: &'r R) -> Result<Charge, ProcessorError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let corrupt = |what: &str| {
        ProcessorError::Storage(sqlx::Error::Protocol(format!(
            "processor_charges holds an invalid {what}"
        )))
    };
    let currency: String = row.try_get("currency")?;
    let currency = Currency::parse(&currency).map_err(|_| corrupt("currency"))?;
    let amount =
        Money::positive(row.try_get("amount")?, currency).map_err(|_| corrupt("amount"))?;
    let outcome: String = row.try_get("outcome")?;
    let decline_code: Option<String> = row.try_get("decline_code")?;
    let outcome = match (
        outcome.as_str(),
        decline_code.as_deref().map(DeclineCode::parse),
    ) {
        ("approved", None) => ChargeOutcome::Captured,
        ("declined", Some(Some(code))) => ChargeOutcome::Declined(code),
        _ => return Err(corrupt("outcome")),
    };
    Ok(Charge {
        id: row.try_get("charge_id")?,
        token: row.try_get("token")?,
        amount,
        outcome,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

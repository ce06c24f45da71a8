//! Carts in Redis: one hash per cart, `<prefix><user id>`, field = product id, value =
//! `<quantity>:<added>:<changed>` (`added` orders the lines: Unix milliseconds, made unique
//! within the cart; `changed` is when the line was last set, so that a confirmed order removes
//! only lines not changed since it was placed). Values written before `changed` existed
//! (`<quantity>:<added>`) read as changed when added. Every write refreshes the key's TTL, so an
//! abandoned cart expires by itself.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use futures::future::BoxFuture;
use uuid::Uuid;

use super::{OpenError, SetError, StoreError, now_ms};
use crate::domain::{Line, MAX_LINES, Quantity};

/// Adds or replaces a line, refusing a new one when the cart is full; atomic, as Redis runs a
/// script alone. KEYS[1]: the cart. ARGV: product id, quantity, now (ms), most lines, TTL (s).
/// Returns 1 when set, 0 when the cart is full.
const SET_LINE: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
local added
if current then
  added = string.match(current, '^%d+:(%d+)') or ARGV[3]
else
  local values = redis.call('HVALS', KEYS[1])
  if #values >= tonumber(ARGV[4]) then
    return 0
  end
  added = tonumber(ARGV[3])
  for _, value in ipairs(values) do
    local other = tonumber(string.match(value, '^%d+:(%d+)'))
    if other and other >= added then
      added = other + 1
    end
  end
  added = string.format('%d', added)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. added .. ':' .. ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Removes a line unless it changed after a time; atomic. KEYS[1]: the cart. ARGV: product id,
/// the time (ms), TTL (s). Returns 1 when removed.
const REMOVE_UNCHANGED: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  return 0
end
local changed = tonumber(string.match(current, '^%d+:%d+:(%d+)$') or string.match(current, '^%d+:(%d+)$'))
if changed and changed > tonumber(ARGV[2]) then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// How long connecting to Redis, or one command, may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis cart store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    ttl_secs: i64,
    set_line: Script,
    remove_unchanged: Script,
}

impl RedisStore {
    /// Connects to `url`; keys are `<prefix><user id>` and expire `abandoned_after` after their
    /// last change.
    pub(super) async fn open(
        url: &str,
        prefix: &str,
        abandoned_after: Duration,
    ) -> Result<Self, OpenError> {
        let client = Client::open(url).map_err(OpenError::Redis)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(OpenError::Redis)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            ttl_secs: i64::try_from(abandoned_after.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
            set_line: Script::new(SET_LINE),
            remove_unchanged: Script::new(REMOVE_UNCHANGED),
        })
    }

    fn key(&self, user: &str) -> String {
        format!("{}{user}", self.prefix)
    }

    pub(super) async fn lines(&self, user: &str) -> Result<Vec<Line>, StoreError> {
        let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(self.key(user))
            .query_async(&mut self.conn.clone())
            .await?;
        let mut lines = fields
            .iter()
            .map(|(field, value)| parse_line(field, value))
            .collect::<Result<Vec<_>, _>>()?;
        lines.sort_by_key(|&(added, line)| (added, line.product_id));
        Ok(lines.into_iter().map(|(_, line)| line).collect())
    }

    pub(super) async fn set(&self, user: &str, line: Line) -> Result<(), SetError> {
        let set: i64 = self
            .set_line
            .key(self.key(user))
            .arg(line.product_id.to_string())
            .arg(line.quantity.get())
            .arg(now_ms())
            .arg(MAX_LINES)
            .arg(self.ttl_secs)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::from)?;
        if set == 0 {
            return Err(SetError::Full);
        }
        Ok(())
    }

    pub(super) async fn remove(&self, user: &str, product: Uuid) -> Result<(), StoreError> {
        let key = self.key(user);
        ::redis::pipe()
            .atomic()
            .cmd("HDEL")
            .arg(&key)
            .arg(product.to_string())
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.ttl_secs)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    pub(super) async fn remove_unchanged_since(
        &self,
        user: &str,
        product: Uuid,
        since: i64,
    ) -> Result<(), StoreError> {
        self.remove_unchanged
            .key(self.key(user))
            .arg(product.to_string())
            .arg(since)
            .arg(self.ttl_secs)
            .invoke_async::<i64>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    pub(super) async fn clear(&self, user: &str) -> Result<(), StoreError> {
        ::redis::cmd("DEL")
            .arg(self.key(user))
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The readiness check's name.
    pub(super) fn name(&self) -> &str {
        "redis"
    }

    /// Readiness: Redis answers a PING.
    pub(super) fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            ::redis::cmd("PING")
                .query_async::<String>(&mut self.conn.clone())
                .await
                .map(drop)
                .map_err(|err| err.to_string())
        })
    }
}

/// One hash field and value: the line and when it was first added.
fn parse_line(field: &str, value: &str) -> Result<(i64, Line), StoreError> {
    let corrupt = |what: &'static str| StoreError::Corrupt {
        what,
        reason: format!("{field} = {value:?}"),
    };
    let product_id = Uuid::parse_str(field).map_err(|_| corrupt("product id"))?;
    let (quantity, times) = value.split_once(':').ok_or_else(|| corrupt("line"))?;
    // `<added>:<changed>`, or `<added>` as written before lines kept their change time.
    let added = times.split_once(':').map_or(times, |(added, _)| added);
    let quantity = quantity
        .parse::<i64>()
        .ok()
        .and_then(|q| Quantity::new(q).ok())
        .ok_or_else(|| corrupt("quantity"))?;
    let added = added.parse::<i64>().map_err(|_| corrupt("added time"))?;
    Ok((
        added,
        Line {
            product_id,
            quantity,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_read_or_called_corrupt() {
        let id = Uuid::now_v7();
        let (added, line) = parse_line(&id.to_string(), "3:1700000000000").unwrap();
        assert_eq!(added, 1_700_000_000_000);
        assert_eq!((line.product_id, line.quantity.get()), (id, 3));
        let (added, line) = parse_line(&id.to_string(), "4:1700000000000:1700000009999").unwrap();
        assert_eq!((added, line.quantity.get()), (1_700_000_000_000, 4));
        for bad in ["3", "0:1", "100:1", "x:1", "3:x", "", "3:x:1"] {
            assert!(parse_line(&id.to_string(), bad).is_err(), "{bad}");
        }
        assert!(parse_line("not-a-uuid", "1:1").is_err());
    }
}

//! List conventions shared by every service: `limit` (default 20, 1..=100) and an opaque `cursor`.
//!
//! A cursor is base64url-encoded JSON of whatever position the service needs (a keyset or an
//! offset); clients must treat it as opaque. A bad limit or a cursor that does not decode is a 400;
//! an empty one is no cursor (what a form or a generated client sends for "none").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// Page size when the client names none.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 100;

/// Validates a requested page size.
pub fn limit(requested: Option<u32>) -> Result<u32, Problem> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_query(vec![FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )])),
    }
}

/// Encodes a position as an opaque cursor.
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    // Serialising plain position structs cannot fail; an empty cursor would only end the list early.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// The position `cursor` names: `None` for none (absent or empty), a 400 when it does not decode.
pub fn position<T: DeserializeOwned>(cursor: Option<&str>) -> Result<Option<T>, Problem> {
    cursor
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, Problem> {
    let invalid = || {
        Problem::invalid_query(vec![FieldError::new(
            "cursor",
            "is not a cursor this service issued",
        )])
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(limit(None).unwrap(), 20);
        assert_eq!(limit(Some(1)).unwrap(), 1);
        assert_eq!(limit(Some(100)).unwrap(), 100);
        assert_eq!(limit(Some(0)).unwrap_err().status, 400);
        assert_eq!(limit(Some(1_000_000)).unwrap_err().status, 400);
    }

    #[test]
    fn an_empty_cursor_is_none() {
        assert_eq!(position::<u32>(None).unwrap(), None);
        assert_eq!(position::<u32>(Some("")).unwrap(), None);
        assert_eq!(position::<u32>(Some(&encode_cursor(&7))).unwrap(), Some(7));
        assert_eq!(position::<u32>(Some("%")).unwrap_err().status, 400);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(&("Mug", 7));
        assert_eq!(
            decode_cursor::<(String, i32)>(&cursor).unwrap(),
            ("Mug".to_owned(), 7)
        );
        assert_eq!(
            decode_cursor::<(String, i32)>("%%%").unwrap_err().status,
            400
        );
        assert_eq!(
            decode_cursor::<(String, i32)>(&encode_cursor(&"x"))
                .unwrap_err()
                .status,
            400
        );
    }
}

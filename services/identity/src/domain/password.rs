//! Password policy (NIST SP 800-63B): long enough, not absurdly long, not a known common password,
//! not the email address. No composition rules: length is what makes a password strong.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have (hashing cost is bounded by the body limit anyway).
pub const MAX_CHARS: usize = 1024;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A password that passed the policy. It never prints.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than 12 or more than 1024 characters.
    #[error("must be {MIN_CHARS} to {MAX_CHARS} characters")]
    Length,
    /// On the list of common passwords.
    #[error("is too common: it appears in lists of breached passwords")]
    Common,
    /// The same as the email address.
    #[error("must not be your email address")]
    SameAsEmail,
}

impl Password {
    /// Checks a new password for an account with `email`.
    pub fn new(raw: &str, email: &str) -> Result<Self, PasswordError> {
        let chars = raw.chars().count();
        if !(MIN_CHARS..=MAX_CHARS).contains(&chars) {
            return Err(PasswordError::Length);
        }
        let lowered = raw.to_lowercase();
        if COMMON.contains(lowered.as_str()) {
            return Err(PasswordError::Common);
        }
        if lowered == email.to_lowercase() {
            return Err(PasswordError::SameAsEmail);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn length_common_and_email_rules_apply() {
        assert_eq!(
            Password::new("short", "a@b.co").unwrap_err(),
            PasswordError::Length
        );
        assert_eq!(
            Password::new(&"x".repeat(1025), "a@b.co").unwrap_err(),
            PasswordError::Length
        );
        assert_eq!(
            Password::new("Password1234", "a@b.co").unwrap_err(),
            PasswordError::Common
        );
        assert_eq!(
            Password::new("ada@example.com", "ada@example.com").unwrap_err(),
            PasswordError::SameAsEmail
        );
        assert!(Password::new("correct horse battery staple glue", "a@b.co").is_ok());
        assert!(COMMON.len() >= 100, "the shipped list is loaded");
    }

    #[test]
    fn passwords_do_not_print() {
        let password = Password::new("a perfectly fine passphrase", "a@b.co").unwrap();
        assert!(!format!("{password:?}").contains("passphrase"));
    }

    proptest! {
        #[test]
        fn length_is_counted_in_characters_not_bytes(n in 1usize..40) {
            let raw = "é".repeat(n);
            prop_assert_eq!(Password::new(&raw, "a@b.co").is_ok(), n >= MIN_CHARS && !COMMON.contains(raw.as_str()));
        }
    }
}

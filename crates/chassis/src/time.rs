//! Instants as milliseconds since the Unix epoch, the shop's one way to hold a time: stored as
//! integers on both engines (SQLite and PostgreSQL sort and compare them alike), shown to clients
//! and written into events as RFC 3339 UTC with milliseconds (`2026-11-30T13:22:41.123Z`), and
//! read back from RFC 3339 with any offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// An instant, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// The instant `millis` after the epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the epoch, as stored.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// This instant minus `duration` (saturating).
    pub fn minus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// How long from this instant until `later` (zero if `later` is not later).
    pub fn until(self, later: Self) -> Duration {
        Duration::from_millis(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }

    /// The UTC calendar year and month (1..=12) this instant falls in.
    pub fn year_month(self) -> (i64, i64) {
        let (year, month, _) = civil_from_days(self.0.div_euclid(86_400_000));
        (year, month)
    }

    /// Reads an RFC 3339 date-time (`2026-11-30T13:22:41.123Z`, `…+02:00`); digits of a second
    /// beyond milliseconds are dropped.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_rfc3339(text.as_bytes()).ok_or_else(|| {
            let shown: String = text.chars().take(40).collect();
            format!("{shown:?} is not an RFC 3339 date-time")
        })
    }

    /// RFC 3339 in UTC with milliseconds.
    pub fn to_rfc3339(self) -> String {
        let days = self.0.div_euclid(86_400_000);
        let in_day = self.0.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let (h, m, s, ms) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        );
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, or `None`.
fn parse_rfc3339(text: &[u8]) -> Option<Timestamp> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().try_fold(0i64, |n, d| {
            n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })
    };
    let at = |i: usize, expected: &[u8]| text.get(i).is_some_and(|c| expected.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // A leap second (60) is read as the last instant of its minute.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b".") {
        let start = i + 1;
        let end = start
            + text[start..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        if end == start {
            return None;
        }
        let first_three = number(start..end.min(start + 3))?;
        millis = first_three * 10i64.pow(u32::try_from(3 - (end - start).min(3)).ok()?);
        i = end;
    }
    let offset_minutes = match text.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (number(i + 1..i + 3)?, number(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second.min(59)
            - offset_minutes * 60;
    let millis = seconds * 1000 + if second == 60 { 999 } else { millis };
    Some(Timestamp(millis))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, after Howard Hinnant's
/// `days_from_civil` (<https://howardhinnant.github.io/date_algorithms.html>).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number, after Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use proptest::prelude::*;

    #[test]
    fn instants_read_and_show_as_rfc_3339() {
        let at = Timestamp::parse("2025-11-30T13:22:41.123Z").unwrap();
        assert_eq!(at.millis(), 1_764_508_961_123);
        assert_eq!(at.to_rfc3339(), "2025-11-30T13:22:41.123Z");
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z").unwrap().millis(),
            0
        );
        assert_eq!(
            Timestamp::parse("2000-02-29T02:00:00.5+02:00")
                .unwrap()
                .to_rfc3339(),
            "2000-02-29T00:00:00.500Z"
        );
        assert_eq!(
            Timestamp::parse("1999-12-31t23:30:00.123456789-00:45")
                .unwrap()
                .to_rfc3339(),
            "2000-01-01T00:15:00.123Z"
        );
        assert_eq!(
            serde_json::to_value(Timestamp::from_millis(0)).unwrap(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "yesterday",
            "2025-11-30",
            "2025-11-30T13:22:41",
            "2025-11-30 13:22:41Z",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-11-30T24:00:00Z",
            "2025-11-30T13:22:41.Z",
            "2025-11-30T13:22:41+0200",
            "2025-11-30T13:22:41Zjunk",
            "+025-11-30T13:22:41Z",
            "２025-11-30T13:22:41Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        let long = "x".repeat(1000);
        assert!(Timestamp::parse(&long).unwrap_err().len() < 100);
    }

    proptest! {
        #[test]
        fn what_is_shown_reads_back(millis in -62_135_596_800_000i64..253_402_300_799_999) {
            let at = Timestamp::from_millis(millis);
            prop_assert_eq!(Timestamp::parse(&at.to_rfc3339()).unwrap(), at);
        }
    }

    #[test]
    fn durations_between_instants_never_go_negative() {
        let t = Timestamp::from_millis(1000);
        assert_eq!(
            t.until(t.plus(Duration::from_millis(250))),
            Duration::from_millis(250)
        );
        assert_eq!(t.until(t.minus(Duration::from_secs(1))), Duration::ZERO);
    }

    #[test]
    fn months_turn_at_midnight_utc() {
        // 2026-01-31T23:59:59.999Z, then the first instant of February.
        let last = Timestamp::from_millis(1_769_903_999_999);
        assert_eq!(last.year_month(), (2026, 1));
        assert_eq!(last.plus(Duration::from_millis(1)).year_month(), (2026, 2));
        assert_eq!(Timestamp::from_millis(0).year_month(), (1970, 1));
    }

    #[test]
    fn adding_saturates() {
        let t = Timestamp::from_millis(i64::MAX - 1).plus(Duration::from_secs(5));
        assert_eq!(t.millis(), i64::MAX);
        assert_eq!(
            Timestamp::from_millis(1000)
                .plus(Duration::from_millis(500))
                .millis(),
            1500
        );
    }
}

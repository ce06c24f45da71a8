//! The page's small writers: text escaped for HTML and for a query string, attribute values,
//! service chips, times of day, durations and sizes. Each is a `Display`, so the page writes it
//! straight into its output.

use std::fmt::{self, Display, Formatter};

/// Text made safe for HTML, in content and in quoted attribute values alike.
pub(super) struct Esc<'a>(pub(super) &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let text = self.0;
        let mut done = 0;
        for (i, c) in text.char_indices() {
            let reference = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&text[done..i])?;
            f.write_str(reference)?;
            done = i + 1;
        }
        f.write_str(&text[done..])
    }
}

/// Text percent-encoded for a query string: everything but RFC 3986's unreserved characters.
pub(super) struct Url<'a>(pub(super) &'a str);

impl Display for Url<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                write!(f, "{}", char::from(byte))?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

/// An attribute's value: a string as it is, anything else as JSON; escaped either way.
pub(super) struct Value<'a>(pub(super) &'a serde_json::Value);

impl Display for Value<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            serde_json::Value::String(text) => Esc(text).fmt(f),
            other => Esc(&other.to_string()).fmt(f),
        }
    }
}

/// A service's name with its colour.
pub(super) struct Chip<'a>(pub(super) &'a str);

impl Display for Chip<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<span class=\"chip\" style=\"--c:{}\">{}</span>",
            super::layout::colour(self.0),
            Esc(self.0)
        )
    }
}

/// A time of day, UTC, to the millisecond: `HH:MM:SS.mmm`.
pub(super) struct Clock(pub(super) u64);

impl Display for Clock {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let millis = self.0 / 1_000_000;
        let seconds = millis / 1_000 % 86_400;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}",
            seconds / 3_600,
            seconds / 60 % 60,
            seconds % 60,
            millis % 1_000
        )
    }
}

/// Milliseconds, with fewer decimals the longer they are.
pub(super) struct Ms(pub(super) f64);

impl Display for Ms {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        match ms {
            _ if ms <= 0.0 => f.write_str("0 ms"),
            _ if ms < 1.0 => write!(f, "{ms:.3} ms"),
            _ if ms < 10.0 => write!(f, "{ms:.2} ms"),
            _ if ms < 100.0 => write!(f, "{ms:.1} ms"),
            _ => write!(f, "{ms:.0} ms"),
        }
    }
}

/// A size in bytes, in binary units.
pub(super) struct Bytes(pub(super) usize);

impl Display for Bytes {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
        // Sizes far below 2^53 bytes: the precision lost is none.
        #[allow(clippy::cast_precision_loss)]
        let mut size = self.0 as f64;
        let mut unit = 0;
        while size >= 1024.0 && unit < UNITS.len() - 1 {
            size /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{size:.1} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_and_durations_read_well() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(64 << 20).to_string(), "64.0 MiB");
        assert_eq!(Clock(86_399_999_000_000).to_string(), "23:59:59.999");
        assert_eq!(Ms(0.0421).to_string(), "0.042 ms");
        assert_eq!(Ms(12.345).to_string(), "12.3 ms");
        assert_eq!(Ms(1234.4).to_string(), "1234 ms");
        assert_eq!(Url("a b/é").to_string(), "a%20b%2F%C3%A9");
    }
}

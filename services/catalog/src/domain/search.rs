//! Search queries: what a shopper typed, reduced to words that are safe for any search engine.
//!
//! Neither SQLite FTS5 nor PostgreSQL `to_tsquery` accept arbitrary text (quotes, operators and
//! parentheses are syntax there), so a query is cut into words of letters and digits, and every
//! word must match as a prefix ("stain" finds "stainless"). Nothing the shopper types reaches the
//! engine as syntax.

/// Longest query accepted, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 200;
/// Most words used from one query; the rest are ignored.
pub(crate) const MAX_WORDS: usize = 8;

/// A search query reduced to lowercase words of letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    /// Parses what a shopper typed. A query with no letters or digits has no words and matches nothing.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(format!("must be at most {MAX_QUERY_CHARS} characters"));
        }
        let words = text
            .split(|c: char| !c.is_alphanumeric())
            // Lowercasing can add combining marks (İ → i̇): keep letters and digits only.
            .map(|w| {
                w.to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
            })
            .filter(|w| !w.is_empty())
            .take(MAX_WORDS)
            .collect();
        Ok(Self { words })
    }

    /// Whether the query has no words (and so matches nothing).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// An FTS5 MATCH expression: every word quoted, as a prefix, all required.
    pub fn to_fts5(&self) -> String {
        self.words
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A PostgreSQL `to_tsquery` expression: every word as a prefix, all required.
    pub fn to_tsquery(&self) -> String {
        self.words
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words_are_split_lowercased_and_prefixed() {
        let q = SearchQuery::parse("  Stainless  STEEL, pan!").unwrap();
        assert_eq!(q.to_fts5(), r#""stainless"* "steel"* "pan"*"#);
        assert_eq!(q.to_tsquery(), "stainless:* & steel:* & pan:*");
    }

    #[test]
    fn syntax_is_not_passed_through() {
        let q = SearchQuery::parse(r#"a" OR name:* NEAR(x) ') & !b -- ;"#).unwrap();
        assert_eq!(q.to_fts5(), r#""a"* "or"* "name"* "near"* "x"* "b"*"#);
        assert!(SearchQuery::parse("!!! ***").unwrap().is_empty());
    }

    #[test]
    fn long_queries_are_refused() {
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }

    proptest! {
        #[test]
        fn any_text_yields_only_alphanumeric_words(text in ".{0,200}") {
            let q = SearchQuery::parse(&text).unwrap();
            prop_assert!(q.words.len() <= MAX_WORDS);
            for w in &q.words {
                prop_assert!(!w.is_empty() && w.chars().all(char::is_alphanumeric));
            }
        }
    }
}

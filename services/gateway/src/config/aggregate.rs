//! `[[aggregates]]`: the configuration of aggregation endpoints and its validation (what they
//! do is `crate::aggregate`'s).

use serde::{Deserialize, Serialize};

use super::{ConfigError, GatewayConfig, Policy, invalid};

/// The placeholder in an aggregate's and its parts' paths: one path segment.
pub(crate) const ID: &str = "{id}";

/// `[[aggregates]]`: one aggregation endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// A name for metrics, logs and the `<name>.<part>` routes of its parts.
    pub name: String,
    /// The path clients call; `{id}` stands for one segment.
    pub path: String,
    /// Who may call it.
    #[serde(default)]
    pub policy: Policy,
    /// Its parts, fetched in parallel.
    pub parts: Vec<PartConfig>,
}

/// `[[aggregates.parts]]`: one upstream request of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartConfig {
    /// Its key in the answer (lowercase letters, digits, `_`).
    pub name: String,
    /// The upstream asked.
    pub upstream: String,
    /// The upstream path; `{id}` is replaced by the client's.
    pub path: String,
    /// Deadline for its whole answer, body included.
    pub timeout_ms: u64,
    /// Whether the aggregate fails when this part does (otherwise it is left out and listed in
    /// `degraded`).
    #[serde(default)]
    pub required: bool,
}

/// Checks `aggregates` against the rest of `config`.
pub(crate) fn validate(config: &GatewayConfig) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for (i, aggregate) in config.aggregates.iter().enumerate() {
        let key = |field: &str| format!("aggregates[{i}].{field}");
        if !is_key(&aggregate.name) || !names.insert(aggregate.name.as_str()) {
            return Err(invalid(
                key("name"),
                "must be unique, of lowercase letters, digits, - or _",
            ));
        }
        if !aggregate.path.starts_with('/') || aggregate.path.matches(ID).count() > 1 {
            return Err(invalid(
                key("path"),
                "must start with / and hold {id} at most once, as a whole segment",
            ));
        }
        if aggregate.parts.is_empty() {
            return Err(invalid(
                key("parts"),
                "an aggregate needs at least one part",
            ));
        }
        let mut parts = std::collections::HashSet::new();
        for (j, part) in aggregate.parts.iter().enumerate() {
            let key = |field: &str| format!("aggregates[{i}].parts[{j}].{field}");
            if !is_key(&part.name) || part.name == "degraded" || !parts.insert(&part.name) {
                return Err(invalid(
                    key("name"),
                    "must be unique, not \"degraded\", of lowercase letters, digits, - or _",
                ));
            }
            if !config.upstreams.contains_key(&part.upstream) {
                return Err(invalid(
                    key("upstream"),
                    format!("no upstream named {:?}", part.upstream),
                ));
            }
            if !part.path.starts_with('/') {
                return Err(invalid(key("path"), "must start with /"));
            }
            if part.timeout_ms == 0 {
                return Err(invalid(key("timeout_ms"), "must be positive"));
            }
        }
    }
    Ok(())
}

fn is_key(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

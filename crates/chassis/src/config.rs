//! Layered, typed configuration: defaults < file < `SOUK_` environment.
//!
//! Every service reads its own section of one shared TOML shape, so a single file can configure the
//! whole shop (`[catalog]`, `[gateway]`, …) and `souk monolith` can load every section from one place.
//! Environment variables name the section too: `SOUK_CATALOG__DATABASE__URL` sets
//! `catalog.database.url`. The environment is passed in as an [`Env`] value rather than read
//! globally, so tests never need `std::env::set_var`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Prefix of every environment variable souk reads for configuration.
pub const ENV_PREFIX: &str = "SOUK";
/// Separator between nested keys in environment variable names (`SOUK_CATALOG__HTTP__ADDR`).
pub const ENV_SEPARATOR: &str = "__";

/// A snapshot of environment variables, taken once at start-up (or built by a test).
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The current process environment. Call once, at start-up.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment made of the given pairs only (for tests and for child processes).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// This environment with `pairs` set over it (the monolith: the process's variables, and
    /// what `souk up` would give one service's process).
    #[must_use]
    pub fn with<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.vars
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// One variable, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The path of the shared config file, from `SOUK_CONFIG`.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.get("SOUK_CONFIG").map(PathBuf::from)
    }
}

impl fmt::Debug for Env {
    // Values may hold secrets: show only which variables are present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self
            .vars
            .keys()
            .filter(|k| k.starts_with(ENV_PREFIX))
            .collect();
        keys.sort();
        f.debug_struct("Env").field("souk_keys", &keys).finish()
    }
}

/// Why configuration could not be loaded. The message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration for [{section}]: {source}")]
pub struct ConfigError {
    section: String,
    #[source]
    source: Box<config::ConfigError>,
}

/// Loads section `section` of type `T`: `T::default()`, then `file` (if given, it must exist),
/// then `SOUK_<SECTION>__<KEY>` variables from `env`.
pub fn load<T>(section: &str, file: Option<&Path>, env: &Env) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let err = |source| ConfigError {
        section: section.to_owned(),
        source: Box::new(source),
    };
    let defaults = HashMap::from([(section.to_owned(), T::default())]);
    let mut builder =
        config::Config::builder().add_source(config::Config::try_from(&defaults).map_err(err)?);
    if let Some(path) = file {
        builder = builder.add_source(config::File::from(path).required(true));
    }
    let environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .source(Some(env.vars.clone().into_iter().collect()));
    builder
        .add_source(environment)
        .build()
        .and_then(|c| c.get::<T>(section))
        .map_err(err)
}

/// A string that never prints: database URLs with passwords, signing keys, credentials.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A list, or a string of comma-separated items (environment variables cannot hold lists):
/// `#[serde(deserialize_with = "souk_chassis::config::list_or_commas")]`.
pub fn list_or_commas<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::List(items) => items,
        Either::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        port: u16,
        name: String,
        nested: Nested,
        password: Secret,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Nested {
        limit: u32,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                port: 1,
                name: "default".into(),
                nested: Nested { limit: 5 },
                password: Secret::default(),
            }
        }
    }

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(contents.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_apply_without_file_or_env() {
        let s: Sample = load("sample", None, &Env::default()).unwrap();
        assert_eq!(s, Sample::default());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let f = file(
            "[sample]\nport = 2\nname = \"file\"\n[sample.nested]\nlimit = 7\n[other]\nport = 9\n",
        );
        let env = Env::from_pairs([
            ("SOUK_SAMPLE__PORT", "3"),
            ("SOUK_SAMPLE__NESTED__LIMIT", "8"),
            ("SOUK_OTHER__X", "1"),
        ]);
        let s: Sample = load("sample", Some(f.path()), &env).unwrap();
        assert_eq!(s.port, 3);
        assert_eq!(s.name, "file");
        assert_eq!(s.nested.limit, 8);
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let env = Env::from_pairs([("SOUK_SAMPLE__PORT", "not-a-port")]);
        let err = load::<Sample>("sample", None, &env).unwrap_err();
        let msg = format!("{err}");
        assert!(msg.contains("sample") && msg.contains("port"), "{msg}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let f = file("[sample]\nprot = 2\n");
        let err = load::<Sample>("sample", Some(f.path()), &Env::default()).unwrap_err();
        assert!(format!("{err}").contains("prot"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = load::<Sample>(
            "sample",
            Some(Path::new("/nonexistent/souk.toml")),
            &Env::default(),
        );
        assert!(err.is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let env = Env::from_pairs([("SOUK_SAMPLE__PASSWORD", "hunter2hunter2")]);
        let s: Sample = load("sample", None, &env).unwrap();
        assert_eq!(s.password.expose(), "hunter2hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{env:?}").contains("hunter2"));
    }
}

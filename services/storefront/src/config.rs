//! The storefront's configuration: section `[storefront]` of the shared file, `SOUK_STOREFRONT__*`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use souk_chassis::client::ClientConfig;
use souk_chassis::{HttpConfig, Secret};

/// Everything the storefront can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`SOUK_STOREFRONT__LISTEN`).
    pub listen: SocketAddr,
    /// HTTP limits and timeouts (`SOUK_STOREFRONT__HTTP__*`).
    pub http: HttpConfig,
    /// The gateway's base URL, without `/api` (`SOUK_STOREFRONT__GATEWAY__URL`), and the deadline
    /// of one call to it (`SOUK_STOREFRONT__GATEWAY__TIMEOUT_MS`).
    pub gateway: ClientConfig,
    /// The key that signs CSRF tokens (`SOUK_STOREFRONT__CSRF_SECRET`). Empty: a random key made
    /// at start, which is right for one instance; several instances must share one.
    pub csrf_secret: Secret,
    /// Whether cookies are `Secure` and named `__Host-…` (`SOUK_STOREFRONT__SECURE_COOKIES`):
    /// `auto` (the default) unless the shopper reached the shop at a loopback host (localhost,
    /// 127.0.0.1, [::1]: a browser on the machine itself, over plain HTTP); `always`; `never`
    /// (a shop served over plain HTTP at another address — then cookies can be planted by
    /// sibling hosts). `true` and `false` mean `always` and `never`.
    pub secure_cookies: SecureCookies,
    /// Peers whose `X-Forwarded-For` names the shopper (the gateway in front of the storefront),
    /// as networks (`10.42.0.0/16`) or addresses; from the environment as a comma-separated list
    /// (`SOUK_STOREFRONT__TRUSTED_PROXIES=10.0.0.0/8,fd00::/8`). Anyone else is the shopper.
    #[serde(deserialize_with = "nets_list_or_commas")]
    pub trusted_proxies: Vec<IpNet>,
    /// Products per page of the product list (1–100).
    pub page_size: u32,
    /// The address its calls to the gateway come from (`SOUK_STOREFRONT__SOURCE_IP`), when the
    /// gateway must tell them from other local callers: `souk up` gives the storefront a
    /// loopback address of its own, the only one the gateway believes `X-Forwarded-For` from.
    /// None: whatever the system picks.
    pub source_ip: Option<IpAddr>,
}

/// When cookies are `Secure` with the `__Host-` prefix (which no sibling host can set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// Secure unless the shop was reached at a loopback host.
    #[default]
    Auto,
    /// Always secure (the shop is served over HTTPS).
    Always,
    /// Never (a shop served over plain HTTP at a non-loopback address).
    Never,
}

impl<'de> Deserialize<'de> for SecureCookies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Flag(bool),
            Text(String),
        }
        match Either::deserialize(deserializer)? {
            Either::Flag(true) => Ok(Self::Always),
            Either::Flag(false) => Ok(Self::Never),
            Either::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
                "auto" => Ok(Self::Auto),
                "always" | "true" => Ok(Self::Always),
                "never" | "false" => Ok(Self::Never),
                other => Err(serde::de::Error::custom(format!(
                    "secure_cookies: {other:?} is not auto, always or never"
                ))),
            },
        }
    }
}

/// A list of networks or addresses, or a string of them separated by commas (environment
/// variables cannot hold lists). A bare address is a network of one.
fn nets_list_or_commas<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    let items = match Either::deserialize(deserializer)? {
        Either::List(items) => items,
        Either::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "trusted_proxies: {item:?} is not an address or a network"
                    ))
                })
        })
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8108)),
            http: HttpConfig::default(),
            gateway: ClientConfig {
                url: "http://127.0.0.1:8080".into(),
                timeout_ms: 5000,
            },
            csrf_secret: Secret::default(),
            secure_cookies: SecureCookies::Auto,
            trusted_proxies: vec![
                IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
            page_size: 12,
            source_ip: None,
        }
    }
}

impl Config {
    /// Checks what serde cannot: a message naming the key, or `Ok`.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.page_size) {
            return Err("storefront.page_size must be 1 to 100".into());
        }
        if !(self.gateway.url.starts_with("http://") || self.gateway.url.starts_with("https://")) {
            return Err("storefront.gateway.url must be an http:// or https:// URL".into());
        }
        if self.gateway.timeout_ms == 0 {
            return Err("storefront.gateway.timeout_ms must be at least 1".into());
        }
        let secret = self.csrf_secret.expose();
        if !secret.is_empty() && secret.len() < 32 {
            return Err("storefront.csrf_secret must be at least 32 characters (or empty)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_come_as_networks_or_addresses_in_a_list_or_with_commas() {
        let from = |value: serde_json::Value| {
            serde_json::from_value::<Config>(serde_json::json!({ "trusted_proxies": value }))
                .map(|c| c.trusted_proxies)
        };
        let nets = from(serde_json::json!("10.0.0.0/8, ::1")).unwrap();
        assert_eq!(
            nets,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
        assert_eq!(from(serde_json::json!(["172.16.0.0/12"])).unwrap().len(), 1);
        let err = from(serde_json::json!("10.0.0.0/8,the gateway")).unwrap_err();
        assert!(err.to_string().contains("the gateway"), "{err}");
    }

    #[test]
    fn secure_cookies_are_auto_always_never_or_a_flag() {
        let from = |value: serde_json::Value| {
            serde_json::from_value::<Config>(serde_json::json!({ "secure_cookies": value }))
                .map(|c| c.secure_cookies)
        };
        assert_eq!(
            from(serde_json::json!("auto")).unwrap(),
            SecureCookies::Auto
        );
        assert_eq!(
            from(serde_json::json!(true)).unwrap(),
            SecureCookies::Always
        );
        assert_eq!(
            from(serde_json::json!("true")).unwrap(),
            SecureCookies::Always
        );
        assert_eq!(
            from(serde_json::json!("never")).unwrap(),
            SecureCookies::Never
        );
        assert!(from(serde_json::json!("sometimes")).is_err());
        assert_eq!(Config::default().secure_cookies, SecureCookies::Auto);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.listen.port(), 8108);
        assert_eq!(config.gateway.url, "http://127.0.0.1:8080");
        assert_eq!(
            config.trusted_proxies,
            vec![
                "127.0.0.1/32".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn nonsense_is_refused_naming_the_key() {
        type Tweak = fn(&mut Config);
        let cases: [(Tweak, &str); 3] = [
            (|c| c.page_size = 0, "page_size"),
            (|c| c.gateway.url = "ftp://x".into(), "gateway.url"),
            (|c| c.csrf_secret = Secret::new("short"), "csrf_secret"),
        ];
        for (tweak, key) in cases {
            let mut config = Config::default();
            tweak(&mut config);
            assert!(config.validate().unwrap_err().contains(key));
        }
    }
}

//! Who is shopping: their cookies (session tokens, CSRF nonce), their address, and the cookies a
//! request sets on its way out.
//!
//! The access and refresh tokens live in `HttpOnly`, `SameSite=Lax`, `Path=/` cookies: scripts
//! cannot read them and other sites' forms do not carry them. Outside loopback they are `Secure`
//! and named `__Host-…`, which no other host (a sibling subdomain) can set. Both carry the
//! session's id (`<id>~<token>`), made at sign-in and kept across refreshes; cookies whose ids
//! disagree (one of them planted) are no session at all. The CSRF nonce is made anew at sign-in
//! and sign-out, and form tokens are bound to the session id (see `csrf`).
//!
//! When the access token has expired (its cookie is gone, or the gateway answers 401) the
//! refresh token buys a new pair once. Signing out ends the login at identity too.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};
use ipnet::IpNet;

use crate::config::SecureCookies;
use crate::csrf;
use crate::gateway::{GatewayError, Tokens, Who};
use crate::pages::{Chrome, PageError};
use crate::routes::App;

/// The access token's cookie (`__Host-souk_at` when secure).
pub const ACCESS: &str = "souk_at";
/// The refresh token's cookie.
pub const REFRESH: &str = "souk_rt";
/// The CSRF nonce's cookie.
pub const NONCE: &str = "souk_csrf";
/// The prefix of secure cookies' names: the browser takes them only `Secure`, `Path=/` and from
/// this host itself, never from a sibling.
pub const SECURE_PREFIX: &str = "__Host-";
/// How long a refresh token cookie is kept (identity decides how long the token works).
const REFRESH_MAX_AGE: u64 = 30 * 24 * 3600;
/// Between a session cookie's id and its token.
const SESSION_MARK: char = '~';

/// The shopper behind a request.
#[derive(Debug)]
pub struct Shopper {
    /// Their address (the gateway's `X-Forwarded-For` when it forwarded the request).
    pub client_ip: Option<IpAddr>,
    access: Option<String>,
    refresh: Option<String>,
    /// The session both token cookies name; `None` while signed out.
    session: Option<String>,
    refreshed: bool,
    nonce: String,
    /// Where to come back to after signing in.
    pub return_to: String,
    /// `Set-Cookie` values for the response.
    set_cookies: Vec<String>,
    secure: bool,
    csrf_key: csrf::Key,
}

impl FromRequestParts<App> for Shopper {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let trusted = &app.settings.trusted_proxies;
        let client_ip = client_ip(peer, &parts.headers, trusted);
        let secure = match app.settings.secure_cookies {
            SecureCookies::Always => true,
            SecureCookies::Never => false,
            SecureCookies::Auto => !shop_host(peer, &parts.headers, trusted)
                .as_deref()
                .is_some_and(is_loopback_host),
        };
        let named = |base: &str| cookie_name(secure, base);
        let access = cookie(&parts.headers, &named(ACCESS)).and_then(|c| split_session(&c));
        let refresh = cookie(&parts.headers, &named(REFRESH)).and_then(|c| split_session(&c));
        let mut shopper = Self {
            client_ip,
            access: None,
            refresh: None,
            session: None,
            refreshed: false,
            nonce: String::new(),
            return_to: "/".into(),
            set_cookies: Vec::new(),
            secure,
            csrf_key: app.csrf.clone(),
        };
        // One session or none: cookies naming different sessions mean one was planted.
        let sessions: Vec<&String> = [&access, &refresh]
            .into_iter()
            .flatten()
            .map(|(s, _)| s)
            .collect();
        if sessions.windows(2).all(|pair| pair[0] == pair[1]) {
            shopper.session = sessions.first().map(|s| (*s).clone());
            shopper.access = access.map(|(_, token)| token);
            shopper.refresh = refresh.map(|(_, token)| token);
        } else {
            tracing::warn!("session cookies of two sessions: treated as none");
            shopper.clear_tokens();
        }
        if parts.method == Method::GET {
            shopper.return_to = parts
                .uri
                .path_and_query()
                .map_or("/".into(), |p| safe_return_path(p.as_str()));
        }
        match cookie(&parts.headers, &named(NONCE)).filter(|n| csrf::is_nonce(n)) {
            Some(nonce) => shopper.nonce = nonce,
            None if parts.method == Method::GET || parts.method == Method::HEAD => {
                shopper.new_nonce();
            }
            // A form posted without the cookie fails its CSRF check.
            None => {}
        }
        Ok(shopper)
    }
}

impl Shopper {
    /// Whether they hold a session (an access or refresh token).
    pub fn signed_in(&self) -> bool {
        self.access.is_some() || self.refresh.is_some()
    }

    /// Who calls the gateway for an anonymous part of a page.
    pub fn anonymous(&self) -> Who {
        Who {
            client_ip: self.client_ip,
            token: None,
        }
    }

    /// This browser's CSRF nonce: a per-browser name for things remembered between requests.
    pub fn browser_id(&self) -> &str {
        &self.nonce
    }

    /// What every page's frame shows.
    pub fn chrome(&self) -> Chrome {
        Chrome {
            signed_in: self.signed_in(),
            csrf: csrf::token(&self.csrf_key, &self.nonce, self.session_id()),
            q: String::new(),
        }
    }

    /// Checks a posted form's CSRF token against this shopper's nonce and session.
    pub fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if !self.nonce.is_empty()
            && csrf::verify(&self.csrf_key, &self.nonce, self.session_id(), token)
        {
            Ok(())
        } else {
            Err(PageError::Forbidden)
        }
    }

    /// Runs `call` with the shopper's access token, refreshing it once when it is missing or
    /// refused; no session at all (or a refused refresh) asks them to sign in.
    pub async fn authorized<T, F, Fut>(&mut self, app: &App, call: F) -> Result<T, PageError>
    where
        F: Fn(Who) -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>>,
    {
        if self.access.is_none() {
            self.refresh_tokens(app).await?;
        }
        match call(self.who()).await {
            Err(GatewayError::Unauthorized) if !self.refreshed && self.refresh.is_some() => {
                self.refresh_tokens(app).await?;
                call(self.who()).await.map_err(PageError::from)
            }
            result => result.map_err(PageError::from),
        }
    }

    async fn refresh_tokens(&mut self, app: &App) -> Result<(), PageError> {
        let Some(refresh) = self.refresh.take() else {
            return Err(PageError::SignIn);
        };
        self.refreshed = true;
        match app.gateway.refresh(&refresh, &self.anonymous()).await {
            Ok(tokens) => {
                self.keep_tokens(&tokens);
                Ok(())
            }
            Err(GatewayError::Unauthorized | GatewayError::Rejected { .. }) => {
                Err(PageError::SignIn)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// A new login: a new session id and a new CSRF nonce (a nonce known before signing in,
    /// planted or not, is worth nothing after), and the tokens in cookies.
    pub fn signed_in_with(&mut self, tokens: &Tokens) {
        self.session = csrf::new_nonce();
        self.new_nonce();
        self.keep_tokens(tokens);
    }

    /// Keeps a fresh pair of the same session in cookies.
    fn keep_tokens(&mut self, tokens: &Tokens) {
        let session = self.session_id().to_owned();
        self.access = Some(tokens.access_token.clone());
        self.refresh = Some(tokens.refresh_token.clone());
        let access = format!("{session}{SESSION_MARK}{}", tokens.access_token);
        let refresh = format!("{session}{SESSION_MARK}{}", tokens.refresh_token);
        let access = self.cookie(ACCESS, &access, Some(tokens.expires_in));
        let refresh = self.cookie(REFRESH, &refresh, Some(REFRESH_MAX_AGE));
        self.set_cookies.extend([access, refresh]);
    }

    /// Signs out: the login ends at identity (its refresh tokens stop working, so a copied
    /// cookie buys nothing), the cookies are cleared, and the CSRF nonce is made anew. A
    /// gateway that cannot be reached does not keep the shopper signed in here.
    pub async fn sign_out(&mut self, app: &App) {
        if let Some(refresh) = &self.refresh
            && let Err(err) = app.gateway.logout(refresh, &self.anonymous()).await
        {
            tracing::warn!(error = %err, "could not end the login at identity; the cookies are cleared anyway");
        }
        self.forget();
    }

    /// Forgets the session here (the cookies are cleared with the response) and makes a new
    /// CSRF nonce.
    fn forget(&mut self) {
        self.clear_tokens();
        self.new_nonce();
    }

    fn clear_tokens(&mut self) {
        self.access = None;
        self.refresh = None;
        self.session = None;
        for name in [ACCESS, REFRESH] {
            let value = self.cookie(name, "", Some(0));
            self.set_cookies.push(value);
        }
    }

    fn new_nonce(&mut self) {
        if let Some(nonce) = csrf::new_nonce() {
            let value = self.cookie(NONCE, &nonce, None);
            self.set_cookies.push(value);
            self.nonce = nonce;
        }
    }

    fn session_id(&self) -> &str {
        self.session.as_deref().unwrap_or("")
    }

    /// The response for `result`, with the cookies this request set; an error becomes its page.
    pub fn finish(mut self, result: Result<Response, PageError>) -> Response {
        let mut response = match result {
            Ok(response) => response,
            Err(PageError::SignIn) => {
                self.forget();
                let location = format!("/signin?next={}", crate::pages::encode(&self.return_to));
                crate::pages::see_other(&location)
            }
            Err(error) => error.page(self.chrome()),
        };
        for value in &self.set_cookies {
            if let Ok(value) = HeaderValue::try_from(value.as_str()) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        // Pages carry a CSRF token beside text the shopper typed (a search): never stored, and
        // never compressed — by the storefront or anyone between (BREACH).
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-transform"),
        );
        response
    }

    fn who(&self) -> Who {
        Who {
            client_ip: self.client_ip,
            token: self.access.clone(),
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let name = cookie_name(self.secure, name);
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            cookie.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie
    }
}

impl IntoResponse for Shopper {
    fn into_response(self) -> Response {
        self.finish(Ok(http::StatusCode::NO_CONTENT.into_response()))
    }
}

/// A cookie's name: `__Host-<base>` when secure.
fn cookie_name(secure: bool, base: &str) -> String {
    match secure {
        true => format!("{SECURE_PREFIX}{base}"),
        false => base.to_owned(),
    }
}

/// A session cookie's `(session id, token)`; anything else (an old cookie without an id) is
/// no session.
fn split_session(value: &str) -> Option<(String, String)> {
    let (session, token) = value.split_once(SESSION_MARK)?;
    (csrf::is_nonce(session) && !token.is_empty()).then(|| (session.to_owned(), token.to_owned()))
}

/// The host the shopper's browser asked for: the gateway's `X-Forwarded-Host` when a trusted
/// proxy forwarded the request, else `Host`.
fn shop_host(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<String> {
    let forwarded = peer.is_none_or(|p| trusted.iter().any(|net| net.contains(&p.ip())));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = match forwarded {
        true => header("x-forwarded-host").or_else(|| header("host")),
        false => header("host"),
    };
    host.map(str::to_owned)
}

/// Whether `host` (with or without a port) is this machine: `localhost`, `127.x.y.z`, `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A return path after signing in: only a path on this site (`/…`), never `//host`, a scheme, a
/// backslash or a control character — anything else is the home page.
pub fn safe_return_path(path: &str) -> String {
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 1024
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && !path.starts_with("/signin")
        && !path.starts_with("/signup");
    if safe {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// The shopper's address. From a trusted proxy (the gateway), or in-process with no peer at all,
/// it is read from `X-Forwarded-For` as the gateway reads it: right to left, the first address
/// that is not itself a trusted proxy (the leftmost when all are). Anyone else is the shopper.
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if let Some(peer) = peer
        && !is_trusted(&peer.ip())
    {
        return Some(peer.ip());
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(chain.first())
        .copied()
        .or(peer.map(|p| p.ip()))
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_return_paths() {
        for good in [
            "/",
            "/cart",
            "/products?q=pan&category=kitchen",
            "/orders/abc",
        ] {
            assert_eq!(safe_return_path(good), good);
        }
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/x\r\nSet-Cookie: a=b",
            "/signin?next=/cart",
        ] {
            assert_eq!(safe_return_path(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn the_forwarded_address_counts_only_from_a_trusted_proxy() {
        let trusted = ["127.0.0.1/32".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 203.0.113.9, 127.0.0.1"),
        );
        let from = |ip: &str| Some(SocketAddr::new(ip.parse().unwrap(), 5000));
        let shopper: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(from("127.0.0.1"), &headers, &trusted),
            Some(shopper),
            "the nearest untrusted hop; what the shopper wrote left of it proves nothing"
        );
        assert_eq!(client_ip(None, &headers, &trusted), Some(shopper));
        assert_eq!(
            client_ip(from("198.51.100.1"), &headers, &trusted),
            Some("198.51.100.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(from("127.0.0.1"), &HeaderMap::new(), &trusted),
            Some("127.0.0.1".parse().unwrap())
        );
        let mut local = HeaderMap::new();
        local.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
        assert_eq!(
            client_ip(from("127.0.0.1"), &local, &trusted),
            Some("127.0.0.1".parse().unwrap()),
            "a shopper on this machine"
        );
    }

    #[test]
    fn loopback_hosts_are_the_machine_itself() {
        for host in [
            "localhost:8080",
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:8080",
            "shop.localhost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "shop.example",
            "shop.example:443",
            "10.0.0.1:8080",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn session_cookies_carry_their_session() {
        let session = csrf::new_nonce().unwrap();
        assert_eq!(
            split_session(&format!("{session}~a.b.c")),
            Some((session.clone(), "a.b.c".to_owned()))
        );
        assert_eq!(
            split_session("a.b.c"),
            None,
            "an old cookie without a session"
        );
        assert_eq!(split_session(&format!("{session}~")), None);
        assert_eq!(split_session("short~token"), None);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; souk_at=tok; b="),
        );
        assert_eq!(cookie(&headers, ACCESS).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, REFRESH), None);
    }
}

//! Who is shopping: their cookies (tokens, CSRF nonce), their address, and the cookies a request
//! sets on its way out.
//!
//! The access and refresh tokens live in `HttpOnly`, `SameSite=Lax`, `Path=/` cookies: scripts
//! cannot read them and other sites' forms do not carry them. When the access token has expired
//! (its cookie is gone, or the gateway answers 401) the refresh token buys a new pair once.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};
use ipnet::IpNet;

use crate::csrf;
use crate::gateway::{GatewayError, Tokens, Who};
use crate::pages::{Chrome, PageError};
use crate::routes::App;

/// The access token's cookie.
pub const ACCESS: &str = "souk_at";
/// The refresh token's cookie.
pub const REFRESH: &str = "souk_rt";
/// The CSRF nonce's cookie.
pub const NONCE: &str = "souk_csrf";
/// How long a refresh token cookie is kept (identity decides how long the token works).
const REFRESH_MAX_AGE: u64 = 30 * 24 * 3600;

/// The shopper behind a request.
#[derive(Debug)]
pub struct Shopper {
    /// Their address (the gateway's `X-Forwarded-For` when it forwarded the request).
    pub client_ip: Option<IpAddr>,
    access: Option<String>,
    refresh: Option<String>,
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
        let client_ip = client_ip(peer, &parts.headers, &app.settings.trusted_proxies);
        let access = cookie(&parts.headers, ACCESS);
        let refresh = cookie(&parts.headers, REFRESH);
        let mut shopper = Self {
            client_ip,
            access,
            refresh,
            refreshed: false,
            nonce: String::new(),
            return_to: "/".into(),
            set_cookies: Vec::new(),
            secure: app.settings.secure_cookies,
            csrf_key: app.csrf.clone(),
        };
        if parts.method == Method::GET {
            shopper.return_to = parts
                .uri
                .path_and_query()
                .map_or("/".into(), |p| safe_return_path(p.as_str()));
        }
        match cookie(&parts.headers, NONCE).filter(|n| csrf::is_nonce(n)) {
            Some(nonce) => shopper.nonce = nonce,
            None if parts.method == Method::GET || parts.method == Method::HEAD => {
                if let Some(nonce) = csrf::new_nonce() {
                    let value = shopper.cookie(NONCE, &nonce, None);
                    shopper.set_cookies.push(value);
                    shopper.nonce = nonce;
                }
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
            csrf: csrf::token(&self.csrf_key, &self.nonce),
            q: String::new(),
        }
    }

    /// Checks a posted form's CSRF token against this shopper's nonce.
    pub fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if !self.nonce.is_empty() && csrf::verify(&self.csrf_key, &self.nonce, token) {
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
                self.signed_in_with(&tokens);
                Ok(())
            }
            Err(GatewayError::Unauthorized | GatewayError::Rejected { .. }) => {
                Err(PageError::SignIn)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Keeps a fresh pair of tokens in cookies.
    pub fn signed_in_with(&mut self, tokens: &Tokens) {
        self.access = Some(tokens.access_token.clone());
        self.refresh = Some(tokens.refresh_token.clone());
        let access = self.cookie(ACCESS, &tokens.access_token, Some(tokens.expires_in));
        let refresh = self.cookie(REFRESH, &tokens.refresh_token, Some(REFRESH_MAX_AGE));
        self.set_cookies.extend([access, refresh]);
    }

    /// Forgets the tokens (the cookies are cleared with the response).
    pub fn sign_out(&mut self) {
        self.access = None;
        self.refresh = None;
        for name in [ACCESS, REFRESH] {
            let value = self.cookie(name, "", Some(0));
            self.set_cookies.push(value);
        }
    }

    /// The response for `result`, with the cookies this request set; an error becomes its page.
    pub fn finish(mut self, result: Result<Response, PageError>) -> Response {
        let mut response = match result {
            Ok(response) => response,
            Err(PageError::SignIn) => {
                self.sign_out();
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
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    fn who(&self) -> Who {
        Who {
            client_ip: self.client_ip,
            token: self.access.clone(),
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
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

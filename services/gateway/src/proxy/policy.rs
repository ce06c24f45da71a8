//! The route's policy: rate limits and token verification.

use std::net::SocketAddr;

use http::StatusCode;
use http::header::{self, HeaderValue};

use crate::headers;
use crate::table::{Route, Table};

use super::Proxy;
use super::problem::{Problem, problem, too_many};

impl Proxy {
    /// Applies the route's policy. A verified caller is passed on as `x-souk-user-id` and
    /// `x-souk-role` (client-sent ones were stripped); services still verify the token themselves.
    /// On a public route a bad token is ignored rather than refused.
    pub(super) async fn authorize(
        &self,
        table: &Table,
        route: &Route,
        client: SocketAddr,
        headers: &mut http::HeaderMap,
    ) -> Result<(), Problem> {
        use crate::auth::Refusal;
        use crate::config::Policy;
        // Per address first: a flood from one address costs a bucket lookup, not a signature check.
        let mut redis = match route.limits.is_shared() {
            true => self.redis(table).await,
            false => None,
        };
        match redis.as_mut() {
            Some(redis) => route
                .limits
                .check_client_shared(redis, client.ip())
                .await
                .map_err(too_many)?,
            None => route.limits.check_client(client.ip()).map_err(too_many)?,
        }
        let verdict = match (
            &table.verifier,
            table
                .verifier
                .as_ref()
                .and_then(|v| table.upstreams.get(&v.config.jwks_upstream)),
        ) {
            (Some(verifier), Some(jwks)) => {
                let in_process = self.shared.in_process.get(&verifier.config.jwks_upstream);
                verifier
                    .verify(headers, &self.tokens, jwks, in_process)
                    .await
            }
            _ => Err(Refusal::Missing),
        };
        let caller = match (route.policy, verdict) {
            (Policy::Public, Ok(caller)) => caller,
            (Policy::Public, Err(_)) => return Ok(()),
            (_, Err(Refusal::Missing)) => {
                return Err(problem(
                    StatusCode::UNAUTHORIZED,
                    "sign in first: send Authorization: Bearer <access token>",
                )
                .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"souk\""));
            }
            (_, Err(Refusal::Invalid)) => {
                return Err(problem(
                    StatusCode::UNAUTHORIZED,
                    "the access token is not valid or has expired",
                )
                .with_header(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"souk\", error=\"invalid_token\"",
                ));
            }
            (_, Err(Refusal::Unavailable)) => {
                return Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot check the access token now: identity's keys could not be fetched; try again",
                )
                .with_header(header::RETRY_AFTER, "1"));
            }
            (Policy::Admin, Ok(caller)) if caller.role != "admin" => {
                return Err(problem(
                    StatusCode::FORBIDDEN,
                    "this needs an administrator",
                ));
            }
            (_, Ok(caller)) => caller,
        };
        match redis.as_mut() {
            Some(redis) => route
                .limits
                .check_user_shared(redis, &caller.sub)
                .await
                .map_err(too_many)?,
            None => route.limits.check_user(&caller.sub).map_err(too_many)?,
        }
        if let (Ok(id), Ok(role)) = (
            HeaderValue::try_from(caller.sub),
            HeaderValue::try_from(caller.role),
        ) {
            headers.insert(headers::USER_ID, id);
            headers.insert(headers::ROLE, role);
        }
        Ok(())
    }

    /// This thread's Redis connection for shared limits (`None`, and a warning, when it cannot be
    /// made: shared limits then let requests through rather than fail them).
    async fn redis(&self, table: &Table) -> Option<redis::aio::ConnectionManager> {
        let url = table.config.server.redis_url.clone()?;
        self.redis
            .get_or_init(|| async move {
                let client = redis::Client::open(url)
                    .map_err(|e| tracing::warn!(%e, "server.redis_url is not usable"))
                    .ok()?;
                redis::aio::ConnectionManager::new(client)
                    .await
                    .map_err(|e| tracing::warn!(%e, "cannot reach Redis for shared rate limits"))
                    .ok()
            })
            .await
            .clone()
    }
}

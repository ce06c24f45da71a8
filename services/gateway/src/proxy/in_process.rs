//! In-process upstreams: a router called with tower `oneshot` instead of over a socket.

use http::header::HeaderValue;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::Limited;

use crate::body::ResponseBody;
use crate::headers;
use crate::table::Route;

use super::forward::Forwarded;
use super::problem::problem;
use super::{ClientBody, Proxy};

impl Proxy {
    /// Calls an in-process upstream's router (tower `oneshot`): the same rewrite, headers, body
    /// limit and route timeout as over a socket; no pools, retries or ejection, as there is no
    /// network to fail.
    pub(super) async fn call_in_process(
        &self,
        router: &axum::Router,
        route: &Route,
        mut parts: Parts,
        body: ClientBody,
        request_id: &HeaderValue,
    ) -> Forwarded {
        use tower::ServiceExt;
        parts.uri = route.upstream_uri(&parts.uri);
        let limit = usize::try_from(route.body_limit).unwrap_or(usize::MAX);
        let body = match body {
            ClientBody::Incoming(body) => axum::body::Body::new(Limited::new(body, limit)),
            ClientBody::Empty => axum::body::Body::empty(),
        };
        if souk_chassis::telemetry::exporting() {
            parts
                .extensions
                .insert(souk_chassis::telemetry::ServedBy(std::sync::Arc::clone(
                    &route.upstream.name,
                )));
        }
        let request = Request::from_parts(parts, body);
        route.metrics.attempts.increment(1);
        match tokio::time::timeout(route.timeout, router.clone().oneshot(request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                headers::prepare_response(&mut parts.headers, request_id);
                Forwarded {
                    response: Response::from_parts(parts, ResponseBody::in_process(body)),
                    endpoint: None,
                    attempts: 1,
                }
            }
            Ok(Err(never)) => match never {},
            Err(_) => Forwarded {
                response: problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "this part of the shop did not answer in time",
                )
                .into_response(request_id),
                endpoint: None,
                attempts: 1,
            },
        }
    }
}

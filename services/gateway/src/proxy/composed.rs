//! The answers the gateway composes itself: aggregation endpoints.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::aggregate::Aggregate;
use crate::body::ResponseBody;
use crate::headers;
use crate::table::Table;

use super::{ClientBody, Proxy};

impl Proxy {
    /// Answers an aggregation endpoint: its parts fetched in parallel, each within its deadline.
    pub(super) async fn aggregate(
        &self,
        table: &Table,
        aggregate: &Aggregate,
        id: &str,
        request: Request<Incoming>,
        client: SocketAddr,
        client_ip: &HeaderValue,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let (mut parts, _) = request.into_parts();
        let request_id = headers::prepare_request(&mut parts.headers, client_ip);
        let route = &aggregate.route;
        let response = match self
            .authorize(table, route, client, &mut parts.headers)
            .await
        {
            Err(problem) => problem.into_response(&request_id),
            Ok(()) => {
                let fetches = aggregate
                    .parts
                    .iter()
                    .map(|part| self.fetch_part(part, &parts, id, &request_id));
                let answers = futures::future::join_all(fetches).await;
                let composed = crate::aggregate::compose(aggregate, answers, route.timeout);
                let (mut head, mut body) = composed.unwrap_or_else(|failed| failed).into_parts();
                // The answer is the gateway's own, so the gateway codes it for the client.
                let coding =
                    crate::encoding::negotiate(parts.headers.get_all(header::ACCEPT_ENCODING));
                if let Some(compressed) = crate::encoding::compress(coding, &body)
                    && let Some(name) = coding.header_value()
                {
                    body = compressed;
                    head.headers.insert(header::CONTENT_ENCODING, name);
                }
                head.headers
                    .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                headers::prepare_response(&mut head.headers, &request_id);
                Response::from_parts(head, ResponseBody::whole(body))
            }
        };
        let status = response.status();
        route.metrics.record(&method, status, started.elapsed());
        if self.shared.access_log {
            crate::access_log::write(&crate::access_log::Line {
                request_id: &request_id,
                client,
                method: &method,
                path: parts.uri.path(),
                route: &route.name,
                upstream: "aggregate",
                endpoint: None,
                status,
                attempts: u32::try_from(aggregate.parts.len()).unwrap_or(u32::MAX),
                elapsed: started.elapsed(),
            });
        }
        response
    }

    /// One part of an aggregate, read whole within the part's deadline.
    async fn fetch_part(
        &self,
        part: &crate::aggregate::Part,
        client: &Parts,
        id: &str,
        request_id: &HeaderValue,
    ) -> crate::aggregate::PartAnswer {
        let path = Aggregate::part_path(part, id);
        let Some(parts) = crate::aggregate::part_request(client, &path) else {
            return crate::aggregate::PartAnswer::Late;
        };
        let started = Instant::now();
        let fetch = async {
            let (response, _, _) = self
                .forward(&part.route, parts, ClientBody::Empty, request_id)
                .await;
            crate::aggregate::read_part(response).await
        };
        let answer = tokio::time::timeout(part.route.timeout, fetch).await;
        let answer = answer.unwrap_or(crate::aggregate::PartAnswer::Late);
        let status = match &answer {
            crate::aggregate::PartAnswer::Json(_) => StatusCode::OK,
            crate::aggregate::PartAnswer::Unusable(unusable) => unusable.status(),
            crate::aggregate::PartAnswer::Late => StatusCode::GATEWAY_TIMEOUT,
        };
        part.route
            .metrics
            .record(&Method::GET, status, started.elapsed());
        answer
    }
}

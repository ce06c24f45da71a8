//! The answers the gateway composes itself rather than forwards: the merged OpenAPI document and
//! aggregation endpoints.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::aggregate::{Aggregate, Part, PartAnswer};
use crate::body::ResponseBody;
use crate::headers;
use crate::openapi::Merger;
use crate::table::Table;

use super::forward::Forwarded;
use super::problem::problem;
use super::{By, ClientBody, Proxy, Served};

impl Proxy {
    /// Answers `GET` on the merged OpenAPI document's path.
    pub(super) async fn document(
        &self,
        table: &Table,
        merger: &Merger,
        request: &Request<Incoming>,
        client: SocketAddr,
        started: Instant,
    ) -> Response<ResponseBody> {
        let request_id = headers::request_id_of(request.headers());
        let response = match merger
            .document(&table.routing(), &self.shared.in_process)
            .await
        {
            Ok(document) => {
                let mut response = Response::new(ResponseBody::whole(document));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(err) => {
                tracing::warn!(%err, "cannot build the merged OpenAPI document");
                problem(
                    StatusCode::BAD_GATEWAY,
                    "the API description is unavailable right now",
                )
                .into_response(&request_id)
            }
        };
        let served = Served::before_routing(request, &request_id, client, started, By::Document);
        self.finish(&served, Forwarded::unsent(response))
    }

    /// Answers an aggregation endpoint whose policy let the request through: its parts fetched
    /// in parallel, each within its deadline, composed into one answer.
    pub(super) async fn aggregate(
        &self,
        aggregate: &Aggregate,
        id: &str,
        client: &Parts,
        request_id: &HeaderValue,
    ) -> Forwarded {
        let fetches = aggregate
            .parts
            .iter()
            .map(|part| self.fetch_part(part, client, id, request_id));
        let answers = futures::future::join_all(fetches).await;
        let composed = crate::aggregate::compose(aggregate, answers, aggregate.route.timeout);
        let (mut head, mut body) = composed.unwrap_or_else(|failed| failed).into_parts();
        // The answer is the gateway's own, so the gateway codes it for the client.
        let coding = crate::encoding::negotiate(client.headers.get_all(header::ACCEPT_ENCODING));
        if let Some(compressed) = crate::encoding::compress(coding, &body)
            && let Some(name) = coding.header_value()
        {
            body = compressed;
            head.headers.insert(header::CONTENT_ENCODING, name);
        }
        head.headers
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers::prepare_response(&mut head.headers, request_id);
        Forwarded {
            response: Response::from_parts(head, ResponseBody::whole(body)),
            endpoint: None,
            attempts: u32::try_from(aggregate.parts.len()).unwrap_or(u32::MAX),
        }
    }

    /// One part of an aggregate, read whole within the part's deadline.
    async fn fetch_part(
        &self,
        part: &Part,
        client: &Parts,
        id: &str,
        request_id: &HeaderValue,
    ) -> PartAnswer {
        let path = Aggregate::part_path(part, id);
        let Some(parts) = crate::aggregate::part_request(client, &path) else {
            return PartAnswer::Late;
        };
        let started = Instant::now();
        let fetch = async {
            let forwarded = self
                .forward(&part.route, parts, ClientBody::Empty, request_id)
                .await;
            crate::aggregate::read_part(forwarded.response).await
        };
        let answer = tokio::time::timeout(part.route.timeout, fetch).await;
        let answer = answer.unwrap_or(PartAnswer::Late);
        let status = match &answer {
            PartAnswer::Json(_) => StatusCode::OK,
            PartAnswer::Unusable(unusable) => unusable.status(),
            PartAnswer::Late => StatusCode::GATEWAY_TIMEOUT,
        };
        part.route
            .metrics
            .record(&Method::GET, status, started.elapsed());
        answer
    }
}

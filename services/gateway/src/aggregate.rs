//! Aggregation endpoints: one client request fanned out to several upstreams in parallel, each
//! part with its own deadline, answered as one JSON object — the only place the gateway reads a
//! service's payload, and then only to check it is JSON before splicing it in unchanged.
//!
//! ```toml
//! [[aggregates]]
//! name = "product-details"
//! path = "/api/v1/products/{id}/details"   # {id}: one path segment, passed to every part
//! [[aggregates.parts]]
//! name = "product"                         # the key in the answer
//! upstream = "catalog"
//! path = "/v1/products/{id}"
//! timeout_ms = 1000
//! required = true                          # its failure is the answer's failure
//! [[aggregates.parts]]
//! name = "availability"
//! upstream = "inventory"
//! path = "/v1/availability/{id}"
//! timeout_ms = 250                         # optional: late or failing → null and listed in `degraded`
//! ```
//!
//! The answer is `{"product": …, "availability": …, "degraded": ["availability"]}`, and nothing
//! else is ever a 200: a required part that refuses keeps its status (a 404 stays a 404, its
//! problem passed on when it is one), a required 2xx that is not plain JSON is a 502 problem, and
//! one that does not answer in time is a 504. Parts ask for the identity coding and no
//! conditional or partial answer, whatever the client sent, so a part's body is the JSON itself;
//! the composed answer is then compressed for the client (`encoding`). Parts go through the same
//! path as proxied requests (balancing, breaker, retries, faults, metrics), as routes named
//! `<aggregate>.<part>`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use crate::config::AggregateConfig;

use crate::body::ResponseBody;
use crate::config::aggregate::ID;
use crate::config::{GatewayConfig, Policy, RouteConfig};
use crate::fault::Faults;
use crate::route::Route;
use crate::upstream::Upstream;

/// Largest part answer read.
const MAX_PART_BYTES: usize = 1024 * 1024;

/// An aggregate, ready to serve.
#[derive(Debug)]
pub struct Aggregate {
    /// Its name.
    pub name: Arc<str>,
    segments: Vec<String>,
    /// Its policy, rate limits and metrics (label `upstream="aggregate"`).
    pub route: Arc<Route>,
    /// Its parts.
    pub parts: Vec<Part>,
}

/// One part of an aggregate.
#[derive(Debug)]
pub struct Part {
    /// Its key in the answer.
    pub name: String,
    path: String,
    required: bool,
    /// The route its requests take (named `<aggregate>.<part>`).
    pub route: Arc<Route>,
}

impl Part {
    /// Its upstream path, `{id}` included.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the aggregate fails when this part does.
    pub fn is_required(&self) -> bool {
        self.required
    }
}

impl Aggregate {
    /// The path clients call, `{id}` included.
    pub fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    /// Builds `config`'s aggregate; `faults_of` gives the faults a route of that name had.
    pub(crate) fn new(
        config: &AggregateConfig,
        gateway: &GatewayConfig,
        upstreams: &std::collections::BTreeMap<String, Arc<Upstream>>,
        faults_of: impl Fn(&str) -> Faults,
    ) -> Option<Self> {
        let parts = config
            .parts
            .iter()
            .map(|part| {
                let name = format!("{}.{}", config.name, part.name);
                let route = RouteConfig {
                    name: name.clone(),
                    prefix: part.path.clone(),
                    exact: true,
                    methods: None,
                    upstream: part.upstream.clone(),
                    rewrite: None,
                    timeout_ms: Some(part.timeout_ms),
                    body_limit_bytes: None,
                    policy: Policy::Public,
                    rate_limit: None,
                };
                let upstream = upstreams.get(&part.upstream)?.clone();
                Some(Part {
                    name: part.name.clone(),
                    path: part.path.clone(),
                    required: part.required,
                    route: Arc::new(Route::new(&route, upstream, faults_of(&name), gateway)),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let first = upstreams.get(&config.parts.first()?.upstream)?.clone();
        let route = RouteConfig {
            name: config.name.clone(),
            prefix: config.path.clone(),
            exact: true,
            methods: Some(vec!["GET".into(), "HEAD".into()]),
            upstream: first.name.to_string(),
            rewrite: None,
            timeout_ms: None,
            body_limit_bytes: None,
            policy: config.policy,
            rate_limit: None,
        };
        let mut route = Route::new(&route, first, faults_of(&config.name), gateway);
        route.metrics = crate::metrics::RouteMetrics::new(&config.name, "aggregate");
        Some(Self {
            name: Arc::from(config.name.as_str()),
            segments: config
                .path
                .trim_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect(),
            route: Arc::new(route),
            parts,
        })
    }

    /// The `{id}` of `path` if this aggregate serves it (`""` when its path has none). An id is
    /// passed on in upstream paths, so only URL-safe characters are accepted.
    pub fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        let mut id = "";
        let mut given = path.trim_matches('/').split('/');
        for segment in &self.segments {
            let value = given.next()?;
            if segment == ID {
                let safe = !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !safe {
                    return None;
                }
                id = value;
            } else if segment != value {
                return None;
            }
        }
        given.next().is_none().then_some(id)
    }

    /// The upstream path of `part` for `id`.
    pub fn part_path(part: &Part, id: &str) -> String {
        part.path.replace(ID, id)
    }
}

/// A part's result.
#[derive(Debug)]
pub enum PartAnswer {
    /// 2xx JSON in the identity coding.
    Json(Bytes),
    /// An answer that cannot be spliced in: a refusal (4xx, 5xx) or a 2xx that is not JSON.
    Unusable(Unusable),
    /// Nothing in time.
    Late,
}

/// What a required part's unusable answer becomes for the client.
#[derive(Debug)]
pub struct Unusable {
    status: StatusCode,
    /// The part's own problem, passed on when it is one a client can read as sent.
    problem: Option<Bytes>,
}

impl Unusable {
    /// The status the part answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The client's answer: a refusal keeps its status (and its problem body when it has one);
    /// a success that could not be read is the gateway's 502.
    fn into_response(self) -> Response<Bytes> {
        if self.status.is_success()
            || self.status.is_informational()
            || self.status.is_redirection()
        {
            return bad_gateway();
        }
        let Some(problem) = self.problem else {
            return gateway_problem(self.status, "this part of the shop refused the request");
        };
        let mut response = Response::new(problem);
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(souk_chassis::problem::CONTENT_TYPE),
        );
        response
    }
}

/// Reads a part's response whole, within what is left of its deadline.
pub(crate) async fn read_part(response: Response<ResponseBody>) -> PartAnswer {
    let (parts, body) = response.into_parts();
    let unusable = |problem| {
        PartAnswer::Unusable(Unusable {
            status: parts.status,
            problem,
        })
    };
    let Ok(collected) = Limited::new(body, MAX_PART_BYTES).collect().await else {
        return unusable(None);
    };
    let bytes = collected.to_bytes();
    // A coded body (the part ignored `Accept-Encoding: identity`) is never JSON as it stands.
    let identity = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let media_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    let is_json = |expected: &str| {
        identity
            && media_type.is_some_and(|t| t.eq_ignore_ascii_case(expected))
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
    };
    if parts.status.is_success() {
        return match is_json("application/json") {
            true => PartAnswer::Json(bytes),
            false => unusable(None),
        };
    }
    match is_json(souk_chassis::problem::CONTENT_TYPE) {
        true => unusable(Some(bytes)),
        false => unusable(None),
    }
}

/// Request headers a part never carries: its body framing and type (a part has no body), and
/// what would make its answer anything but the whole JSON in the identity coding — codings,
/// ranges and conditions.
const NOT_FOR_PARTS: [header::HeaderName; 11] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ACCEPT_ENCODING,
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// The request a part sends: the client's prepared headers (identity, trace, request id), no
/// body, and nothing that changes the shape of the answer.
pub(crate) fn part_request(
    client: &http::request::Parts,
    path: &str,
) -> Option<http::request::Parts> {
    let (mut parts, ()) = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(())
        .ok()?
        .into_parts();
    parts.headers = client.headers.clone();
    if let Some(trace) = client.extensions.get::<crate::spans::InTrace>() {
        parts.extensions.insert(trace.clone());
    }
    for name in &NOT_FOR_PARTS {
        parts.headers.remove(name);
    }
    parts.headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    parts
        .headers
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    Some(parts)
}

/// Puts the answers together: 200 with every part, or the client's answer for the first required
/// part that failed.
pub(crate) fn compose(
    aggregate: &Aggregate,
    answers: Vec<PartAnswer>,
    timeout: Duration,
) -> Result<Response<Bytes>, Response<Bytes>> {
    let mut body = Vec::with_capacity(1024);
    let mut degraded = Vec::new();
    body.push(b'{');
    for (part, answer) in aggregate.parts.iter().zip(answers) {
        body.extend_from_slice(b"\"");
        body.extend_from_slice(part.name.as_bytes());
        body.extend_from_slice(b"\":");
        match (answer, part.required) {
            (PartAnswer::Json(bytes), _) => body.extend_from_slice(&bytes),
            (PartAnswer::Unusable(unusable), true) => return Err(unusable.into_response()),
            (PartAnswer::Late, true) => return Err(late(timeout)),
            (PartAnswer::Unusable(_) | PartAnswer::Late, false) => {
                metrics::counter!(
                    "gateway_aggregate_degraded_total",
                    "aggregate" => aggregate.name.to_string(),
                    "part" => part.name.clone()
                )
                .increment(1);
                degraded.push(part.name.as_str());
                body.extend_from_slice(b"null");
            }
        }
        body.push(b',');
    }
    body.extend_from_slice(b"\"degraded\":[");
    for (i, name) in degraded.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"\"");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"\"");
    }
    body.extend_from_slice(b"]}");
    let mut response = Response::new(Bytes::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn gateway_problem(status: StatusCode, detail: &str) -> Response<Bytes> {
    let problem = souk_chassis::Problem::new(status).with_detail(detail);
    let mut response = Response::new(Bytes::from(
        serde_json::to_vec(&problem).unwrap_or_default(),
    ));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(souk_chassis::problem::CONTENT_TYPE),
    );
    response
}

fn bad_gateway() -> Response<Bytes> {
    gateway_problem(
        StatusCode::BAD_GATEWAY,
        "this part of the shop sent an answer that could not be read",
    )
}

fn late(timeout: Duration) -> Response<Bytes> {
    tracing::debug!(?timeout, "a required aggregate part was late");
    gateway_problem(
        StatusCode::GATEWAY_TIMEOUT,
        "this part of the shop did not answer in time",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    fn config(extra: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::parse(&format!(
            r#"
            [upstreams.catalog]
            endpoints = ["127.0.0.1:1"]
            [upstreams.inventory]
            endpoints = ["127.0.0.1:2"]
            [[aggregates]]
            name = "product-details"
            path = "/api/v1/products/{{id}}/details"
            [[aggregates.parts]]
            name = "product"
            upstream = "catalog"
            path = "/v1/products/{{id}}"
            timeout_ms = 1000
            required = true
            [[aggregates.parts]]
            name = "availability"
            upstream = "inventory"
            path = "/v1/availability/{{id}}"
            timeout_ms = 250
            {extra}
            "#
        ))
    }

    fn aggregate() -> Aggregate {
        let config = config("").unwrap();
        let table = crate::table::Table::build(config, None, &crate::clock::Clock::manual());
        let aggregate = Arc::clone(&table.aggregates[0]);
        drop(table);
        Arc::try_unwrap(aggregate).unwrap()
    }

    #[test]
    fn paths_match_whole_segments_and_safe_ids_only() {
        let aggregate = aggregate();
        assert_eq!(
            aggregate.matches("/api/v1/products/0190-ab_C/details"),
            Some("0190-ab_C")
        );
        assert_eq!(aggregate.matches("/api/v1/products/x/details/"), Some("x"));
        for path in [
            "/api/v1/products/x",
            "/api/v1/products//details",
            "/api/v1/products/x/details/more",
            "/api/v1/products/..%2F/details",
            "/api/v1/products/a.b/details",
            "/api/v1/product/x/details",
        ] {
            assert_eq!(aggregate.matches(path), None, "{path}");
        }
        assert_eq!(
            Aggregate::part_path(&aggregate.parts[0], "abc"),
            "/v1/products/abc"
        );
        assert_eq!(
            &*aggregate.parts[1].route.name,
            "product-details.availability"
        );
    }

    #[test]
    fn optional_failures_degrade_and_required_ones_fail() {
        let aggregate = aggregate();
        let ok = |s: &'static str| PartAnswer::Json(Bytes::from_static(s.as_bytes()));
        let answer = compose(
            &aggregate,
            vec![ok(r#"{"id":"p"}"#), ok("{\"quantity\":3}")],
            Duration::ZERO,
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"product": {"id": "p"}, "availability": {"quantity": 3}, "degraded": []})
        );
        let answer = compose(&aggregate, vec![ok("{}"), PartAnswer::Late], Duration::ZERO).unwrap();
        let value: serde_json::Value = serde_json::from_slice(answer.body()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"product": {}, "availability": null, "degraded": ["availability"]})
        );
        let missing = Unusable {
            status: StatusCode::NOT_FOUND,
            problem: None,
        };
        let failed = compose(
            &aggregate,
            vec![PartAnswer::Unusable(missing), ok("{}")],
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(failed.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            failed.headers()[header::CONTENT_TYPE],
            souk_chassis::problem::CONTENT_TYPE
        );
        // A success that could not be read is never passed on as the aggregate's 200.
        let unreadable = Unusable {
            status: StatusCode::OK,
            problem: None,
        };
        let failed = compose(
            &aggregate,
            vec![PartAnswer::Unusable(unreadable), ok("{}")],
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
        let failed =
            compose(&aggregate, vec![PartAnswer::Late, ok("{}")], Duration::ZERO).unwrap_err();
        assert_eq!(failed.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn invalid_aggregates_are_refused_naming_the_key() {
        let bad = [
            (
                "[[aggregates]]\nname = \"product-details\"\npath = \"/x\"\nparts = []",
                "aggregates[1].name",
            ),
            (
                "[[aggregates]]\nname = \"x\"\npath = \"/x\"\nparts = []",
                "aggregates[1].parts",
            ),
            (
                "[[aggregates]]\nname = \"x\"\npath = \"/{id}/{id}\"\n[[aggregates.parts]]\nname = \"a\"\nupstream = \"catalog\"\npath = \"/a\"\ntimeout_ms = 1",
                "aggregates[1].path",
            ),
            (
                "[[aggregates]]\nname = \"x\"\npath = \"/x\"\n[[aggregates.parts]]\nname = \"degraded\"\nupstream = \"catalog\"\npath = \"/a\"\ntimeout_ms = 1",
                "aggregates[1].parts[0].name",
            ),
            (
                "[[aggregates]]\nname = \"x\"\npath = \"/x\"\n[[aggregates.parts]]\nname = \"a\"\nupstream = \"nope\"\npath = \"/a\"\ntimeout_ms = 1",
                "aggregates[1].parts[0].upstream",
            ),
            (
                "[[aggregates]]\nname = \"x\"\npath = \"/x\"\n[[aggregates.parts]]\nname = \"a\"\nupstream = \"catalog\"\npath = \"/a\"\ntimeout_ms = 0",
                "aggregates[1].parts[0].timeout_ms",
            ),
        ];
        for (extra, key) in bad {
            let err = config(extra).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}

//! The gateway's own answers: problem+json.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::ResponseBody;
use crate::headers;

/// A problem+json answer made by the gateway.
#[derive(Debug)]
pub(super) struct Problem {
    status: StatusCode,
    detail: &'static str,
    extra: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    /// What the answer says.
    pub(super) fn detail(&self) -> &'static str {
        self.detail
    }
}

pub(super) fn problem(status: StatusCode, detail: &'static str) -> Problem {
    Problem {
        status,
        detail,
        extra: Vec::new(),
    }
}

/// 429 with `Retry-After` and the `RateLimit-*` headers of the IETF draft.
pub(super) fn too_many(exceeded: crate::limit::Exceeded) -> Problem {
    let reset = exceeded
        .retry_after
        .as_secs_f64()
        .ceil()
        .max(1.0)
        .to_string();
    problem(
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests; slow down and try again shortly",
    )
    .with_header(header::RETRY_AFTER, &reset)
    .with_header(
        header::HeaderName::from_static("ratelimit-limit"),
        &exceeded.limit.to_string(),
    )
    .with_header(header::HeaderName::from_static("ratelimit-remaining"), "0")
    .with_header(header::HeaderName::from_static("ratelimit-reset"), &reset)
}

pub(super) fn too_large() -> Problem {
    problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than this route accepts",
    )
}

impl Problem {
    pub(super) fn with_header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::try_from(value) {
            self.extra.push((name, value));
        }
        self
    }

    pub(super) fn into_response(self, request_id: &HeaderValue) -> Response<ResponseBody> {
        let body = souk_chassis::Problem::new(self.status).with_detail(self.detail);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(ResponseBody::whole(bytes));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(souk_chassis::problem::CONTENT_TYPE),
        );
        headers.insert(headers::REQUEST_ID, request_id.clone());
        for (name, value) in self.extra {
            headers.insert(name, value);
        }
        response
    }
}

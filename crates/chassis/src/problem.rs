//! RFC 9457 problem details: the one error format every souk service answers with.
//!
//! Services map their own error enums to a [`Problem`]; this is the single mapping to HTTP.
//! Internal errors are logged once, inside the request span, and the client sees only an opaque 500.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem details object (`application/problem+json`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a person to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field-level validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    #[schema(ignore)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Extension members (RFC 9457 §3.2), sent beside the standard ones (see [`Problem::to_json`]).
    #[serde(skip)]
    #[schema(ignore)]
    extensions: serde_json::Map<String, serde_json::Value>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as the client named it (`limit`, `shipping_address.country`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// One invalid field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// A problem described by its status alone (`type: about:blank`, title = reason phrase).
    pub fn new(status: StatusCode) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            headers: Vec::new(),
            extensions: serde_json::Map::new(),
        }
    }

    /// A problem of a named kind: `type` becomes `urn:souk:problem:<slug>`.
    pub fn typed(status: StatusCode, slug: &str, title: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:souk:problem:{slug}"),
            title: title.into(),
            ..Self::new(status)
        }
    }

    /// Adds a human-readable explanation of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a response header (`Allow`, `Retry-After`, `WWW-Authenticate`, …).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds `Retry-After: <seconds>`: when the same request is worth sending again.
    pub fn with_retry_after(self, seconds: u32) -> Self {
        self.with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// Adds the members of `extension` (a struct or a map) beside the standard ones, as RFC 9457
    /// §3.2 allows: what a client needs to act on this problem (the conflicting reservation, the
    /// decline code). A value that does not serialise to a JSON object adds nothing.
    pub fn with_extensions(mut self, extension: &impl Serialize) -> Self {
        if let Ok(serde_json::Value::Object(members)) = serde_json::to_value(extension) {
            self.extensions.extend(members);
        }
        self
    }

    /// The body as sent. With extensions, every member is in one object sorted by name (an
    /// extension of a standard member's name replaces it); without, the standard members in
    /// their declared order.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        if self.extensions.is_empty() {
            return serde_json::to_string(self);
        }
        let mut body = serde_json::to_value(self)?;
        if let serde_json::Value::Object(members) = &mut body {
            members.extend(self.extensions.clone());
        }
        Ok(body.to_string())
    }

    /// 400: the request cannot be read (malformed JSON, bad query string, bad path segment).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::typed(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
    }

    /// 404: the resource does not exist (or is not the caller's to see).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::typed(StatusCode::NOT_FOUND, "not-found", "Not found").with_detail(detail)
    }

    /// 422: the request is well-formed but some fields are invalid.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
        )
        .with_errors(errors)
    }

    /// 400: some query parameters are invalid (out of range, an undecodable cursor).
    pub fn invalid_query(errors: Vec<FieldError>) -> Self {
        Self::typed(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query string",
        )
        .with_errors(errors)
    }

    /// Lists the invalid fields, and sums them up in `detail`.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.detail = match errors.as_slice() {
            [] => self.detail,
            [one] => Some(format!("{}: {}", one.field, one.message)),
            many => Some(format!("{} fields are invalid", many.len())),
        };
        self.errors = errors;
        self
    }

    /// 500: logs `error` with its source chain in the current span; the client learns nothing more.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(error), "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR)
            .with_detail("an internal error occurred; it has been logged")
    }

    /// 503: a dependency is unavailable; try again later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::typed(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail(detail)
    }

    /// 503 `unavailable` because the service's database cannot answer now (see
    /// [`crate::db::is_unavailable`] and [`crate::db::is_transient`]): logs `error` as a warning in
    /// the current span; `detail` tells the client whose database, and nothing of the cause.
    pub fn database_unavailable(
        error: &(dyn std::error::Error + 'static),
        detail: impl Into<String>,
    ) -> Self {
        tracing::warn!(error = %ErrorChain(error), "database unavailable");
        Self::unavailable(detail)
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match self.to_json() {
            Ok(body) => body.into_bytes(),
            // Serialising a struct of strings cannot fail; keep a body anyway.
            Err(_) => {
                br#"{"type":"about:blank","title":"Internal Server Error","status":500}"#.to_vec()
            }
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

/// Displays an error and all its sources, `outer: inner: innermost`.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

/// Middleware body: gives every error response that is not problem+json already a problem body.
///
/// Responses that axum and tower-http make on their own (404 for an unknown path, 405 with
/// `Allow`, timeouts, 413 from the body limit, plain-text extractor rejections) keep their status
/// and headers but take our format. A client error's short plain-text explanation becomes `detail`;
/// a server error's text is dropped, as it may describe internals. HTML error pages (the
/// storefront's, for people) are kept as they are.
pub async fn problemize(response: Response) -> Response {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // An HTML page is a deliberate error page for people (the storefront's): kept as it is.
    if !(status.is_client_error() || status.is_server_error())
        || content_type.starts_with(CONTENT_TYPE)
        || content_type.starts_with("text/html")
    {
        return response;
    }
    let is_text = content_type.starts_with("text/plain");
    let (parts, body) = response.into_parts();
    let mut problem = Problem::new(status);
    problem.detail = default_detail(status).map(str::to_owned);
    if is_text
        && status.is_client_error()
        && let Ok(bytes) = axum::body::to_bytes(body, 1024).await
    {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if !text.is_empty() {
            problem.detail = Some(text);
        }
    }
    let mut fresh = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            fresh
                .headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    fresh
}

fn default_detail(status: StatusCode) -> Option<&'static str> {
    Some(match status {
        StatusCode::NOT_FOUND => "no resource at this path",
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed here; see the Allow header",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than this endpoint accepts",
        StatusCode::SERVICE_UNAVAILABLE => "the service could not answer in time; try again later",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn problems_have_the_rfc_9457_shape() {
        let response =
            Problem::validation(vec![FieldError::new("limit", "must be between 1 and 100")])
                .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = body_json(response).await;
        assert_eq!(body["type"], "urn:souk:problem:validation");
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][0]["field"], "limit");
        assert_eq!(body["detail"], "limit: must be between 1 and 100");
    }

    #[tokio::test]
    async fn extensions_stand_beside_the_standard_members_and_headers_stay() {
        #[derive(Serialize)]
        struct Conflict {
            reservation_id: &'static str,
        }
        let problem = Problem::typed(StatusCode::CONFLICT, "conflict", "Conflict")
            .with_detail("taken")
            .with_retry_after(1)
            .with_extensions(&Conflict {
                reservation_id: "r1",
            });
        let expected = r#"{"detail":"taken","reservation_id":"r1","status":409,"title":"Conflict","type":"urn:souk:problem:conflict"}"#;
        assert_eq!(problem.to_json().unwrap(), expected);
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, expected.as_bytes());
    }

    #[test]
    fn problems_without_extensions_keep_their_member_order() {
        let json = Problem::not_found("gone").to_json().unwrap();
        assert_eq!(
            json,
            r#"{"type":"urn:souk:problem:not-found","title":"Not found","status":404,"detail":"gone"}"#
        );
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_503_that_names_no_cause() {
        let err = std::io::Error::other("connection to 10.0.0.5 refused");
        let problem = Problem::database_unavailable(&err, "the shelf is unavailable; try again");
        let body = body_json(problem.into_response()).await;
        assert_eq!(body["status"], 503);
        assert_eq!(body["type"], "urn:souk:problem:unavailable");
        assert_eq!(body["detail"], "the shelf is unavailable; try again");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let err = std::io::Error::other("disk on fire at /var/lib/secret");
        let body = body_json(Problem::internal(&err).into_response()).await;
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn bodiless_errors_get_a_problem_body_and_keep_their_headers() {
        let response = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
        )
            .into_response();
        let response = problemize(response).await;
        assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(body_json(response).await["status"], 405);
    }

    #[tokio::test]
    async fn plain_text_client_errors_keep_their_text_as_detail() {
        let response = problemize((StatusCode::BAD_REQUEST, "bad form").into_response()).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(body_json(response).await["detail"], "bad form");
        let response =
            problemize((StatusCode::INTERNAL_SERVER_ERROR, "db password wrong").into_response())
                .await;
        assert!(!body_json(response).await.to_string().contains("password"));
    }

    #[tokio::test]
    async fn successes_and_problems_pass_through() {
        let ok = problemize(StatusCode::NO_CONTENT.into_response()).await;
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        let own = problemize(Problem::not_found("no such product").into_response()).await;
        assert_eq!(body_json(own).await["detail"], "no such product");
    }
}

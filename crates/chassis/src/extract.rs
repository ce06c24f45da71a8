//! Our own extractors: axum's, with their rejections turned into problem+json.
//!
//! Handlers use these instead of `axum::Json`, `axum::extract::Query` and `axum::extract::Path`
//! (clippy.toml points there), so malformed JSON is a 400, a wrong content type a 415, an oversized
//! body a 413, unknown or mistyped fields a 422, and a bad path or query a 400 — all in one format.

// These wrappers are the one place allowed to use axum's own extractors.
#![allow(clippy::disallowed_types)]

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON request body or response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// A query string, deserialised into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

/// Path parameters, deserialised into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::typed(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected a JSON body",
            )
            .with_detail("send the body with Content-Type: application/json"));
        }
        let bytes = match bytes::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => return Err(body_problem(&rejection)),
        };
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection @ JsonRejection::JsonDataError(_)) => {
                integral_floats_as_integers(&bytes).ok_or_else(|| json_problem(&rejection))
            }
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// `application/json`, or any `application/*+json`, whatever its parameters.
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// `bytes` read again with every number whose fraction is zero (`289.0`, `1e2`) taken as the
/// integer it is — JSON Schema's `integer`, which the OpenAPI documents promise — for bodies
/// whose integer fields a client wrote that way. Only tried after the plain read failed, so
/// it costs nothing on the usual path; `None` when it does not help.
fn integral_floats_as_integers<T: DeserializeOwned>(bytes: &[u8]) -> Option<Json<T>> {
    fn walk(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(number) => {
                let Some(float) = number.as_f64().filter(|_| number.is_f64()) else {
                    return false;
                };
                #[allow(clippy::cast_possible_truncation, clippy::float_cmp)]
                let integral = if float.fract() == 0.0 && float.abs() < 9.0e15 {
                    Some(float as i64)
                } else {
                    None
                };
                match integral {
                    Some(integer) => {
                        *number = serde_json::Number::from(integer);
                        true
                    }
                    None => false,
                }
            }
            // Every value is walked: a count of changes, not a short-circuiting `any`.
            serde_json::Value::Array(items) => {
                items.iter_mut().map(walk).filter(|c| *c).count() > 0
            }
            serde_json::Value::Object(map) => map.values_mut().map(walk).filter(|c| *c).count() > 0,
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !walk(&mut value) {
        return None;
    }
    serde_json::from_value(value).ok().map(Json)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_problem(&rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let (slug, title) = match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Expected a JSON body"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Request body too large"),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "invalid-body",
            "The JSON body does not match the expected shape",
        ),
        status if status.is_server_error() => return Problem::internal(rejection),
        _ => ("malformed-json", "Malformed JSON body"),
    };
    let detail = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body with Content-Type: application/json".to_owned()
        }
        other => other.body_text(),
    };
    Problem::typed(rejection.status(), slug, title).with_detail(detail)
}

fn body_problem(rejection: &axum::extract::rejection::BytesRejection) -> Problem {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Problem::typed(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
        )
        .with_detail(rejection.body_text()),
        status if status.is_server_error() => Problem::internal(rejection),
        status => Problem::typed(status, "unreadable-body", "The body could not be read")
            .with_detail(rejection.body_text()),
    }
}

fn query_problem(rejection: &QueryRejection) -> Problem {
    Problem::typed(
        StatusCode::BAD_REQUEST,
        "invalid-query",
        "Invalid query string",
    )
    .with_detail(rejection.body_text())
}

fn path_problem(rejection: &PathRejection) -> Problem {
    if rejection.status().is_server_error() {
        return Problem::internal(rejection);
    }
    Problem::typed(
        StatusCode::BAD_REQUEST,
        "invalid-path",
        "Invalid path parameter",
    )
    .with_detail(rejection.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        quantity: u8,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/items",
                post(|Json(item): Json<Item>| async move { Json(item) }),
            )
            .route(
                "/items/{id}",
                get(|Path(id): Path<uuid::Uuid>| async move { id.to_string() }),
            )
            .route(
                "/search",
                get(
                    |Query(q): Query<std::collections::HashMap<String, u32>>| async move {
                        q.len().to_string()
                    },
                ),
            )
            .layer(axum::extract::DefaultBodyLimit::max(64))
    }

    async fn call(req: http::Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app().oneshot(req).await.unwrap();
        let status = response.status();
        if status.is_success() {
            return (status, serde_json::Value::Null);
        }
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            crate::problem::CONTENT_TYPE
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn post_json(body: &str, content_type: &str) -> http::Request<Body> {
        http::Request::post("/items")
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn good_json_passes() {
        let (status, _) = call(post_json(
            r#"{"name":"a","quantity":1}"#,
            "application/json",
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn malformed_json_is_400() {
        let (status, body) = call(post_json(r#"{"name":"a","#, "application/json")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["type"], "urn:souk:problem:malformed-json");
    }

    #[tokio::test]
    async fn wrong_content_type_is_415() {
        let (status, _) = call(post_json(r#"{"name":"a","quantity":1}"#, "text/plain")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn unknown_or_mistyped_fields_are_422() {
        let (status, _) = call(post_json(
            r#"{"name":"a","quantity":1,"price":1}"#,
            "application/json",
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = call(post_json(
            r#"{"name":"a","quantity":1000}"#,
            "application/json",
        ))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn integers_written_as_integral_numbers_are_integers() {
        // JSON Schema's `integer` is any number without a fraction: 2.0 and 2e0 are 2.
        for body in [
            r#"{"name":"a","quantity":2.0}"#,
            r#"{"name":"a","quantity":2e0}"#,
        ] {
            let (status, body) = call(post_json(body, "application/json")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        for body in [
            r#"{"name":"a","quantity":2.5}"#,
            r#"{"name":"a","quantity":1e300}"#,
            r#"{"name":"a","quantity":2.0,"price":1}"#,
        ] {
            let (status, _) = call(post_json(body, "application/json")).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        for content_type in [
            "application/json; charset=utf-8",
            "application/problem+json",
        ] {
            let (status, _) = call(post_json(r#"{"name":"a","quantity":1}"#, content_type)).await;
            assert_eq!(status, StatusCode::OK, "{content_type}");
        }
        let (status, _) = call(post_json(
            r#"{"name":"a","quantity":1}"#,
            "application/jsonx",
        ))
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let big = format!(r#"{{"name":"{}","quantity":1}}"#, "x".repeat(200));
        let (status, body) = call(post_json(&big, "application/json")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["status"], 413);
    }

    #[tokio::test]
    async fn bad_path_and_query_are_400() {
        let (status, body) = call(
            http::Request::get("/items/not-a-uuid")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["type"], "urn:souk:problem:invalid-path");
        let (status, _) = call(
            http::Request::get("/search?a=x")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

//! The OTLP/HTTP trace receiver: `POST /v1/traces` with an `ExportTraceServiceRequest` in
//! either encoding the OTLP specification defines — binary protobuf (`application/x-protobuf`)
//! or JSON (`application/json`: hex ids, integer enums) — optionally gzipped. It answers 200 in
//! the request's encoding, with `partial_success` naming the spans it could not take (bad ids);
//! 400 (a `google.rpc.Status` in the request's encoding) for a body that is not an export
//! request or that grows past the limit once decompressed; 415 for another content type; 413
//! (axum's) for a body past the limit as sent. Whatever arrives, the receiver answers; it never
//! panics on input.
//!
//! Hostile input is bounded three ways: a body of at most [`MAX_BODY_BYTES`], decompressed
//! included (decoding multiplies it: an empty span is 2 bytes on the wire and ~260 in memory,
//! so one export costs at most ~130 MiB while it is decoded); one export decoded at a time, on a
//! blocking thread, not on the admin listener's thread (whose health checks and readiness must
//! not wait on it); and every string kept cut to [`MAX_TEXT_BYTES`] (a service name to
//! [`MAX_NAME_BYTES`]), with at most [`MAX_ITEMS`] attributes, events and links a span.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message;

use super::store::{Span, SpanEvent, SpanId, SpanLink, Status, TraceId, TraceStore};

/// The largest export request taken, compressed or not (the SDK's batches of 512 spans are a
/// few hundred KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest string kept (an attribute's value, an SQL statement): longer ones are cut.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The longest service, span, event or attribute name kept.
pub const MAX_NAME_BYTES: usize = 256;
/// The most attributes, events and links kept per span (and attributes per event or link).
pub const MAX_ITEMS: usize = 128;

/// One export decoded at a time: decoding is where hostile input costs memory.
static DECODING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The receiver's routes.
pub fn router(store: Arc<TraceStore>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(store)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn export(State(store): State<Arc<TraceStore>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let encoding = match content_type.as_deref() {
        Some("application/x-protobuf" | "application/protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        _ => {
            return refusal(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "OTLP/HTTP wants Content-Type application/x-protobuf or application/json",
            );
        }
    };
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => body,
        Some("gzip") => match gunzip(&body) {
            Ok(body) => body,
            Err(message) => return refusal(encoding, StatusCode::BAD_REQUEST, &message),
        },
        Some(_) => {
            return refusal(
                encoding,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Encoding must be gzip or absent",
            );
        }
    };
    let Ok(_turn) = DECODING.acquire().await else {
        return refusal(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            "the receiver is closing",
        );
    };
    let decoded = tokio::task::spawn_blocking(move || {
        let request = match encoding {
            Encoding::Protobuf => {
                ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
            }
            Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&body)
                .map_err(|e| e.to_string()),
        };
        request.map(spans_of)
    })
    .await
    .unwrap_or_else(|e| Err(format!("decoding failed: {e}")));
    let (spans, rejected) = match decoded {
        Ok(decoded) => decoded,
        Err(err) => {
            tracing::debug!(%err, "malformed OTLP export refused");
            return refusal(
                encoding,
                StatusCode::BAD_REQUEST,
                &format!("not an OTLP ExportTraceServiceRequest: {err}"),
            );
        }
    };
    store.insert(spans);
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected,
        error_message: format!("{rejected} spans had no valid trace or span id"),
    });
    answer(
        encoding,
        StatusCode::OK,
        &ExportTraceServiceResponse { partial_success },
    )
}

/// Decompresses a gzipped body, refusing one that grows past [`MAX_BODY_BYTES`].
fn gunzip(body: &[u8]) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1;
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzipped body could not be read: {e}"))?;
    if out.len() > MAX_BODY_BYTES {
        return Err(format!(
            "the body grows past {MAX_BODY_BYTES} bytes when decompressed"
        ));
    }
    Ok(out.into())
}

fn answer(
    encoding: Encoding,
    status: StatusCode,
    response: &ExportTraceServiceResponse,
) -> Response {
    match encoding {
        Encoding::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}

/// An error answer as OTLP/HTTP defines it: a `google.rpc.Status` in the request's encoding.
fn refusal(encoding: Encoding, status: StatusCode, message: &str) -> Response {
    // google.rpc.Status is not among the crate's types; its JSON form is {code, message}, and
    // its protobuf form is field 1 (code, varint) and field 2 (message, string).
    match encoding {
        Encoding::Json => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "code": grpc_code(status), "message": message }).to_string(),
        )
            .into_response(),
        Encoding::Protobuf => {
            let mut body = Vec::with_capacity(message.len() + 8);
            prost::encoding::int32::encode(1, &grpc_code(status), &mut body);
            prost::encoding::string::encode(2, &message.to_owned(), &mut body);
            (
                status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                body,
            )
                .into_response()
        }
    }
}

/// The gRPC status code for an HTTP refusal (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …).
fn grpc_code(status: StatusCode) -> i32 {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 2,
    }
}

/// The request's spans as the store keeps them, and how many were refused for bad ids.
pub fn spans_of(request: ExportTraceServiceRequest) -> (Vec<Span>, i64) {
    let mut spans = Vec::new();
    let mut rejected = 0i64;
    for resource_spans in request.resource_spans {
        let resource_service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| string_attribute(&r.attributes, "service.name"))
            .unwrap_or("unknown");
        let resource_service: Arc<str> = Arc::from(cut(resource_service, MAX_NAME_BYTES));
        for scope in resource_spans.scope_spans {
            for otlp in scope.spans {
                match span_of(otlp, &resource_service) {
                    Some(span) => spans.push(span),
                    None => rejected += 1,
                }
            }
        }
    }
    (spans, rejected)
}

fn span_of(
    otlp: opentelemetry_proto::tonic::trace::v1::Span,
    resource_service: &Arc<str>,
) -> Option<Span> {
    let trace_id = TraceId::from_bytes(&otlp.trace_id)?;
    let span_id = SpanId::from_bytes(&otlp.span_id)?;
    let parent_span_id = match otlp.parent_span_id.as_slice() {
        [] => None,
        bytes => Some(SpanId::from_bytes(bytes)?),
    };
    // In one process running several services (the monolith) a span names its own service.
    let service = string_attribute(&otlp.attributes, "souk.service").map_or_else(
        || Arc::clone(resource_service),
        |s| Arc::from(cut(s, MAX_NAME_BYTES)),
    );
    let (status, status_message) = match otlp.status {
        Some(s) if s.code == status::StatusCode::Error as i32 => (
            Status::Error,
            Some(cut_owned(s.message, MAX_TEXT_BYTES)).filter(|m| !m.is_empty()),
        ),
        Some(s) if s.code == status::StatusCode::Ok as i32 => (Status::Ok, None),
        _ => (Status::Unset, None),
    };
    Some(Span {
        trace_id,
        span_id,
        parent_span_id,
        service,
        name: cut_owned(otlp.name, MAX_NAME_BYTES),
        kind: kind_name(otlp.kind),
        start_unix_nano: otlp.start_time_unix_nano,
        end_unix_nano: otlp.end_time_unix_nano.max(otlp.start_time_unix_nano),
        status,
        status_message,
        attributes: attributes(otlp.attributes),
        events: otlp
            .events
            .into_iter()
            .take(MAX_ITEMS)
            .map(|e| SpanEvent {
                name: cut_owned(e.name, MAX_NAME_BYTES),
                time_unix_nano: e.time_unix_nano,
                attributes: attributes(e.attributes),
            })
            .collect(),
        links: otlp
            .links
            .into_iter()
            .take(MAX_ITEMS)
            .filter_map(|l| {
                Some(SpanLink {
                    trace_id: TraceId::from_bytes(&l.trace_id)?,
                    span_id: SpanId::from_bytes(&l.span_id)?,
                    attributes: attributes(l.attributes),
                })
            })
            .collect(),
    })
}

fn kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Server) => "server",
        Ok(span::SpanKind::Client) => "client",
        Ok(span::SpanKind::Producer) => "producer",
        Ok(span::SpanKind::Consumer) => "consumer",
        _ => "internal",
    }
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn attributes(attributes: Vec<KeyValue>) -> Vec<(String, serde_json::Value)> {
    attributes
        .into_iter()
        .take(MAX_ITEMS)
        .map(|kv| {
            let value = kv.value.map_or(serde_json::Value::Null, json_value);
            (cut_owned(kv.key, MAX_NAME_BYTES), bounded(value))
        })
        .collect()
}

/// `value` with its strings cut to [`MAX_TEXT_BYTES`] and its arrays and maps to
/// [`MAX_ITEMS`] entries, nested values flattened to their text past the first level.
fn bounded(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let flat = |v: J| match v {
        J::String(s) => J::String(cut_owned(s, MAX_TEXT_BYTES)),
        J::Array(_) | J::Object(_) => J::String(cut_owned(v.to_string(), MAX_TEXT_BYTES)),
        other => other,
    };
    match value {
        J::Array(items) => J::Array(items.into_iter().take(MAX_ITEMS).map(flat).collect()),
        J::Object(map) => J::Object(
            map.into_iter()
                .take(MAX_ITEMS)
                .map(|(k, v)| (cut_owned(k, MAX_NAME_BYTES), flat(v)))
                .collect(),
        ),
        other => flat(other),
    }
}

/// `text`'s first `max` bytes at most, cut on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn cut_owned(mut text: String, max: usize) -> String {
    let len = cut(&text, max).len();
    text.truncate(len);
    text
}

fn json_value(any: AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match any.value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s),
        Some(any_value::Value::BoolValue(b)) => J::Bool(b),
        Some(any_value::Value::IntValue(i)) => J::from(i),
        Some(any_value::Value::DoubleValue(d)) => J::from(d),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.into_iter().map(json_value).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .into_iter()
                .map(|kv| (kv.key, kv.value.map_or(J::Null, json_value)))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(b)) => {
            J::String(b.iter().map(|byte| format!("{byte:02x}")).collect())
        }
        Some(_) => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::super::store::Limits;
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use tower::ServiceExt;

    fn store() -> Arc<TraceStore> {
        Arc::new(TraceStore::new(Limits {
            max_spans: 1_000,
            max_bytes: 1 << 20,
        }))
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..KeyValue::default()
        }
    }

    fn request(
        spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    ) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "orders")],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn span(trace: u8, id: u8, parent: Option<u8>) -> opentelemetry_proto::tonic::trace::v1::Span {
        opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map_or_else(Vec::new, |p| vec![p; 8]),
            name: format!("span {id}"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000_000,
            attributes: vec![kv("http.route", "/v1/orders")],
            ..Default::default()
        }
    }

    async fn post(
        store: &Arc<TraceStore>,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut request = Request::post("/v1/traces").header(header::CONTENT_TYPE, content_type);
        if let Some(encoding) = encoding {
            request = request.header(header::CONTENT_ENCODING, encoding);
        }
        let response = router(Arc::clone(store))
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, body.to_vec())
    }

    #[tokio::test]
    async fn protobuf_exports_are_stored_with_their_service() {
        let store = store();
        let body = request(vec![span(7, 1, None), span(7, 2, Some(1))]).encode_to_vec();
        let (status, content_type, answer) =
            post(&store, "application/x-protobuf", None, body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/x-protobuf");
        let answer = ExportTraceServiceResponse::decode(answer.as_slice()).unwrap();
        assert!(answer.partial_success.is_none());
        let spans = store.trace(TraceId([7; 16]));
        assert_eq!(spans.len(), 2);
        assert_eq!(&*spans[0].service, "orders");
        assert_eq!(spans[1].parent_span_id, Some(SpanId([1; 8])));
        assert_eq!(spans[0].kind, "server");
    }

    #[tokio::test]
    async fn json_exports_are_read_as_the_otlp_specification_writes_them() {
        let store = store();
        // As the specification's example shows it: hex ids, integer enums, nanoseconds as strings.
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174",
                "parentSpanId": "eee19b7ec3c1b173",
                "name": "I'm a server span",
                "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": "1544712661000000000",
                "kind": 2,
                "attributes": [{"key": "my.span.attr", "value": {"intValue": "42"}}],
                "status": {"code": 2, "message": "boom"}
            }]}]
        }]});
        let (status, content_type, _) = post(
            &store,
            "application/json",
            None,
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        let id = TraceId::parse("5b8efff798038103d269b633813fc60c").unwrap();
        let spans = store.trace(id);
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert_eq!(&*spans[0].service, "cart");
        assert_eq!(spans[0].status, Status::Error);
        assert_eq!(spans[0].status_message.as_deref(), Some("boom"));
        assert_eq!(spans[0].duration_ms(), 1_000.0);
        assert_eq!(
            spans[0].attribute("my.span.attr"),
            Some(&serde_json::json!(42))
        );
    }

    #[tokio::test]
    async fn gzipped_exports_are_read() {
        use std::io::Write;
        let store = store();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&request(vec![span(3, 1, None)]).encode_to_vec())
            .unwrap();
        let (status, _, _) = post(
            &store,
            "application/x-protobuf",
            Some("gzip"),
            gz.finish().unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(store.trace(TraceId([3; 16])).len(), 1);
    }

    #[tokio::test]
    async fn malformed_exports_are_400_and_store_nothing() {
        let store = store();
        let bodies: [(&str, Option<&str>, Vec<u8>); 6] = [
            ("application/x-protobuf", None, vec![0xff, 0xff, 0xff, 0x0f]),
            ("application/x-protobuf", None, b"\x0a\x05ab".to_vec()),
            ("application/json", None, b"{\"resourceSpans\": 7}".to_vec()),
            ("application/json", None, b"not json".to_vec()),
            (
                "application/json",
                None,
                br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#.to_vec(),
            ),
            ("application/x-protobuf", Some("gzip"), b"not gzip".to_vec()),
        ];
        for (content_type, encoding, body) in bodies {
            let (status, answer_type, answer) = post(&store, content_type, encoding, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{content_type} {answer:?}");
            assert_eq!(answer_type, content_type);
        }
        let (status, _, _) = post(&store, "text/plain", None, b"hello".to_vec()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(store.occupancy().spans, 0);
    }

    #[tokio::test]
    async fn spans_without_valid_ids_are_refused_one_by_one() {
        let store = store();
        let mut bad = span(5, 2, None);
        bad.span_id = vec![0; 8];
        let mut short = span(5, 3, None);
        short.trace_id = vec![5; 15];
        let body = request(vec![span(5, 1, None), bad, short]).encode_to_vec();
        let (status, _, answer) = post(&store, "application/x-protobuf", None, body).await;
        assert_eq!(status, StatusCode::OK);
        let answer = ExportTraceServiceResponse::decode(answer.as_slice()).unwrap();
        assert_eq!(answer.partial_success.unwrap().rejected_spans, 2);
        assert_eq!(store.trace(TraceId([5; 16])).len(), 1);
    }

    #[tokio::test]
    async fn long_names_and_values_are_cut_before_they_are_kept() {
        let store = store();
        let mut export = request(vec![span(6, 1, None)]);
        export.resource_spans[0].resource = Some(Resource {
            attributes: vec![kv("service.name", &"s".repeat(100_000))],
            ..Resource::default()
        });
        let spans = &mut export.resource_spans[0].scope_spans[0].spans;
        spans[0].name = "ü".repeat(1_000);
        // 150 attributes of 5,000 bytes: under the body limit, over what is kept.
        spans[0].attributes = (0..150)
            .map(|n| kv(&format!("key {n}"), &"v".repeat(5_000)))
            .collect();
        let (status, _, _) = post(
            &store,
            "application/x-protobuf",
            None,
            export.encode_to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let kept = &store.trace(TraceId([6; 16]))[0];
        assert_eq!(kept.service.len(), MAX_NAME_BYTES);
        assert!(kept.name.len() <= MAX_NAME_BYTES && kept.name.starts_with('ü'));
        assert_eq!(kept.attributes.len(), MAX_ITEMS);
        assert!(
            kept.attributes
                .iter()
                .all(|(_, v)| v.as_str().is_some_and(|v| v.len() == MAX_TEXT_BYTES))
        );
        assert!(
            store.occupancy().bytes < 700 * 1024,
            "{:?}",
            store.occupancy()
        );
    }

    #[tokio::test]
    async fn a_decompression_bomb_is_refused() {
        use std::io::Write;
        let store = store();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; MAX_BODY_BYTES + 1]).unwrap();
        let (status, _, _) = post(
            &store,
            "application/x-protobuf",
            Some("gzip"),
            gz.finish().unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

//! A service's OpenAPI document as it is served and committed: the one its handlers describe,
//! plus the answers the chassis gives on every handler's behalf — so that the document says
//! everything a client can get back, and generated clients and fuzzers agree with the service.
//!
//! | when an operation… | the chassis may answer |
//! |---|---|
//! | takes a JSON body (`extract::Json`) | 400 malformed JSON, 413 body over the limit, 415 not `application/json`, 422 a body of the wrong shape |
//! | takes path or query parameters (`extract::Path`, `extract::Query`) | 400 a parameter that does not parse |
//!
//! Handlers' own answers for those statuses (a 422 listing invalid fields, say) are kept.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// `document` completed with the chassis' answers, as pretty JSON with a trailing newline (the
/// form each service commits as its `openapi.json`).
pub fn to_json(document: &OpenApi) -> String {
    let mut document = document.clone();
    complete(&mut document);
    let mut json = document.to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

/// Adds the chassis' answers to every operation of `document`.
pub fn complete(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            complete_operation(operation);
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn complete_operation(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut add = |status: &str, description: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    if has_body {
        add("400", "The body is not JSON, or a parameter does not parse");
        add("413", "The body is over the size limit");
        add("415", "The body is not sent as application/json");
        add("422", "The body does not have the expected shape");
    }
    if has_parameters {
        add("400", "A parameter does not parse");
    }
}

/// A response whose body is a problem (RFC 9457).
pub fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::problem::CONTENT_TYPE,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::{OpenApiBuilder, PathsBuilder, ResponseBuilder, ResponsesBuilder};

    use super::*;

    fn ok() -> ResponsesBuilder {
        ResponsesBuilder::new().response("200", ResponseBuilder::new().description("OK"))
    }

    #[test]
    fn operations_get_the_answers_the_chassis_gives_for_them() {
        let post = OperationBuilder::new()
            .request_body(Some(RequestBodyBuilder::new().build()))
            .responses(ResponsesBuilder::new().response(
                "422",
                ResponseBuilder::new().description("Invalid fields, listed"),
            ));
        let get = OperationBuilder::new()
            .parameter(
                ParameterBuilder::new()
                    .name("limit")
                    .parameter_in(ParameterIn::Query),
            )
            .responses(ok());
        let paths = PathsBuilder::new()
            .path(
                "/v1/things",
                utoipa::openapi::PathItem::new(utoipa::openapi::HttpMethod::Post, post),
            )
            .path(
                "/v1/list",
                utoipa::openapi::PathItem::new(utoipa::openapi::HttpMethod::Get, get),
            )
            .path(
                "/v1/plain",
                utoipa::openapi::PathItem::new(
                    utoipa::openapi::HttpMethod::Get,
                    OperationBuilder::new().responses(ok()),
                ),
            );
        let document = OpenApiBuilder::new().paths(paths).build();
        let document: Value = serde_json::from_str(&to_json(&document)).unwrap();
        let post = &document["paths"]["/v1/things"]["post"]["responses"];
        for status in ["400", "413", "415"] {
            assert_eq!(
                post[status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{status}"
            );
        }
        assert_eq!(
            post["422"]["description"], "Invalid fields, listed",
            "a handler's own answer is kept"
        );
        let get = &document["paths"]["/v1/list"]["get"]["responses"];
        assert!(get["400"].is_object());
        assert!(get["415"].is_null());
        let plain = &document["paths"]["/v1/plain"]["get"]["responses"];
        assert_eq!(plain, &json!({"200": {"description": "OK"}}));
    }
}

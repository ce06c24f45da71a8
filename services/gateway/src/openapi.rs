//! The public OpenAPI document: the upstreams' own documents merged into one, each path shown as
//! clients call it through the routes (`/v1/products/{id}` served under `/api/v1/products` becomes
//! `/api/v1/products/{id}`), only the operations a route lets through. This is an aggregation
//! endpoint: the one place the gateway reads a service's payload. Cached for 30 s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

use crate::aggregate::Aggregate;
use crate::config::OpenApiConfig;
use crate::route::Route;
use crate::upstream::{InProcess, Upstream};

const CACHE_FOR: Duration = Duration::from_secs(30);

/// What the merger reads of the routing table: which route exposes which upstream path, the
/// upstreams to ask for their documents, and the aggregates the gateway composes itself.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    /// Every route, the most specific path first.
    pub routes: &'a [Arc<Route>],
    /// The upstreams, by name.
    pub upstreams: &'a BTreeMap<String, Arc<Upstream>>,
    /// The aggregates.
    pub aggregates: &'a [Arc<Aggregate>],
}

/// Builds and caches the merged document.
pub struct Merger {
    /// What to merge and where to serve it.
    pub config: OpenApiConfig,
    cache: Mutex<Option<(Instant, Bytes)>>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for Merger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Merger {
    /// A merger for `config`.
    pub fn new(config: OpenApiConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Self {
            config,
            cache: Mutex::new(None),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// The merged document (from cache when fresh). Upstreams that do not answer are left out;
    /// an error only when none answers.
    pub async fn document(
        &self,
        table: &Routing<'_>,
        in_process: &InProcess,
    ) -> Result<Bytes, String> {
        if let Some((at, doc)) = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(doc.clone());
        }
        let mut documents = Vec::new();
        for name in &self.config.upstreams {
            match self.fetch(table, in_process, name).await {
                Ok(doc) => documents.push((name.as_str(), doc)),
                Err(err) => {
                    tracing::warn!(upstream = %name, %err, "OpenAPI document unavailable; left out of the merged one")
                }
            }
        }
        if documents.is_empty() {
            return Err("no upstream document could be fetched".into());
        }
        let merged = Bytes::from(
            serde_json::to_vec_pretty(&self.merge(table, &documents)).map_err(|e| e.to_string())?,
        );
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), merged.clone()));
        Ok(merged)
    }

    async fn fetch(
        &self,
        table: &Routing<'_>,
        in_process: &InProcess,
        name: &str,
    ) -> Result<Value, String> {
        let path = self.config.document_path.as_str();
        let bytes = if let Some(router) = in_process.get(name) {
            use tower::ServiceExt;
            let request = http::Request::get(path)
                .body(axum::body::Body::empty())
                .map_err(|e| e.to_string())?;
            let Ok(response) = router.clone().oneshot(request).await;
            axum::body::to_bytes(response.into_body(), 4 << 20)
                .await
                .map_err(|e| e.to_string())?
        } else {
            let upstream = table.upstreams.get(name).ok_or("no such upstream")?;
            let endpoint = upstream.pick(None).map_err(|_| "no endpoint")?;
            let uri: http::Uri = format!("http://{}{path}", endpoint.addr)
                .parse()
                .map_err(|e| format!("{e}"))?;
            let response = tokio::time::timeout(Duration::from_secs(2), self.client.get(uri))
                .await
                .map_err(|_| "no answer in time".to_owned())?
                .map_err(|e| e.to_string())?;
            let limited = http_body_util::Limited::new(response.into_body(), 4 << 20);
            limited
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes()
        };
        serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))
    }

    /// One document: every operation a route exposes, at its public path; schemas united (a
    /// name two services define differently is kept apart, prefixed with each service's name).
    fn merge(&self, table: &Routing<'_>, documents: &[(&str, Value)]) -> Value {
        let documents = &separate_contested_schemas(documents);
        let mut paths = Map::new();
        let mut schemas = Map::new();
        let mut tags = Vec::new();
        for (upstream, doc) in documents {
            for (path, operations) in doc["paths"].as_object().into_iter().flatten() {
                for route in table
                    .routes
                    .iter()
                    .filter(|r| &*r.upstream.name == *upstream)
                {
                    let Some(public) = route.public_path(path) else {
                        continue;
                    };
                    let entry = paths.entry(public).or_insert_with(|| json!({}));
                    for (method, operation) in operations.as_object().into_iter().flatten() {
                        if route.allows(method) && entry.get(method).is_none() {
                            let mut operation = operation.clone();
                            gateway_answers(&mut operation, route);
                            entry[method] = operation;
                        }
                    }
                }
            }
            for (name, schema) in doc["components"]["schemas"]
                .as_object()
                .into_iter()
                .flatten()
            {
                schemas
                    .entry(name.clone())
                    .or_insert_with(|| schema.clone());
            }
            tags.extend(doc["tags"].as_array().into_iter().flatten().cloned());
        }
        paths.retain(|_, operations| operations.as_object().is_some_and(|o| !o.is_empty()));
        for aggregate in table.aggregates {
            paths.insert(aggregate.path(), aggregate_operation(aggregate, documents));
        }
        json!({
            "openapi": "3.1.0",
            "info": { "title": self.config.title, "version": env!("CARGO_PKG_VERSION"), "description": "The shop's public API, through the gateway." },
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
            },
            "tags": tags,
        })
    }
}

/// The documents with every schema name that two of them define differently renamed, in each
/// of them, to `<Service><Name>` (`CartLineBody`, `InventoryLineBody`), references included:
/// otherwise one service's `LineBody` would describe another's operations.
fn separate_contested_schemas<'a>(documents: &[(&'a str, Value)]) -> Vec<(&'a str, Value)> {
    let mut seen: std::collections::BTreeMap<&str, &Value> = std::collections::BTreeMap::new();
    let mut contested = std::collections::BTreeSet::new();
    for (_, doc) in documents {
        for (name, schema) in doc["components"]["schemas"]
            .as_object()
            .into_iter()
            .flatten()
        {
            match seen.get(name.as_str()) {
                Some(other) if *other != schema => {
                    contested.insert(name.clone());
                }
                Some(_) => {}
                None => {
                    seen.insert(name, schema);
                }
            }
        }
    }
    documents
        .iter()
        .map(|(upstream, doc)| {
            let mut doc = doc.clone();
            if !contested.is_empty() {
                let prefix = capitalized(upstream);
                rename_schemas(&mut doc, &contested, &prefix);
            }
            (*upstream, doc)
        })
        .collect()
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Renames `names` to `<prefix><name>` in `doc`'s components and in every reference to them.
fn rename_schemas(doc: &mut Value, names: &std::collections::BTreeSet<String>, prefix: &str) {
    const REF: &str = "#/components/schemas/";
    fn walk(value: &mut Value, names: &std::collections::BTreeSet<String>, prefix: &str) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if key == "$ref"
                        && let Some(name) = child.as_str().and_then(|r| r.strip_prefix(REF))
                        && names.contains(name)
                    {
                        *child = Value::String(format!("{REF}{prefix}{name}"));
                    } else {
                        walk(child, names, prefix);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, names, prefix)),
            _ => {}
        }
    }
    walk(doc, names, prefix);
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for name in names {
            if let Some(schema) = schemas.remove(name) {
                schemas.insert(format!("{prefix}{name}"), schema);
            }
        }
    }
}

/// Adds to `operation` what the gateway answers in front of it: 401 (and 403) and the bearer
/// scheme where the route's policy asks for a token, 429 where it is rate-limited, 502, 503
/// and 504 everywhere (an upstream unreachable, shed or open-circuited, or late). What the
/// service documents for those statuses is kept.
fn gateway_answers(operation: &mut Value, route: &Route) {
    use crate::config::Policy;
    let mut answers: Vec<(&str, &str)> = Vec::with_capacity(6);
    if route.policy != Policy::Public {
        if operation.get("security").is_none() {
            operation["security"] = json!([{ "bearer": [] }]);
        }
        answers.push(("401", "No valid access token"));
    }
    if route.policy == Policy::Admin {
        answers.push(("403", "The caller is not an administrator"));
    }
    answers.extend([
        (
            "502",
            "The service behind this operation could not be reached",
        ),
        (
            "503",
            "The service is unavailable or overloaded; see Retry-After when given",
        ),
        ("504", "The service did not answer in time"),
    ]);
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, description) in answers {
        responses
            .entry(status)
            .or_insert_with(|| problem_response(description));
    }
    if route.limits.is_limited() {
        responses.entry("429").or_insert_with(|| {
            let mut answer = problem_response("Too many requests: wait as long as Retry-After says");
            answer["headers"] = json!({
                "Retry-After": { "description": "Seconds to wait", "schema": { "type": "integer", "minimum": 0 } }
            });
            answer
        });
    }
}

fn problem_response(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

/// An aggregate's `get`: each part's schema taken from its upstream's own document (the 200 answer
/// of the operation at the part's path), `null` allowed for optional parts.
fn aggregate_operation(aggregate: &Aggregate, documents: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut optional = Vec::new();
    for part in &aggregate.parts {
        let schema = documents
            .iter()
            .filter(|(upstream, _)| *upstream == &*part.route.upstream.name)
            .find_map(|(_, doc)| answer_schema(doc, part.path()))
            .unwrap_or_else(|| json!({}));
        let schema = match part.is_required() {
            true => schema,
            false => {
                optional.push(part.name.clone());
                json!({ "oneOf": [schema, { "type": "null" }] })
            }
        };
        properties.insert(part.name.clone(), schema);
        required.push(part.name.clone());
    }
    properties.insert(
        "degraded".into(),
        json!({ "type": "array", "items": { "type": "string", "enum": optional },
                "description": "The parts that failed or were late; they are null." }),
    );
    required.push("degraded".into());
    let path = aggregate.path();
    // The id is passed to every part: it is what the first part's own path parameter is.
    let id_schema = aggregate
        .parts
        .iter()
        .find_map(|part| {
            documents
                .iter()
                .filter(|(upstream, _)| *upstream == &*part.route.upstream.name)
                .find_map(|(_, doc)| id_parameter_schema(doc, part.path()))
        })
        .unwrap_or_else(|| json!({ "type": "string" }));
    let parameters: Vec<Value> = path
        .contains("{id}")
        .then(|| json!({ "name": "id", "in": "path", "required": true, "schema": id_schema }))
        .into_iter()
        .collect();
    let problem = problem_response;
    json!({ "get": {
        "tags": ["aggregates"],
        "operationId": aggregate.name.to_string(),
        "summary": format!("Aggregated by the gateway from {} parts fetched in parallel", aggregate.parts.len()),
        "parameters": parameters,
        "responses": {
            "200": { "description": "Every part; optional ones that failed are null and listed in degraded",
                     "content": { "application/json": { "schema": {
                        "type": "object", "required": required, "properties": properties } } } },
            "400": problem("The id does not parse"),
            "404": problem("A required part does not exist"),
            "502": problem("A required part could not be reached or sent an answer that could not be read"),
            "503": problem("A required part is unavailable or overloaded"),
            "504": problem("A required part did not answer in time"),
        }
    } })
}

/// The 200 JSON schema of the GET at `path` in `doc`, path parameters matched by position.
fn answer_schema(doc: &Value, path: &str) -> Option<Value> {
    let (_, operations) = operation_at(doc, path)?;
    let schema = &operations["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    (!schema.is_null()).then(|| schema.clone())
}

/// The schema of the path parameter that stands where `path` holds `{id}`, in `doc`'s GET.
fn id_parameter_schema(doc: &Value, path: &str) -> Option<Value> {
    let (template, operations) = operation_at(doc, path)?;
    let position = path.split('/').position(|s| s == "{id}")?;
    let name = template.split('/').nth(position)?.trim_matches(['{', '}']);
    operations["get"]["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name && p["in"] == "path")
        .map(|p| p["schema"].clone())
        .filter(|schema| !schema.is_null())
}

/// The path template of `doc` with the shape of `path` (parameters matched by position), and
/// its operations.
fn operation_at<'d>(doc: &'d Value, path: &str) -> Option<(&'d String, &'d Value)> {
    let same_shape = |template: &str| {
        let (a, b) = (template.split('/'), path.split('/'));
        a.clone().count() == b.clone().count()
            && a.zip(b)
                .all(|(x, y)| x == y || (x.starts_with('{') && y.starts_with('{')))
    };
    doc["paths"]
        .as_object()?
        .iter()
        .find(|(t, _)| same_shape(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_two_services_define_differently_are_kept_apart() {
        let cart = json!({
            "paths": { "/v1/cart": { "put": { "requestBody": { "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/LineBody" } } } } } } },
            "components": { "schemas": {
                "LineBody": { "properties": { "quantity": { "minimum": 0 } } },
                "Problem": { "type": "object" },
            } }
        });
        let inventory = json!({
            "paths": {},
            "components": { "schemas": {
                "LineBody": { "properties": { "product_id": {} } },
                "Problem": { "type": "object" },
            } }
        });
        let separated = separate_contested_schemas(&[("cart", cart), ("inventory", inventory)]);
        let (_, cart) = &separated[0];
        let (_, inventory) = &separated[1];
        assert_eq!(
            cart["paths"]["/v1/cart"]["put"]["requestBody"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/CartLineBody"
        );
        assert!(cart["components"]["schemas"]["CartLineBody"].is_object());
        assert!(cart["components"]["schemas"]["LineBody"].is_null());
        assert!(inventory["components"]["schemas"]["InventoryLineBody"].is_object());
        // What every service defines alike keeps its name.
        assert!(cart["components"]["schemas"]["Problem"].is_object());
        assert!(inventory["components"]["schemas"]["Problem"].is_object());
    }
}

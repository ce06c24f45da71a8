//! The public OpenAPI document: the upstreams' own documents merged into one, each path shown as
//! clients call it through the routes (`/v1/products/{id}` served under `/api/v1/products` becomes
//! `/api/v1/products/{id}`), only the operations a route lets through. This is an aggregation
//! endpoint: the one place the gateway reads a service's payload. Cached for 30 s.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

use crate::config::OpenApiConfig;
use crate::proxy::InProcess;
use crate::table::Table;

const CACHE_FOR: Duration = Duration::from_secs(30);

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
    pub async fn document(&self, table: &Table, in_process: &InProcess) -> Result<Bytes, String> {
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
        table: &Table,
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

    /// One document: every operation a route exposes, at its public path; schemas united.
    fn merge(&self, table: &Table, documents: &[(&str, Value)]) -> Value {
        let mut paths = Map::new();
        let mut schemas = Map::new();
        let mut tags = Vec::new();
        for (upstream, doc) in documents {
            for (path, operations) in doc["paths"].as_object().into_iter().flatten() {
                for route in table
                    .routes()
                    .iter()
                    .filter(|r| &*r.upstream.name == *upstream)
                {
                    let Some(public) = route.public_path(path) else {
                        continue;
                    };
                    let entry = paths.entry(public).or_insert_with(|| json!({}));
                    for (method, operation) in operations.as_object().into_iter().flatten() {
                        if route.allows(method) && entry.get(method).is_none() {
                            entry[method] = operation.clone();
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

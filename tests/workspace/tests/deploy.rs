//! The deployment files (deploy/) checked against the workspace, without a cluster or an engine.
//!
//! - The Dockerfile has one stage per service in `services/*` (and no other), its SERVICE list
//!   names the same services, each stage's version label is its package's version, and each
//!   package builds the binary the stage copies; the runtime is non-root with a HEALTHCHECK.
//! - deploy/compose.yaml names every service with a health check, hardening and healthy
//!   dependencies; the PostgreSQL init script creates a database for exactly the SQL services.
//! - Both gateway configurations parse with the gateway's own parser and route to every service.
//! - `kubectl kustomize` renders every overlay; every rendered object is parsed and held to the
//!   rules of docs/deploy.md: probes, requests and limits, securityContext, labels, drain-matched
//!   grace, a NetworkPolicy, Services and an image per service; HPA and PDB per service in prod.
//! - deploy/docker/healthcheck.rs (the image's HEALTHCHECK) is compiled here and run on a socket.
//!
//! Each rule is a function from parsed files to messages, also run on small broken inputs so
//! every check is shown able to fail.

// Test helpers outside #[test] functions: a failed expectation is a failed test.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{Value, json};

#[allow(dead_code)] // Its `main` is the image's entry point, not ours.
#[path = "../../../deploy/docker/healthcheck.rs"]
mod healthcheck;

/// How long a service may take to finish in-flight requests after SIGTERM
/// (`http.drain_timeout_ms`, crates/chassis/src/http.rs; the gateway's `server.drain_timeout_ms`).
const DRAIN_SECS: i64 = 10;
/// What a stopping service gives its databases' close past the drain, at least (chassis
/// `Running::stop`).
const CLOSE_SECS: i64 = 1;

/// A service of the workspace: a package under `services/<name>`.
#[derive(Debug, Clone)]
struct Service {
    name: String,
    version: String,
    /// Whether it keeps data in SQL (depends on sqlx), so needs a PostgreSQL database.
    sql: bool,
    bins: Vec<String>,
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `services/*` packages, from `cargo metadata`: the list every deploy file must match.
fn workspace_services() -> Vec<Service> {
    let root = workspace_root();
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let mut services: Vec<Service> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|package| {
            let manifest = Path::new(package["manifest_path"].as_str()?);
            let relative = manifest.strip_prefix(&root).ok()?;
            let mut parts = relative
                .components()
                .map(|c| c.as_os_str().to_str().unwrap_or_default());
            if parts.next()? != "services" {
                return None;
            }
            let strs = |v: &Value, key: &str| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x[key].as_str().map(str::to_owned))
                    .collect()
            };
            let bins = package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "bin"))
                })
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect();
            Some(Service {
                name: parts.next()?.to_owned(),
                version: package["version"].as_str()?.to_owned(),
                sql: strs(&package["dependencies"], "name")
                    .iter()
                    .any(|d| d == "sqlx"),
                bins,
            })
        })
        .collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        services.len() >= 8,
        "cargo metadata lists only {services:?} under services/"
    );
    services
}

fn names(services: &[Service]) -> BTreeSet<String> {
    services.iter().map(|s| s.name.clone()).collect()
}

/// Every document of a YAML stream, as JSON values.
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("invalid YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn compare(what: &str, found: &BTreeSet<String>, wanted: &BTreeSet<String>, out: &mut Vec<String>) {
    let missing: Vec<_> = wanted.difference(found).collect();
    let extra: Vec<_> = found.difference(wanted).collect();
    if !missing.is_empty() || !extra.is_empty() {
        out.push(format!(
            "{what}: missing {missing:?}, not a workspace service {extra:?}"
        ));
    }
}

// --- Dockerfile ---------------------------------------------------------------------------

/// The per-service stages: `FROM runtime AS <name>`, with the lines up to the next FROM.
fn dockerfile_stages(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut stages = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in joined_lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"FROM") {
            current = match words.as_slice() {
                ["FROM", "runtime", "AS", name] => Some((*name).to_owned()),
                _ => None,
            };
            if let Some(name) = &current {
                stages.insert(name.clone(), Vec::new());
            }
        } else if let Some(name) = &current {
            stages
                .entry(name.clone())
                .or_insert_with(Vec::new)
                .push(line);
        }
    }
    stages
}

/// Dockerfile lines with `\` continuations joined and comments dropped.
fn joined_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                if !pending.trim().is_empty() {
                    lines.push(pending.trim().to_owned());
                }
                pending.clear();
            }
        }
    }
    lines
}

fn dockerfile_violations(text: &str, services: &[Service]) -> Vec<String> {
    let mut out = Vec::new();
    let stages = dockerfile_stages(text);
    compare(
        "Dockerfile per-service stages",
        &stages.keys().cloned().collect(),
        &names(services),
        &mut out,
    );
    // The SERVICE check in the build stage: `identity|catalog|…) ;;`.
    let listed: BTreeSet<String> = joined_lines(text)
        .iter()
        .find(|l| l.starts_with("RUN case \"${SERVICE}\""))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|l| l.split(')').next())
        .map(|l| l.split('|').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default();
    compare(
        "Dockerfile SERVICE list",
        &listed,
        &names(services),
        &mut out,
    );
    for service in services {
        let Some(lines) = stages.get(&service.name) else {
            continue;
        };
        let body = lines.join("\n");
        let binary = format!("souk-{}", service.name);
        for wanted in [
            format!("org.opencontainers.image.version=\"{}\"", service.version),
            format!("org.opencontainers.image.title=\"{binary}\""),
            format!("COPY --from=build /out/{binary} /usr/local/bin/{binary}"),
            format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]"),
            "SOUK_HEALTHCHECK_URL=http://127.0.0.1:".to_owned(),
            "EXPOSE ".to_owned(),
        ] {
            if !body.contains(&wanted) {
                out.push(format!("Dockerfile stage {}: no `{wanted}`", service.name));
            }
        }
        if !service.bins.contains(&binary) {
            out.push(format!(
                "package souk-{} has no binary {binary} for its image",
                service.name
            ));
        }
    }
    let all = joined_lines(text);
    let position = |prefix: &str| all.iter().position(|l| l.starts_with(prefix));
    for wanted in [
        "USER 65532:65532",
        "HEALTHCHECK ",
        "FROM ${SERVICE} AS final",
        "VOLUME ",
    ] {
        if position(wanted).is_none() {
            out.push(format!("Dockerfile: no `{wanted}` line"));
        }
    }
    // Dependencies build from the planner's skeleton before the real sources arrive.
    let deps = all
        .iter()
        .position(|l| l.starts_with("COPY --from=planner"));
    let sources = all.iter().rposition(|l| l == "COPY . .");
    let deps_build = deps.and_then(|d| {
        all.iter()
            .skip(d)
            .position(|l| l.contains("cargo build"))
            .map(|i| i + d)
    });
    if !matches!((deps_build, sources), (Some(b), Some(s)) if b < s) {
        out.push(
            "Dockerfile: dependencies are not built in a layer of their own before `COPY . .`"
                .into(),
        );
    }
    out
}

#[test]
fn the_dockerfile_has_a_stage_per_workspace_service() {
    let services = workspace_services();
    let violations = dockerfile_violations(&read("deploy/docker/Dockerfile"), &services);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_dockerfile_check_notices_a_missing_stage_and_a_stale_version() {
    let services = workspace_services();
    let text = read("deploy/docker/Dockerfile");
    let first = &services[0];
    let stale = text.replace(
        &format!(
            "title=\"souk-{}\" org.opencontainers.image.version=\"{}\"",
            first.name, first.version
        ),
        &format!(
            "title=\"souk-{}\" org.opencontainers.image.version=\"0.0.0-stale\"",
            first.name
        ),
    );
    let found = dockerfile_violations(&stale, &services);
    assert!(
        found.iter().any(|v| v.contains("image.version")),
        "{found:?}"
    );
    let fewer: Vec<Service> = services.iter().skip(1).cloned().collect();
    let found = dockerfile_violations(&text, &fewer);
    assert!(
        found.iter().any(|v| v.contains("not a workspace service")),
        "{found:?}"
    );
}

// --- Compose and PostgreSQL -----------------------------------------------------------------

fn compose_violations(compose: &Value, init_script: &str, services: &[Service]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(defined) = compose["services"].as_object() else {
        return vec!["compose.yaml has no services".into()];
    };
    let backends: BTreeSet<String> = ["postgres", "redis", "nats"].map(str::to_owned).into();
    let found: BTreeSet<String> = defined
        .keys()
        .filter(|k| !backends.contains(*k))
        .cloned()
        .collect();
    compare("compose.yaml services", &found, &names(services), &mut out);
    for backend in &backends {
        if defined
            .get(backend)
            .and_then(|b| b.get("healthcheck"))
            .is_none()
        {
            out.push(format!(
                "compose.yaml: {backend} is missing or has no healthcheck"
            ));
        }
    }
    for (name, service) in defined.iter().filter(|(k, _)| !backends.contains(*k)) {
        let at = |what: &str| format!("compose.yaml {name}: {what}");
        if service
            .pointer("/build/args/SERVICE")
            .and_then(Value::as_str)
            != Some(name)
        {
            out.push(at("build.args.SERVICE is not its name"));
        }
        let check = service
            .pointer("/healthcheck/test")
            .map(Value::to_string)
            .unwrap_or_default();
        // Liveness, or readiness where the shop must wait for it (inventory, until it has read
        // the catalog's products).
        if !check.contains("/healthz") && !check.contains("/readyz") {
            out.push(at("no healthcheck on /healthz or /readyz"));
        }
        if service["read_only"] != json!(true) || service["cap_drop"] != json!(["ALL"]) {
            out.push(at("not read_only with cap_drop ALL"));
        }
        for (dependency, condition) in service["depends_on"].as_object().into_iter().flatten() {
            if condition["condition"] != "service_healthy" {
                out.push(at(&format!(
                    "depends on {dependency} without condition service_healthy"
                )));
            }
        }
    }
    // Port 8080 on the host by default; SOUK_PUBLISH may name another (deploy/smoke.sh does).
    let publishes_8080 = compose
        .pointer("/services/gateway/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|p| p == "8080:8080" || p == "${SOUK_PUBLISH:-8080}:8080");
    if !publishes_8080 {
        out.push("compose.yaml: the gateway does not publish localhost:8080".into());
    }
    // The init script's SERVICES="…" line: exactly the services that keep data in SQL.
    let listed: BTreeSet<String> = init_script
        .lines()
        .find_map(|l| l.strip_prefix("SERVICES=\""))
        .map(|l| {
            l.trim_end_matches('"')
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let sql: BTreeSet<String> = services
        .iter()
        .filter(|s| s.sql)
        .map(|s| s.name.clone())
        .collect();
    compare(
        "deploy/postgres/init-databases.sh databases",
        &listed,
        &sql,
        &mut out,
    );
    out
}

#[test]
fn compose_names_every_service_on_healthy_backends() {
    let services = workspace_services();
    let compose = yaml_documents(&read("deploy/compose.yaml")).remove(0);
    let violations = compose_violations(
        &compose,
        &read("deploy/postgres/init-databases.sh"),
        &services,
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_compose_check_notices_a_missing_service_and_an_unhealthy_dependency() {
    let services = workspace_services();
    let mut compose = yaml_documents(&read("deploy/compose.yaml")).remove(0);
    let catalog = compose["services"]
        .as_object_mut()
        .and_then(|s| s.remove("catalog"));
    assert!(catalog.is_some());
    compose["services"]["orders"]["depends_on"]["cart"]["condition"] = json!("service_started");
    let found = compose_violations(&compose, "SERVICES=\"identity\"", &services);
    for wanted in [
        "missing [\"catalog\"]",
        "service_healthy",
        "init-databases.sh",
    ] {
        assert!(
            found.iter().any(|v| v.contains(wanted)),
            "no {wanted:?} in {found:?}"
        );
    }
}

// --- The gateway's routes -------------------------------------------------------------------

/// The upstreams a gateway configuration must have (every service but the gateway), found by
/// DNS; `dns_host` gives the host expected for a service.
fn gateway_config_violations(
    text: &str,
    services: &[Service],
    dns_host: impl Fn(&str) -> String,
) -> Vec<String> {
    let config = match souk_gateway::config::GatewayConfig::parse(text) {
        Ok(config) => config,
        Err(err) => return vec![format!("the gateway refuses it: {err}")],
    };
    let mut out = Vec::new();
    let upstreams: BTreeSet<String> = config.upstreams.keys().cloned().collect();
    let wanted: BTreeSet<String> = names(services)
        .into_iter()
        .filter(|s| s != "gateway")
        .collect();
    compare("gateway upstreams", &upstreams, &wanted, &mut out);
    for (name, upstream) in &config.upstreams {
        let host = dns_host(name);
        if !upstream
            .dns
            .as_deref()
            .is_some_and(|dns| dns.starts_with(&format!("{host}:")))
        {
            out.push(format!(
                "upstream {name}: dns is {:?}, wanted {host}:<port>",
                upstream.dns
            ));
        }
        if !config.routes.iter().any(|r| &r.upstream == name) {
            out.push(format!("upstream {name}: no route uses it"));
        }
    }
    // Internal paths must reach no upstream from outside: identity's service tokens are for the
    // services inside (an allow-list of public auth operations, never a prefix covering them).
    for internal in ["/api/v1/auth/service-token", "/v1/auth/service-token"] {
        for route in &config.routes {
            let covers = internal == route.prefix
                || route.prefix.ends_with('/') && internal.starts_with(&route.prefix)
                || internal.starts_with(&format!("{}/", route.prefix));
            if covers && route.upstream == "identity" {
                out.push(format!(
                    "route {} sends {internal} to identity: route the public auth operations by name",
                    route.name
                ));
            }
        }
    }
    // The admin API (which can repoint identity) stays on loopback; monitoring and probes read
    // the read-only listener.
    if !config.server.admin_listen.ip().is_loopback() {
        out.push(format!(
            "server.admin_listen {} is reachable from outside the pod or container",
            config.server.admin_listen
        ));
    }
    if config.server.metrics_listen.is_none() {
        out.push("no server.metrics_listen for probes and metrics".into());
    }
    // X-Forwarded-For is believed from the storefront's own addresses, not a network that a
    // load balancer, an ingress or Docker's port proxy also connects from.
    if !config.server.trusted_proxies.is_empty() {
        out.push(format!(
            "server.trusted_proxies {:?} trusts whole networks: use trusted_upstreams",
            config.server.trusted_proxies
        ));
    }
    if config.server.trusted_upstreams != ["storefront"] {
        out.push(format!(
            "server.trusted_upstreams is {:?}, wanted [\"storefront\"]",
            config.server.trusted_upstreams
        ));
    }
    if config.server.drain_timeout_ms != (DRAIN_SECS * 1000) as u64 {
        out.push(format!(
            "server.drain_timeout_ms is {}, the manifests assume {DRAIN_SECS} s",
            config.server.drain_timeout_ms
        ));
    }
    out
}

#[test]
fn the_gateway_configurations_route_every_service_through_dns() {
    let services = workspace_services();
    let mut violations = gateway_config_violations(
        &read("deploy/compose/gateway.toml"),
        &services,
        str::to_owned,
    );
    violations.extend(gateway_config_violations(
        &read("deploy/k8s/base/gateway.toml"),
        &services,
        |s| format!("{s}-headless"),
    ));
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let broken = read("deploy/k8s/base/gateway.toml")
        .replace("upstream = \"catalog\"", "upstream = \"catlog\"");
    assert!(!gateway_config_violations(&broken, &services, |s| format!("{s}-headless")).is_empty());
    let open = read("deploy/k8s/base/gateway.toml")
        .replace(
            "admin_listen = \"127.0.0.1:9901\"",
            "admin_listen = \"0.0.0.0:9901\"",
        )
        .replace(
            "trusted_upstreams = [\"storefront\"]",
            "trusted_proxies = [\"10.0.0.0/8\"]",
        );
    let found = gateway_config_violations(&open, &services, |s| format!("{s}-headless"));
    for wanted in ["admin_listen", "trusted_proxies", "trusted_upstreams"] {
        assert!(
            found.iter().any(|v| v.contains(wanted)),
            "no {wanted:?} in {found:?}"
        );
    }
    let published = read("deploy/k8s/base/gateway.toml").replace(
        "prefix = \"/api/v1/auth/login\"",
        "prefix = \"/api/v1/auth\"",
    );
    let found = gateway_config_violations(&published, &services, |s| format!("{s}-headless"));
    assert!(
        found.iter().any(|v| v.contains("service-token")),
        "{found:?}"
    );
}

// --- Secrets the shop's security rests on -------------------------------------------------------

/// Variables that must come from a Secret (Kubernetes) or `deploy/.env` (Compose), never a
/// literal in a committed file: (service, variable).
const SECRET_VARIABLES: &[(&str, &str)] = &[
    // The gateway admin API's bearer token.
    ("gateway", "SOUK_GATEWAY_ADMIN_TOKEN"),
    // What seals identity's signing keys in its database.
    ("identity", "SOUK_IDENTITY__KEY_SECRET"),
    // Each service's NATS password (deploy/nats/souk-users.conf).
    ("orders", "SOUK_ORDERS__EVENTS__NATS__PASSWORD"),
    ("payments", "SOUK_PAYMENTS__EVENTS__NATS__PASSWORD"),
    ("inventory", "SOUK_INVENTORY__EVENTS__NATS__PASSWORD"),
    ("cart", "SOUK_CART__EVENTS__NATS__PASSWORD"),
    ("history", "SOUK_HISTORY__EVENTS__NATS__PASSWORD"),
    ("catalog", "SOUK_CATALOG__EVENTS__NATS__PASSWORD"),
];

/// Every `SECRET_VARIABLES` entry is set on its Deployment from a `secretKeyRef`.
fn secret_env_violations(rendered: &[Value]) -> Vec<String> {
    let deployments = objects(rendered, "Deployment");
    let mut out = Vec::new();
    for (service, variable) in SECRET_VARIABLES {
        let env = deployments
            .get(*service)
            .and_then(|d| d.pointer("/spec/template/spec/containers/0/env"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let from_secret = env
            .iter()
            .any(|e| e["name"] == *variable && e.pointer("/valueFrom/secretKeyRef/name").is_some());
        if !from_secret {
            out.push(format!(
                "Deployment {service}: {variable} is not read from a Secret"
            ));
        }
    }
    out
}

/// Every `SECRET_VARIABLES` entry is set in Compose from `deploy/.env`, and make-env.sh writes
/// every variable compose.yaml wants from it.
fn compose_secret_violations(compose: &Value, env_written: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (service, variable) in SECRET_VARIABLES {
        let value = compose
            .pointer(&format!("/services/{service}/environment/{variable}"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !value.starts_with("${") {
            out.push(format!(
                "compose.yaml {service}: {variable} is not read from deploy/.env"
            ));
        }
    }
    let text = compose.to_string();
    for reference in text.split("${").skip(1) {
        let wanted = reference.split([':', '}']).next().unwrap_or_default();
        // `${NAME:-default}` is a setting with a default (SOUK_PUBLISH), not a secret.
        if reference[wanted.len()..].starts_with(":-") {
            continue;
        }
        if !env_written.contains(wanted) {
            out.push(format!(
                "compose.yaml wants {wanted}, which deploy/make-env.sh does not write"
            ));
        }
    }
    out
}

/// Runs deploy/make-env.sh in a scratch copy: the variables it writes to `.env`.
fn make_env(admin_email: Option<&str>) -> (std::process::ExitStatus, BTreeSet<String>, String) {
    let dir = tempfile::tempdir().expect("a scratch dir");
    let script = dir.path().join("make-env.sh");
    std::fs::copy(workspace_root().join("deploy/make-env.sh"), &script).expect("copied");
    let status = Command::new("sh")
        .arg(&script)
        .args(admin_email)
        .status()
        .expect("sh runs");
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap_or_default();
    #[cfg(unix)]
    if !env.is_empty() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".env"))
            .expect(".env")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "deploy/.env is readable by others: {mode:o}"
        );
    }
    let names = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    (status, names, env)
}

/// The simulated processor (it approves any Luhn-valid card, and keeps card numbers) runs in dev
/// with its vault key from a Secret, and never in prod, where no vault key is referenced.
fn simulated_processor_violations(overlay: &str, rendered: &[Value]) -> Vec<String> {
    let env = objects(rendered, "Deployment")
        .get("payments")
        .and_then(|d| d.pointer("/spec/template/spec/containers/0/env"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let value = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    let simulated = value("SOUK_PAYMENTS__PROCESSOR__SIMULATED").map(|e| e["value"].clone());
    let key = value("SOUK_PAYMENTS__PROCESSOR__VAULT_KEY");
    let mut out = Vec::new();
    match overlay {
        "prod" => {
            if simulated != Some(json!("false")) {
                out.push("prod: payments runs the simulated processor".into());
            }
            if key.is_some() {
                out.push("prod: a simulated vault key is referenced".into());
            }
        }
        _ => {
            if key.is_none_or(|k| k.pointer("/valueFrom/secretKeyRef/name").is_none()) {
                out.push(format!(
                    "{overlay}: the vault key is not read from a Secret"
                ));
            }
        }
    }
    out
}

#[test]
fn secrets_come_from_secrets_and_make_env_writes_them_all() {
    let (refused, _, _) = make_env(None);
    assert!(
        !refused.success(),
        "make-env.sh wants the administrator's address"
    );
    let (status, written, env) = make_env(Some("ops@shop.example"));
    assert!(status.success());
    assert!(env.contains("SOUK_ADMIN_EMAIL=ops@shop.example"), "{env}");
    let compose = yaml_documents(&read("deploy/compose.yaml")).remove(0);
    let mut violations = compose_secret_violations(&compose, &written);
    for overlay in ["dev", "prod"] {
        let rendered = render(overlay);
        violations.extend(secret_env_violations(&rendered));
        violations.extend(simulated_processor_violations(overlay, &rendered));
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The checks notice a literal.
    let mut broken = compose.clone();
    broken["services"]["gateway"]["environment"]["SOUK_GATEWAY_ADMIN_TOKEN"] = json!("hunter2");
    let found = compose_secret_violations(&broken, &written);
    assert!(
        found.iter().any(|v| v.contains("SOUK_GATEWAY_ADMIN_TOKEN")),
        "{found:?}"
    );
    let mut rendered = render("dev");
    for object in &mut rendered {
        if object["kind"] == "Deployment" && object["metadata"]["name"] == "identity" {
            let env = &mut object["spec"]["template"]["spec"]["containers"][0]["env"];
            if let Some(list) = env.as_array_mut() {
                list.retain(|e| e["name"] != "SOUK_IDENTITY__KEY_SECRET");
            }
        }
    }
    let found = secret_env_violations(&rendered);
    assert!(
        found
            .iter()
            .any(|v| v.contains("SOUK_IDENTITY__KEY_SECRET")),
        "{found:?}"
    );
    let found = simulated_processor_violations("prod", &render("dev"));
    assert!(found.iter().any(|v| v.contains("simulated")), "{found:?}");
    // No committed file names a fixed administrator someone else could register first.
    for file in [
        "deploy/make-env.sh",
        "docs/deploy.md",
        "README.md",
        "deploy/compose.yaml",
    ] {
        assert!(
            !read(file).contains("admin@example.com"),
            "{file} names a fixed admin address"
        );
    }
}

// --- Kubernetes -------------------------------------------------------------------------------

/// `kubectl kustomize <overlay>`, parsed.
fn render(overlay: &str) -> Vec<Value> {
    let dir = workspace_root().join("deploy/k8s/overlays").join(overlay);
    let output = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(output) => output,
        Err(err) => panic!(
            "cannot run kubectl ({err}): the deploy checks render the Kubernetes overlays with \
             `kubectl kustomize`. Install it (Debian: `apt-get install kubernetes-client`; .ci/run does)"
        ),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    yaml_documents(&String::from_utf8_lossy(&output.stdout))
}

fn objects<'a>(rendered: &'a [Value], kind: &str) -> BTreeMap<String, &'a Value> {
    rendered
        .iter()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?.to_owned(), o)))
        .collect()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The rules every overlay keeps, one message per broken rule.
fn manifest_violations(rendered: &[Value], services: &[Service]) -> Vec<String> {
    let mut out = Vec::new();
    let deployments = objects(rendered, "Deployment");
    let services_k8s = objects(rendered, "Service");
    let policies = objects(rendered, "NetworkPolicy");
    compare(
        "Deployments",
        &deployments.keys().cloned().collect(),
        &names(services),
        &mut out,
    );
    if !objects(rendered, "Secret").is_empty() {
        out.push("a Secret is rendered: secrets are referenced, never committed".into());
    }
    let mut images = BTreeSet::new();
    for service in services {
        let name = &service.name;
        let Some(deployment) = deployments.get(name) else {
            continue;
        };
        let at = |what: &str| format!("Deployment {name}: {what}");
        for (key, wanted) in [
            ("app.kubernetes.io/name", name.as_str()),
            ("app.kubernetes.io/part-of", "souk"),
            ("app.kubernetes.io/version", service.version.as_str()),
        ] {
            for place in ["/metadata/labels", "/spec/template/metadata/labels"] {
                if str_at(deployment, &format!("{place}/{}", key.replace('/', "~1"))) != wanted {
                    out.push(at(&format!("{place} lacks {key}: {wanted}")));
                }
            }
        }
        let pod = &deployment["spec"]["template"]["spec"];
        if pod.pointer("/securityContext/runAsNonRoot") != Some(&json!(true))
            || str_at(pod, "/securityContext/seccompProfile/type") != "RuntimeDefault"
        {
            out.push(at(
                "pod securityContext lacks runAsNonRoot or seccomp RuntimeDefault",
            ));
        }
        let containers = pod["containers"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if containers.len() != 1 {
            out.push(at("wants exactly one container"));
            continue;
        }
        let container = &containers[0];
        let image = str_at(container, "/image");
        let repository = image
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default();
        if repository != format!("souk-{name}") || !images.insert(image.to_owned()) {
            out.push(at(&format!("image {image:?} is not its own souk-{name}")));
        }
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            if str_at(container, &format!("/{probe}/httpGet/path")) != path {
                out.push(at(&format!("no {probe} on {path}")));
            }
        }
        for quantity in [
            "requests/cpu",
            "requests/memory",
            "limits/cpu",
            "limits/memory",
        ] {
            if container
                .pointer(&format!("/resources/{quantity}"))
                .is_none()
            {
                out.push(at(&format!("no resources.{quantity}")));
            }
        }
        let security = &container["securityContext"];
        if security["allowPrivilegeEscalation"] != json!(false)
            || security["readOnlyRootFilesystem"] != json!(true)
            || security.pointer("/capabilities/drop") != Some(&json!(["ALL"]))
        {
            out.push(at("container securityContext must forbid escalation, mount the root read-only and drop ALL"));
        }
        let pre_stop = container
            .pointer("/lifecycle/preStop/sleep/seconds")
            .and_then(Value::as_i64);
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        match pre_stop {
            Some(pre_stop) if grace >= pre_stop + DRAIN_SECS + CLOSE_SECS => {}
            _ => out.push(at(&format!(
                "terminationGracePeriodSeconds {grace} must cover a preStop sleep ({pre_stop:?}) plus the {DRAIN_SECS} s drain and {CLOSE_SECS} s to close the databases"
            ))),
        }
        if !services_k8s.contains_key(name) {
            out.push(format!("no Service {name}"));
        }
        if name != "gateway"
            && services_k8s
                .get(&format!("{name}-headless"))
                .map(|s| str_at(s, "/spec/clusterIP"))
                != Some("None")
        {
            out.push(format!(
                "no headless Service {name}-headless for the gateway's DNS discovery"
            ));
        }
        let guarded = policies.values().any(|p| {
            str_at(p, "/spec/podSelector/matchLabels/app.kubernetes.io~1name") == name
                && (name == "gateway"
                    || p["spec"]["ingress"]
                        .as_array()
                        .is_some_and(|rules| rules.iter().all(|r| r.get("from").is_some())))
        });
        if !guarded {
            out.push(format!("no NetworkPolicy admitting only {name}'s callers"));
        }
    }
    if !objects(rendered, "ConfigMap")
        .keys()
        .any(|k| k.starts_with("gateway-config"))
    {
        out.push("no gateway-config ConfigMap".into());
    }
    out
}

/// Per overlay: dev runs one replica of each and no autoscaler; prod scales each service on its
/// own HPA and protects it with a PDB.
fn overlay_violations(overlay: &str, rendered: &[Value], services: &[Service]) -> Vec<String> {
    let mut out = Vec::new();
    let deployments = objects(rendered, "Deployment");
    let hpas = objects(rendered, "HorizontalPodAutoscaler");
    let pdbs = objects(rendered, "PodDisruptionBudget");
    for service in services {
        let name = &service.name;
        let replicas = deployments
            .get(name)
            .and_then(|d| d.pointer("/spec/replicas"))
            .and_then(Value::as_i64);
        match overlay {
            "dev" if replicas != Some(1) => {
                out.push(format!("dev: {name} has {replicas:?} replicas, wants 1"))
            }
            "prod" => {
                if replicas.unwrap_or(0) < 2 {
                    out.push(format!(
                        "prod: {name} has {replicas:?} replicas, wants 2 or more"
                    ));
                }
                let target = hpas
                    .get(name)
                    .map(|h| str_at(h, "/spec/scaleTargetRef/name"));
                if target != Some(name.as_str())
                    || hpas[name]["spec"]["metrics"]
                        .as_array()
                        .is_none_or(Vec::is_empty)
                {
                    out.push(format!(
                        "prod: no HorizontalPodAutoscaler with a metric for {name}"
                    ));
                }
                let selects = pdbs
                    .get(name)
                    .map(|p| str_at(p, "/spec/selector/matchLabels/app.kubernetes.io~1name"));
                if selects != Some(name.as_str()) {
                    out.push(format!("prod: no PodDisruptionBudget for {name}"));
                }
            }
            _ => {}
        }
    }
    if overlay == "dev" && !hpas.is_empty() {
        out.push("dev: no autoscaler wanted".into());
    }
    out
}

#[test]
fn every_overlay_renders_and_keeps_the_rules() {
    let services = workspace_services();
    for overlay in ["dev", "prod"] {
        let rendered = render(overlay);
        let mut violations = manifest_violations(&rendered, &services);
        violations.extend(overlay_violations(overlay, &rendered, &services));
        let config = objects(&rendered, "ConfigMap")
            .into_iter()
            .find(|(k, _)| k.starts_with("gateway-config"))
            .map(|(_, c)| str_at(c, "/data/gateway.toml").to_owned())
            .unwrap_or_default();
        violations.extend(gateway_config_violations(&config, &services, |s| {
            format!("{s}-headless")
        }));
        assert!(
            violations.is_empty(),
            "overlay {overlay}:\n{}",
            violations.join("\n")
        );
    }
}

#[test]
fn the_manifest_checks_notice_what_breaks_the_rules() {
    let services = workspace_services();
    let mut rendered = render("prod");
    let catalog = rendered
        .iter_mut()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "catalog")
        .expect("a catalog Deployment");
    let container = &mut catalog["spec"]["template"]["spec"]["containers"][0];
    container["readinessProbe"] = Value::Null;
    container["resources"]["limits"] = json!({});
    container["securityContext"]["readOnlyRootFilesystem"] = json!(false);
    catalog["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(5);
    rendered
        .retain(|o| !(o["kind"] == "HorizontalPodAutoscaler" && o["metadata"]["name"] == "cart"));
    rendered.retain(|o| !(o["kind"] == "NetworkPolicy" && o["metadata"]["name"] == "orders"));
    rendered.push(json!({"kind": "Secret", "metadata": {"name": "souk-catalog"}}));
    let mut found = manifest_violations(&rendered, &services);
    found.extend(overlay_violations("prod", &rendered, &services));
    for wanted in [
        "no readinessProbe",
        "no resources.limits/cpu",
        "read-only",
        "terminationGracePeriodSeconds 5",
        "HorizontalPodAutoscaler with a metric for cart",
        "NetworkPolicy admitting only orders",
        "a Secret is rendered",
    ] {
        assert!(
            found.iter().any(|v| v.contains(wanted)),
            "no {wanted:?} in:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_prerequisites_parse() {
    for file in [
        "deploy/k8s/prerequisites/postgres.yaml",
        "deploy/k8s/prerequisites/nats-values.yaml",
        "deploy/k8s/prerequisites/redis-values.yaml",
    ] {
        assert!(!yaml_documents(&read(file)).is_empty(), "{file} is empty");
    }
}

// --- The image's HEALTHCHECK ------------------------------------------------------------------

/// A one-shot HTTP server on port 0 answering `status`; returns its /healthz URL.
fn answer_once(status: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{addr}/healthz")
}

#[test]
fn the_healthcheck_passes_a_2xx_and_reports_anything_else() {
    let timeout = std::time::Duration::from_secs(2);
    assert_eq!(healthcheck::check(&answer_once("200 OK"), timeout), Ok(200));
    assert_eq!(
        healthcheck::check(&answer_once("503 Service Unavailable"), timeout),
        Ok(503)
    );
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        listener.local_addr().expect("local addr")
    };
    assert!(healthcheck::check(&format!("http://{closed}/healthz"), timeout).is_err());
    assert!(healthcheck::check("https://127.0.0.1:1/healthz", timeout).is_err());
    assert!(healthcheck::parse_status(b"SSH-2.0-OpenSSH").is_err());
    // A name that does not resolve is said to be one, within the timeout, whatever the resolver
    // here answers (a refusal at once, or nothing).
    let started = std::time::Instant::now();
    let unresolved = healthcheck::check("http://souk-no-such-host.invalid:80/healthz", timeout);
    assert!(
        unresolved
            .as_ref()
            .is_err_and(|e| e.contains("resolve") && e.contains("souk-no-such-host.invalid")),
        "{unresolved:?}"
    );
    assert!(started.elapsed() < timeout * 2, "{:?}", started.elapsed());
}

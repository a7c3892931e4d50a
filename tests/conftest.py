"""Fixtures that start real parts: Redis (when none answers), the all-in-one service
(gRPC server + Celery worker + embedded Qdrant + the TF model) on a free port."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from lookalike.client import Client
from lookalike.tools.local import free_port, start_service, stop
from lookalike.tools.sample import generate

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = REPO.parent / "shared" / "data" / "grocerystore_dev"
SHARED_DVD = REPO.parent / "shared" / "data" / "smvs_dvd_dev"


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.ConnectionError:
        pytest.fail(f"no Redis answers at {url}: run `make test` (it starts one) or set REDIS_URL")
    return url


@pytest.fixture(scope="session")
def service_env(redis_url: str) -> dict[str, str]:
    # Queue names of its own: leftovers of other runs never reach these workers.
    return {"REDIS_URL": redis_url, "LOOKALIKE_QUEUE": f"lookalike.test.{uuid.uuid4().hex[:8]}"}


@dataclass(frozen=True)
class Service:
    target: str
    metrics_url: str
    log: Path
    pid: int


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory,
            service_env: dict[str, str]) -> Iterator[Service]:
    """A fresh all-in-one service (empty catalogue) for each test module."""
    data_dir = tmp_path_factory.mktemp("service")
    metrics_port = free_port()
    env = {**service_env, "LOOKALIKE_METRICS_PORT": str(metrics_port)}
    proc, target = start_service(data_dir, env=env)
    try:
        yield Service(target, f"http://127.0.0.1:{metrics_port}/metrics",
                      data_dir / "service.log", proc.pid)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def service(running: Service) -> str:
    return running.target


@pytest.fixture(scope="module")
def client(service: str) -> Iterator[Client]:
    with Client(service) as c:
        yield c


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    generate(root)
    return root


@pytest.fixture(scope="session")
def dvd_covers() -> Path:
    if not (SHARED_DVD / "gallery.csv").is_file():
        pytest.skip(f"Stanford Mobile Visual Search DVD covers not found at {SHARED_DVD}")
    return SHARED_DVD


@pytest.fixture(scope="session")
def grocery() -> Path:
    if not (SHARED_BENCH / "gallery.csv").is_file():
        pytest.skip(f"GroceryStoreDataset benchmark not found at {SHARED_BENCH}")
    return SHARED_BENCH


@dataclass(frozen=True)
class Web:
    url: str  # the HTTP gateway and page, http://127.0.0.1:PORT
    target: str  # its gRPC service
    read_key: str
    write_key: str
    sample: Path


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory, service_env: dict[str, str],
        sample: Path) -> Iterator[Web]:
    """One all-in-one service with API keys and the HTTP gateway on (LOOKALIKE_HTTP_LISTEN),
    the sample catalogue ingested, its folder an ingest root (thumbnails): tests/test_web.py
    and tests/test_browser.py share it."""
    from lookalike.tools import bulk
    from lookalike.tools.catalogue import read_catalogue

    read_key, write_key = uuid.uuid4().hex, uuid.uuid4().hex
    http = f"127.0.0.1:{free_port()}"
    env = {**service_env, "LOOKALIKE_HTTP_LISTEN": http, "LOOKALIKE_INGEST_ROOTS": str(sample),
           "LOOKALIKE_AUTH": "keys", "LOOKALIKE_READ_KEYS": read_key,
           "LOOKALIKE_WRITE_KEYS": write_key}
    proc, target = start_service(tmp_path_factory.mktemp("web-service"), env=env)
    try:
        with Client(target, api_key=write_key) as c:
            outcome = bulk.ingest(c, read_catalogue(sample / "catalogue.csv"))
        assert not outcome.failures, outcome.failures
        yield Web(f"http://{http}", target, read_key, write_key, sample)
    finally:
        stop(proc)

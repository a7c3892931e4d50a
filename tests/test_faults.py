"""Crashed parts: every submitted item ends up stored exactly once or reported failed.

The catalogue images are served by a slow HTTP server on loopback, so a chunk is
reliably in the middle of being processed when the fault is injected.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from lookalike.client import Client
from lookalike.tools.local import free_port, start_service, stop
from lookalike.v1 import lookalike_pb2 as pb

DELAY_S = 0.6
ITEMS = 12
CHUNK = 4


class SlowImages(ThreadingHTTPServer):
    def __init__(self, folder: Path) -> None:
        self.folder, self.served = folder, 0
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: SlowImages

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(DELAY_S)
        body = (self.server.folder / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.served += 1

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def images(sample: Path) -> Iterator[SlowImages]:
    server = SlowImages(sample / "catalogue")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def catalogue(images: SlowImages) -> list[pb.IngestItem]:
    names = sorted(p.name for p in images.folder.glob("*.png"))[:ITEMS]
    return [pb.IngestItem(product_id=name.removesuffix(".png"), image_id="front",
                          uri=f"http://127.0.0.1:{images.server_port}/{name}") for name in names]


def env_for(redis_url: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "LOOKALIKE_ALLOW_PRIVATE_URLS": "true",
            "LOOKALIKE_CHUNK_SIZE": str(CHUNK), "LOOKALIKE_VISIBILITY_TIMEOUT_S": "8"}


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_worker_killed_mid_chunk_loses_nothing(tmp_path: Path, images: SlowImages,
                                               redis_url: str) -> None:
    proc, target = start_service(tmp_path, env_for(redis_url))
    try:
        with Client(target) as client:
            job_id = client.submit(catalogue(images))
            wait_until(lambda: images.served >= CHUNK + 1, 60, "the second chunk to start")
            proc.send_signal(signal.SIGKILL)  # kill -9: no warm shutdown, chunk unacknowledged
            proc.wait()
    finally:
        stop(proc)
    # Same data dir, same private queue: the restarted worker gets the chunk back once
    # Redis's visibility timeout has passed.
    proc, target = start_service(tmp_path, env_for(redis_url), port=int(target.rsplit(":", 1)[1]))
    try:
        with Client(target) as client:
            job = client.wait_job(job_id, timeout_s=120)
            assert (job.total, job.done, job.failed) == (ITEMS, ITEMS, 0)
            assert client.stats().points == ITEMS  # stored exactly once
    finally:
        stop(proc)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, callable]]:
    """A Redis with AOF persistence that the test may restart."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/ensure-redis installs it)")
    port, folder = free_port(), tmp_path / "redis"
    folder.mkdir()

    def start() -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--port", str(port),
                        "--bind", "127.0.0.1", "--dir", str(folder), "--appendonly", "yes",
                        "--appendfsync", "always", "--save", "",
                        "--logfile", str(folder / "redis.log")], check=True)
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 10, "redis to start")

    start()
    yield f"redis://127.0.0.1:{port}/0", start
    try:
        redis.Redis(port=port).shutdown(nosave=True)
    except redis.RedisError:
        pass


def _pings(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False


def test_redis_restart_mid_job_loses_nothing(tmp_path: Path, images: SlowImages,
                                             own_redis) -> None:
    url, start_redis = own_redis
    proc, target = start_service(tmp_path / "data", env_for(url))
    try:
        with Client(target) as client:
            job_id = client.submit(catalogue(images))
            wait_until(lambda: images.served >= 2, 60, "the first chunk to start")
            redis.Redis.from_url(url).shutdown()  # AOF is fsynced on every write
            time.sleep(2)
            start_redis()
            job = client.wait_job(job_id, timeout_s=120)
            assert (job.total, job.done, job.failed) == (ITEMS, ITEMS, 0)
            assert client.stats().points == ITEMS
    finally:
        stop(proc)


class FlakyStore:
    """A real embedded store that is unavailable for its first `outage` writes."""

    def __init__(self, store, outage: int) -> None:
        self.store, self.outage, self.calls = store, outage, 0

    def upsert(self, images, vectors) -> None:
        from lookalike.store import StoreUnavailable

        self.calls += 1
        if self.calls <= self.outage:
            raise StoreUnavailable("vector store unavailable: connection refused (injected)")
        self.store.upsert(images, vectors)


@pytest.fixture
def real_worker(tmp_path: Path, sample: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """A real Celery worker (in a thread of this process) on a queue of its own: chunks go
    through Redis as msgpack and are acknowledged late, as in production; its store and job
    store are this test's (`parts`)."""
    from celery.contrib.testing.worker import start_worker
    from lookalike_services.worker.main import build_app

    from lookalike.config import Settings
    from lookalike.model import load_model
    from lookalike.pipeline.jobs import JobStore
    from lookalike.pipeline.queue import ChunkQueue
    from lookalike.store import CatalogueStore

    settings = Settings(data_dir=tmp_path, qdrant_url="", store_retries=3, retry_backoff_s=0,
                        ingest_roots=str(sample), redis_url=redis_url,
                        queue=f"lookalike.test.{tmp_path.name}")
    embedder = load_model()
    parts = {"store": CatalogueStore.open(settings, embedder.model_id, embedder.dim),
             "jobs": JobStore.from_url(redis_url, 600), "settings": settings}

    class CurrentStore:  # the store the test has put in parts["store"] at the time of a call
        def __getattr__(self, name: str):
            return getattr(parts["store"], name)

    app = build_app(settings, embedder, CurrentStore(), parts["jobs"])
    parts["queue"] = ChunkQueue(app, settings)
    with start_worker(app, pool="solo", perform_ping_check=False,
                      queues=[settings.ingest_queue], shutdown_timeout=60):
        yield parts
    parts["store"].close()


def wait_for_job(jobs, job_id: str, timeout_s: float = 120):
    wait_until(lambda: jobs.get(job_id).state.value == "DONE", timeout_s, f"job {job_id}")
    return jobs.get(job_id)


@pytest.mark.parametrize("outage, stored", [(2, 3), (99, 0)])
def test_store_outage_is_retried_then_reported(real_worker, sample: Path, outage: int,
                                               stored: int) -> None:
    real, jobs = real_worker["store"], real_worker["jobs"]
    flaky = real_worker["store"] = FlakyStore(real, outage)
    items = [{"index": i, "product_id": p.stem, "image_id": "front", "uri": str(p)}
             for i, p in enumerate(sorted((sample / "catalogue").glob("*.png"))[:3])]
    job_id = jobs.create(len(items))
    real_worker["queue"].send(job_id, items)  # one chunk of 3
    report = wait_for_job(jobs, job_id)
    real_worker["store"] = real
    assert (report.done, report.failed, real.count()) == (stored, 3 - stored, stored)
    if stored:
        assert flaky.calls == outage + 1  # retried until the store came back
    else:
        assert flaky.calls == 4 and all("gave up after 3 retries" in f.reason
                                        for f in report.failures)


def test_malformed_references_fail_alone_and_the_job_ends(real_worker, sample: Path) -> None:
    """References that slip past SubmitIngest's checks (or that reindex re-reads) must not take
    their chunk down: each fails with its reason, the good images are stored, the job ends."""
    jobs = real_worker["jobs"]
    good = [{"index": i, "product_id": p.stem, "image_id": "front", "image": p.read_bytes()}
            for i, p in enumerate(sorted((sample / "catalogue").glob("*.png"))[:3])]
    bad = [{"index": 3 + i, "product_id": f"bad{i}", "image_id": "x", "uri": uri}
           for i, uri in enumerate(["http://..example/x.jpg", "http://[::1",
                                    f"http://{'a' * 64}.example/x.jpg", "/catalogue/a\x00.jpg"])]
    job_id = jobs.create(7)
    real_worker["queue"].send(job_id, good + bad)
    report = wait_for_job(jobs, job_id, 60)
    assert (report.done, report.failed) == (3, 4)
    assert real_worker["store"].count() == 3
    reasons = {f.product_id: f.reason for f in report.failures}
    assert "invalid host name" in reasons["bad0"] and "malformed URI" in reasons["bad1"]
    assert "control characters" in reasons["bad3"]

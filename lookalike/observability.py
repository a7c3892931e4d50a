"""Prometheus metrics and JSON logs carrying the request or job id.

Metrics are served on LOOKALIKE_METRICS_PORT (0 disables) by both services:
requests by method and status, latency split into decode/embed/search, ingest items
by outcome, queue depth (read from Redis at scrape time), the model version and the
embedded store's index builds and unindexed vectors.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter

from lookalike.config import ConfigError

REQUESTS = Counter("lookalike_grpc_requests_total", "gRPC requests handled",
                   ["method", "code"])
LATENCY = Histogram("lookalike_grpc_request_seconds", "gRPC request latency", ["method"],
                    buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5))
STAGE = Histogram("lookalike_stage_seconds", "Time per pipeline stage", ["stage"],
                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
INGEST_ITEMS = Counter("lookalike_ingest_items_total", "Catalogue images processed by workers",
                       ["outcome"])
SEARCHES_ABANDONED = Counter("lookalike_searches_abandoned_total",
                             "Searches whose caller had gone (deadline, cancel) before the CNN ran")
MODEL = Gauge("lookalike_model_info", "The embedding model this process runs", ["model"])
UNINDEXED = Gauge("lookalike_unindexed_vectors",
                  "Vectors the embedded store searches exhaustively (outside its HNSW index)")
INDEX_BUILDS = Counter("lookalike_index_builds_total", "HNSW index builds of the embedded store",
                       ["outcome"])
for _outcome in ("built", "unchanged", "failed"):  # exported as 0 before the first build
    INDEX_BUILDS.labels(_outcome)

# The id of the request or job being handled, stamped on every log line.
context_id: contextvars.ContextVar[str] = contextvars.ContextVar("context_id", default="")


@contextmanager
def stage(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE.labels(name).observe(time.perf_counter() - started)


class QueueDepth(Collector):
    """Chunks waiting in the ingest queue, read from Redis when Prometheus scrapes."""

    def __init__(self, redis_url: str, queue: str) -> None:
        self.redis, self.queue = redis.Redis.from_url(redis_url, socket_timeout=1), queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("lookalike_queue_depth", "Ingest chunks waiting", labels=["queue"])
        try:
            family.add_metric([self.queue], self.redis.llen(self.queue))
        except redis.RedisError:
            return
        yield family


def record_index(outcome: str | None, unindexed: int | None) -> None:
    """A round of the embedded store's background indexing (store.index_in_background)."""
    if outcome:
        INDEX_BUILDS.labels(outcome).inc()
    if unindexed is not None:
        UNINDEXED.set(unindexed)


def start_metrics(port: int, redis_url: str, queue: str, model_id: str,
                  host: str = "0.0.0.0") -> None:
    MODEL.labels(model_id).set(1)
    if port:
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port} ({exc.strerror}): set "
                              "LOOKALIKE_METRICS_PORT to a free port, or 0 for none") from None
        REGISTRY.register(QueueDepth(redis_url, queue))


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context_id = context_id.get()
        return True


def setup_logging(level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    if json_logs:
        handler.setFormatter(JsonFormatter(
            "{asctime}{levelname}{name}{message}{context_id}", style="{",
            rename_fields={"asctime": "time", "levelname": "level", "context_id": "id"}))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(context_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

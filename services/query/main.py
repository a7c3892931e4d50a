"""The query service: settings, model, store, job store and ingest queue, wired into the
gRPC server. Run it with `python -m lookalike_services.query` (or `lookalike serve
--query-only`); every part is built here, at start, from the environment.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from grpc_health.v1 import health_pb2

from lookalike.api import access
from lookalike.api.server import SERVICE_NAME, build_server
from lookalike.api.servicer import LookalikeServicer
from lookalike.config import Settings, get_settings
from lookalike.model import load_model, model_id
from lookalike.model.base import EmbeddingModel
from lookalike.observability import record_index, setup_logging, start_metrics
from lookalike.pipeline.jobs import JobStore
from lookalike.pipeline.queue import ChunkQueue, celery_app
from lookalike.store import CatalogueStore, open_client

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """What serving needs; the embedded all-in-one hands the same parts to its worker."""

    settings: Settings
    model: EmbeddingModel
    store: CatalogueStore
    jobs: JobStore


def build_parts(settings: Settings) -> Parts:
    access.interceptors(settings), access.server_credentials(settings)  # fail fast on bad config
    backend = open_client(settings)  # an embedded store is locked to this process first
    try:
        # Before the model loads: a service on another model than the catalogue's says so now.
        CatalogueStore(backend, settings.collection, model_id(settings.model), 0).check_live()
        model = load_model(settings.model)
        model.warmup()
        store = CatalogueStore.open(settings, model.model_id, model.dim, backend)
    except BaseException:
        backend.close()
        raise
    return Parts(settings, model, store, JobStore.from_url(settings.redis_dsn, settings.job_ttl_s))


def serve(parts: Parts, alongside: Callable[[], None] | None = None) -> None:
    """Run the gRPC server until SIGTERM/SIGINT; `alongside` (blocking) runs in this thread
    while the server serves, and its return stops the server."""
    settings = parts.settings
    start_metrics(settings.metrics_port, settings.redis_dsn, settings.ingest_queue,
                  parts.model.model_id, settings.metrics_address)
    queue = ChunkQueue(celery_app(settings), settings)
    servicer = LookalikeServicer(settings, parts.model, parts.store, parts.jobs, queue)
    server, port, health_servicer = build_server(settings, servicer)
    # The model leaves ~360k long-lived objects (TensorFlow's); a full collection walks them
    # all, 0.2-0.3 s with the GIL held, stalling every search in flight. Built once, they are
    # moved out of the collector's reach.
    gc.collect()
    gc.freeze()
    server.start()
    if settings.embedded and settings.index_check_s > 0:
        parts.store.index_in_background(settings.index_check_s, record_index)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("lookalike query service listening on port %d (model %s, store %s)", port,
             parts.model.model_id, settings.qdrant_url or f"embedded at {settings.data_dir}")
    try:
        if alongside:
            alongside()
        else:
            signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=10))
            server.wait_for_termination()
    finally:
        health_servicer.enter_graceful_shutdown()
        server.stop(grace=5).wait()
        parts.store.close()


def main() -> None:
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    serve(build_parts(settings))


if __name__ == "__main__":
    main()

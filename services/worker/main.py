"""The ingest worker: a Celery task embeds one chunk of catalogue images and stores it.

Run it with `python -m lookalike_services.worker` (or `lookalike worker`) beside a Qdrant
server; with the embedded store the worker runs inside `lookalike serve` (services/embedded.py).
The queue contract and why no accepted image is lost: lookalike/pipeline/queue.py.
"""

from __future__ import annotations

import logging

from celery import Celery, Task
from celery.utils.time import get_exponential_backoff_interval

from lookalike.config import ConfigError, Settings, get_settings
from lookalike.model import load_model, model_id
from lookalike.model.base import EmbeddingModel
from lookalike.observability import context_id, setup_logging, start_metrics
from lookalike.pipeline.ingest import fail_chunk, process_chunk
from lookalike.pipeline.jobs import JobStore
from lookalike.pipeline.queue import TASK, ItemMessage, celery_app
from lookalike.store import CatalogueStore, ModelMismatch, StoreUnavailable, open_client

log = logging.getLogger(__name__)


def build_app(settings: Settings, model: EmbeddingModel, store: CatalogueStore,
              jobs: JobStore) -> Celery:
    """The Celery app with the ingest task bound to these parts."""
    app = celery_app(settings)

    # shared=False: the task belongs to this app alone (Celery shares tasks with every app
    # created later by default, which would bind a new app to these parts).
    @app.task(bind=True, name=TASK, max_retries=None, shared=False)
    def ingest_chunk(self: Task, job_id: str, items: list[ItemMessage]) -> int:
        context_id.set(job_id)
        try:
            return process_chunk(job_id, items, model, store, jobs, settings)
        except ModelMismatch as exc:
            return fail_chunk(jobs, job_id, items, str(exc))
        except StoreUnavailable as exc:
            retries = settings.store_retries
            if self.request.retries >= retries:
                return fail_chunk(jobs, job_id, items, f"{exc} (gave up after {retries} retries)")
            delay = get_exponential_backoff_interval(settings.retry_backoff_s,
                                                     self.request.retries, 60, full_jitter=True)
            log.warning("job %s: %s; retrying chunk in %ss", job_id, exc, delay)
            raise self.retry(exc=exc, countdown=delay) from exc
        except Exception as exc:  # noqa: BLE001 - the chunk is acknowledged: report every item
            log.exception("job %s: chunk failed", job_id)
            return fail_chunk(jobs, job_id, items, f"internal error: {type(exc).__name__}")

    return app


def run(app: Celery, settings: Settings, hostname: str | None = None,
        loglevel: str = "INFO") -> None:
    """Blocking. One chunk at a time: TensorFlow already uses every core for a batch."""
    argv = ["worker", "--pool=solo", f"--queues={settings.ingest_queue}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


def main() -> None:
    settings = get_settings()
    if settings.embedded:
        raise ConfigError("the embedded store can be opened by one process only: run "
                          "`lookalike serve` (worker included) or set QDRANT_URL")
    setup_logging(settings.log_level, settings.log_json)
    backend = open_client(settings)
    CatalogueStore(backend, settings.collection, model_id(settings.model), 0).check_live()
    model = load_model(settings.model)
    model.warmup()  # before the first chunk arrives
    store = CatalogueStore.open(settings, model.model_id, model.dim, backend)
    jobs = JobStore.from_url(settings.redis_dsn, settings.job_ttl_s)
    start_metrics(settings.metrics_port, settings.redis_dsn, settings.ingest_queue,
                  model.model_id, settings.metrics_address)
    try:
        run(build_app(settings, model, store, jobs), settings)
    finally:
        store.close()


if __name__ == "__main__":
    main()

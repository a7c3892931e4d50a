"""The Celery embedding worker: a task embeds one chunk of catalogue images.

Delivery settings (why no accepted image is lost):
- acks_late + reject_on_worker_lost: a chunk is acknowledged only after it is stored,
  so a worker killed mid-chunk leaves it on the queue for another worker;
- prefetch 1: a crashed worker holds at most one unacknowledged chunk;
- visibility_timeout: how long Redis waits before redelivering an unacknowledged chunk;
- point ids derived from (product_id, image_id) and outcomes recorded once per item
  make a redelivered chunk harmless.
"""

from __future__ import annotations

import logging

from celery import Celery, Task
from celery.signals import worker_ready
from celery.utils.time import get_exponential_backoff_interval

from lookalike import runtime
from lookalike.config import get_settings
from lookalike.ingest import ItemMessage, fail, process_chunk
from lookalike.observability import INGEST_ITEMS, context_id, start_metrics
from lookalike.store import ModelMismatch, StoreUnavailable

log = logging.getLogger(__name__)
settings = get_settings()

app = Celery("lookalike", broker=settings.redis_dsn)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_default_queue=settings.ingest_queue,
    # msgpack carries image bytes as they are (JSON needs base64: a third bigger, slower) and,
    # unlike pickle, cannot run code from a message.
    task_serializer="msgpack",
    accept_content=["msgpack"],
    # A chunk whose worker died returns to the queue once visibility_timeout has passed, at
    # the next sweep for such chunks: sweep every 10 s at most (kombu's default: 100 s).
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout_s,
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
    },
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

@app.task(bind=True, name="lookalike.ingest_chunk", max_retries=None)
def ingest_chunk(self: Task, job_id: str, items: list[ItemMessage]) -> int:
    context_id.set(job_id)
    try:
        return process_chunk(job_id, items, runtime.embedder(), runtime.store(), runtime.jobs(),
                             get_settings())
    except ModelMismatch as exc:
        for item in items:
            fail(runtime.jobs(), job_id, item, str(exc))
        INGEST_ITEMS.labels("failed").inc(len(items))
        return 0
    except StoreUnavailable as exc:
        retries = get_settings().store_retries
        if self.request.retries >= retries:
            for item in items:
                fail(runtime.jobs(), job_id, item, f"{exc} (gave up after {retries} retries)")
            INGEST_ITEMS.labels("failed").inc(len(items))
            return 0
        delay = get_exponential_backoff_interval(get_settings().retry_backoff_s,
                                                 self.request.retries, 60, full_jitter=True)
        log.warning("job %s: %s; retrying chunk in %ss", job_id, exc, delay)
        raise self.retry(exc=exc, countdown=delay) from exc
    except Exception as exc:  # noqa: BLE001 - the chunk is acknowledged: report every item
        # Outcomes already recorded (stored, or failed alone) stay as they are (HSETNX), so
        # only the items this error kept from an outcome are reported, and the job ends.
        log.exception("job %s: chunk failed", job_id)
        for item in items:
            fail(runtime.jobs(), job_id, item, f"internal error: {type(exc).__name__}")
        INGEST_ITEMS.labels("failed").inc(len(items))
        return 0


def dispatch(job_id: str, items: list[ItemMessage], chunk_size: int) -> int:
    """Queue the items in chunks; returns the number of chunks."""
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    for chunk in chunks:
        # Celery logs and publishes a task's argsrepr: never the URIs (credentials, tokens).
        ingest_chunk.apply_async(args=(job_id, chunk), queue=settings.ingest_queue,
                                 argsrepr=f"({job_id!r}, <{len(chunk)} items>)")
    return len(chunks)


@worker_ready.connect
def _warm(**_: object) -> None:
    # Load the model and open the store before the first chunk arrives.
    runtime.embedder().warmup()
    runtime.store()


def _standalone_metrics() -> None:
    start_metrics(settings.metrics_port, settings.redis_dsn, settings.ingest_queue,
                  runtime.embedder().model_id, settings.metrics_address)


def run_worker(hostname: str | None = None, loglevel: str = "INFO",
               metrics: bool = False) -> None:
    """Blocking. One chunk at a time: TensorFlow already uses every core for a batch.

    metrics: serve /metrics from this process (the all-in-one service already does).
    """
    if metrics:
        _standalone_metrics()
    argv = ["worker", "--pool=solo", f"--queues={settings.ingest_queue}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)

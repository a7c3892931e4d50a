"""The ingest queue contract, shared by the side that queues chunks (the query service,
reindex) and the side that runs them (the worker): the message, the task name, the
Celery configuration and the chunking.

Delivery settings (why no accepted image is lost):
- acks_late + reject_on_worker_lost: a chunk is acknowledged only after it is stored,
  so a worker killed mid-chunk leaves it on the queue for another worker;
- prefetch 1: a crashed worker holds at most one unacknowledged chunk;
- visibility_timeout: how long Redis waits before redelivering an unacknowledged chunk;
- point ids derived from (product_id, image_id) and outcomes recorded once per item
  make a redelivered chunk harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

from celery import Celery

from lookalike.config import Settings

TASK = "lookalike.ingest_chunk"


class ItemMessage(TypedDict, total=False):
    """One catalogue image in a chunk; travels as msgpack (image bytes as they are)."""

    index: int
    product_id: str
    image_id: str
    category: str
    title: str
    labels: list[str]
    source: str
    uri: str
    image: bytes
    product_set: str  # absent or "": the default set
    description: str


def celery_app(settings: Settings) -> Celery:
    """Celery on the Redis broker, configured for at-least-once chunks."""
    app = Celery("lookalike", broker=settings.redis_dsn, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.ingest_queue,
        # msgpack carries image bytes as they are (JSON needs base64: a third bigger, slower)
        # and, unlike pickle, cannot run code from a message.
        task_serializer="msgpack",
        accept_content=["msgpack"],
        # A chunk whose worker died returns to the queue once visibility_timeout has passed,
        # at the next sweep for such chunks: sweep every 10 s at most (kombu's default: 100 s).
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 4)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


def chunks(items: list[ItemMessage], size: int) -> Iterator[list[ItemMessage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ChunkQueue:
    """The producer side: queue a job's items in chunks for the workers."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app, self.queue, self.chunk_size = app, settings.ingest_queue, settings.chunk_size

    def send(self, job_id: str, items: list[ItemMessage]) -> int:
        """Returns the number of chunks queued."""
        sent = 0
        for chunk in chunks(items, self.chunk_size):
            # Celery logs and publishes a task's argsrepr: never the URIs (credentials, tokens).
            self.app.send_task(TASK, args=(job_id, chunk), queue=self.queue,
                               argsrepr=f"({job_id!r}, <{len(chunk)} items>)")
            sent += 1
        return sent

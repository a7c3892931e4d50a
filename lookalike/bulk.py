"""Bulk ingest from the client side: read a catalogue, submit it in jobs, follow progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lookalike.catalogue import Entry
from lookalike.client import Client
from lookalike.v1 import lookalike_pb2 as pb

# Stay well under the server's 64 MiB message limit.
REQUEST_BYTES = 24 * 1024 * 1024


def to_item(entry: Entry) -> pb.IngestItem:
    """Local files travel as bytes (the server may be elsewhere); URLs as URIs."""
    item = pb.IngestItem(product_id=entry.product_id, image_id=entry.image_id,
                         category=entry.category, title=entry.title, labels=entry.labels,
                         source=entry.uri)
    if entry.is_remote:
        item.uri = entry.uri
    else:
        item.image = Path(entry.uri).read_bytes()
    return item


def batches(entries: list[Entry]) -> Iterator[list[pb.IngestItem]]:
    batch: list[pb.IngestItem] = []
    size = 0
    for entry in entries:
        item = to_item(entry)
        if batch and size + item.ByteSize() > REQUEST_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.ByteSize()
    if batch:
        yield batch


def ingest(client: Client, entries: list[Entry],
           on_progress: Callable[[int, int, int], None] = lambda total, done, failed: None,
           poll_s: float = 0.5) -> list[pb.Job]:
    """Submit every entry and wait until each job is done; returns the final job reports."""
    job_ids = [client.submit(batch) for batch in batches(entries)]
    while True:
        jobs = [client.job(job_id) for job_id in job_ids]
        on_progress(sum(j.total for j in jobs), sum(j.done for j in jobs),
                    sum(j.failed for j in jobs))
        if all(j.state == pb.Job.DONE for j in jobs):
            return jobs
        time.sleep(poll_s)

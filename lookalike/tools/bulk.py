"""Bulk ingest from the client side: read a catalogue, submit it in jobs, follow progress.

Nothing is dropped on the way: a local file that cannot be read becomes a failure row
(never a traceback that aborts the run), and a job that stops moving ends the wait with a
message naming it instead of waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.client import Client
from lookalike.tools.catalogue import Catalogue, Entry, misplaced_hint, unsupported_scheme
from lookalike.v1 import lookalike_pb2 as pb

# Well under the server's message limit (LOOKALIKE_MAX_INGEST_BYTES, 24 MiB by default).
REQUEST_BYTES = 8 * 1024 * 1024
REQUEST_ITEMS = 500
STALL_S = 300.0


class IngestStalled(TimeoutError):
    """Jobs made no progress for too long; the message names them."""


@dataclass
class IngestOutcome:
    jobs: list[pb.Job] = field(default_factory=list)
    unreadable: list[pb.ItemFailure] = field(default_factory=list)  # never sent

    @property
    def done(self) -> int:
        return sum(job.done for job in self.jobs)

    @property
    def failures(self) -> list[pb.ItemFailure]:
        return self.unreadable + [f for job in self.jobs for f in job.failures]


def to_item(entry: Entry) -> pb.IngestItem:
    """Local files travel as bytes (the server may be elsewhere); URLs as URIs."""
    item = pb.IngestItem(product_id=entry.product_id, image_id=entry.image_id,
                         category=entry.category, title=entry.title, labels=entry.labels,
                         source=entry.uri, product_set=entry.product_set,
                         description=entry.description)
    if entry.is_remote:
        item.uri = entry.uri
    elif reason := unsupported_scheme(entry.uri):
        raise ValueError(reason)
    else:
        item.image = Path(entry.uri).read_bytes()
    return item


def _unreadable(index: int, entry: Entry, exc: OSError | ValueError) -> pb.ItemFailure:
    if isinstance(exc, ValueError):
        reason = str(exc)
    else:
        what = {FileNotFoundError: "no such file", IsADirectoryError: "a directory, not an image",
                PermissionError: "permission denied"}.get(type(exc), exc.strerror or str(exc))
        reason = f"{what}: {entry.uri}"
        if isinstance(exc, FileNotFoundError):
            reason += misplaced_hint(Path(entry.uri))
    where = f"{entry.where}: " if entry.where else ""  # the catalogue line, to fix it there
    return pb.ItemFailure(index=index, product_id=entry.product_id, image_id=entry.image_id,
                          reason=where + reason)


def batches(entries: Sequence[Entry], unreadable: list[pb.ItemFailure] | None = None
            ) -> Iterator[list[pb.IngestItem]]:
    """Requests of at most REQUEST_BYTES / REQUEST_ITEMS; unreadable files go to `unreadable`,
    and so do the rows a Catalogue refused (never sent; with unreadable=None they raise)."""
    for problem in entries.problems if isinstance(entries, Catalogue) else ():
        if unreadable is None:
            raise ValueError(str(problem))
        unreadable.append(pb.ItemFailure(product_id=problem.product_id, image_id=problem.image_id,
                                         reason=str(problem)))
    batch: list[pb.IngestItem] = []
    size = 0
    for index, entry in enumerate(entries):
        try:
            item = to_item(entry)
        except (OSError, ValueError) as exc:
            if unreadable is None:
                raise
            unreadable.append(_unreadable(index, entry, exc))
            continue
        if batch and (size + item.ByteSize() > REQUEST_BYTES or len(batch) >= REQUEST_ITEMS):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.ByteSize()
    if batch:
        yield batch


def ingest(client: Client, entries: list[Entry],
           on_progress: Callable[[int, int, int], None] = lambda total, done, failed: None,
           poll_s: float = 0.5, stall_s: float = STALL_S) -> IngestOutcome:
    """Submit every entry and wait until each job is done.

    Raises IngestStalled when no job moved for stall_s seconds (no worker running,
    a worker stuck): the jobs go on in the service and can be followed by their ids.
    """
    outcome = IngestOutcome()
    job_ids = [client.submit(batch) for batch in batches(entries, outcome.unreadable)]
    failed_here = len(outcome.unreadable)
    last, moved = -1, time.monotonic()
    while True:
        jobs = [client.job(job_id) for job_id in job_ids]
        total = sum(j.total for j in jobs) + failed_here
        finished = sum(j.done + j.failed for j in jobs)
        on_progress(total, sum(j.done for j in jobs), sum(j.failed for j in jobs) + failed_here)
        if all(j.state == pb.Job.DONE for j in jobs):
            outcome.jobs = jobs
            return outcome
        if finished != last:
            last, moved = finished, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            stuck = ", ".join(f"{j.job_id} ({j.done + j.failed}/{j.total})" for j in jobs
                              if j.state != pb.Job.DONE)
            raise IngestStalled(f"no progress for {stall_s:.0f} s on job {stuck}: is a worker "
                                "running and reaching the store? The job goes on in the "
                                "service; follow it there")
        time.sleep(poll_s)

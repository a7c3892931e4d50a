"""Rebuild the catalogue for another model without taking search down.

The new model's vectors go into a collection of their own, built from the catalogue
images' sources (paths or URLs kept in the payload) through the same chunk pipeline
the worker runs; then the catalogue alias moves to it in one atomic step. Services
still running the old model keep searching the old collection until they restart.
Images ingested as raw bytes have no source to re-read: they are reported, not guessed.

Sources are re-read under the same confinement as ingest (LOOKALIKE_INGEST_ROOTS, no
private URLs unless allowed): a caller with a write key chose them, so reindex may not
read anything ingest would have refused. Each image fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lookalike.config import Settings
from lookalike.model import load_model
from lookalike.pipeline.ingest import process_chunk
from lookalike.pipeline.jobs import Failure, JobStore
from lookalike.pipeline.queue import ItemMessage, chunks
from lookalike.store import CatalogueStore, open_client


@dataclass
class ReindexReport:
    source_collection: str
    target_collection: str
    images: int = 0
    stored: int = 0
    failures: list[Failure] = field(default_factory=list)
    promoted: bool = False


def _payloads(store: CatalogueStore, collection: str) -> Iterator[dict]:
    return store.scroll(collection)


def _key(payload: dict) -> tuple[str, str, str]:
    return (payload.get("product_set", ""), payload.get("product_id", ""),
            payload.get("image_id", ""))


def _keys(store: CatalogueStore, collection: str) -> set[tuple[str, str, str]]:
    return {_key(p) for p in _payloads(store, collection)}


def _reference(payload: dict) -> str:
    """What to re-read: the reference the service read at ingest, else the caller's source
    (catalogues written before `uri` was recorded; CLI uploads name their local path)."""
    reference = payload.get("uri") or payload.get("source", "")
    return "" if reference == "upload" else reference


def reindex(settings: Settings, model: str, jobs: JobStore,
            on_progress: Callable[[int, int], None] = lambda done, total: None,
            promote: bool = True, force: bool = False) -> ReindexReport:
    """Build `model`'s collection from the live one; make it live when every image made it
    (or `force`). Idempotent: run it again to finish an interrupted reindex."""
    embedder = load_model(model)
    target = CatalogueStore(open_client(settings), settings.collection, embedder.model_id,
                            embedder.dim)
    live = target.live_collection()
    if live is None:
        raise LookupError(f"no catalogue {settings.collection!r} to reindex")
    report = ReindexReport(live, target.collection)
    if live == target.collection:
        return report
    target.create()
    tried: set[tuple[str, str, str]] = set()
    # Two passes: the second picks up images ingested into the live collection meanwhile.
    for _ in range(2):
        todo = {}
        for payload in _payloads(target, live):
            todo.setdefault(_key(payload), payload)  # several views of one image: re-read it once
        for key in _keys(target, target.collection) | tried:
            todo.pop(key, None)
        if not todo:
            break
        tried |= todo.keys()
        job_id = jobs.create(len(todo))
        items = [ItemMessage(index=i, product_id=p["product_id"], image_id=p["image_id"],
                             category=p.get("category", ""), title=p.get("title", ""),
                             labels=list(p.get("labels", [])), source=p.get("source", ""),
                             uri=_reference(p), product_set=p.get("product_set", ""),
                             description=p.get("description", ""))
                 for i, p in enumerate(todo.values())]
        report.images += len(items)
        for item in [i for i in items if not i["uri"]]:
            items.remove(item)
            jobs.record_failure(job_id, item["index"], item["product_id"], item["image_id"],
                                "ingested as bytes without a source path or URL: ingest it again")
        done = 0
        for chunk in chunks(items, settings.chunk_size):
            report.stored += process_chunk(job_id, chunk, embedder, target, jobs, settings)
            done += len(chunk)
            on_progress(done, len(items))
        report.failures += jobs.get(job_id).failures
    if promote and (force or not report.failures):
        target.promote()
        report.promoted = True
    target.close()
    return report

"""One chunk of catalogue images: fetch, decode, embed as one batch, store, report.

A bad item fails alone with its reason, whatever goes wrong reading it; the rest of the
chunk is stored. The message format and delivery rules are in pipeline/queue.py.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lookalike.config import Settings
from lookalike.imaging import ImageRejected, Limits, decode
from lookalike.model.base import EmbeddingModel
from lookalike.observability import INGEST_ITEMS
from lookalike.pipeline.jobs import JobStore
from lookalike.pipeline.queue import ItemMessage
from lookalike.pipeline.sources import FetchError, fetch, redact
from lookalike.store import CatalogueImage, CatalogueStore
from lookalike.verify.rerank import StageTwo

log = logging.getLogger(__name__)


# Fetches wait on the network and OpenCV decodes without the GIL: a chunk's images load
# side by side (measured: 20 ms of 370 per chunk of 32 local photos; URLs gain far more).
_LOADERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lookalike-load")


def load(item: ItemMessage, settings: Settings, side: int = 224) -> np.ndarray:
    """Every reference is confined the same way, whoever gave it (a request or reindex).
    `side`: the model's input side, which large images are shrunk towards while decoding."""
    if "image" in item:
        return decode(item["image"], Limits.of(settings), side)
    data = fetch(item["uri"], settings.max_image_bytes, settings.fetch_timeout_s,
                 roots=settings.ingest_root_list, allow_private=settings.allow_private_urls)
    # No echo of the first bytes: they may be something the caller may not read.
    return decode(data, Limits.of(settings), side, echo=False)


def load_or_reason(item: ItemMessage, settings: Settings, side: int = 224) -> np.ndarray | str:
    """The pixels, or why this item fails: no exception may take its chunk down with it."""
    try:
        return load(item, settings, side)
    except (ImageRejected, FetchError) as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or an odd input: this item fails alone
        log.exception("item %s/%s: unexpected error", item.get("product_id"), item.get("image_id"))
        return f"could not read the image: {type(exc).__name__}: {redact(str(exc))[:200]}"


def catalogue_image(item: ItemMessage, view: int = 0, features: str = "") -> CatalogueImage:
    return CatalogueImage(
        product_id=item["product_id"],
        image_id=item["image_id"],
        category=item.get("category", ""),
        title=item.get("title", ""),
        labels=tuple(item.get("labels", ())),
        source=item.get("source", ""),
        uri=item.get("uri", ""),
        view=view,
        features=features if view == 0 else "",
        product_set=item.get("product_set", ""),
        description=item.get("description", ""),
    )


def process_chunk(
    job_id: str,
    items: list[ItemMessage],
    model: EmbeddingModel,
    store: CatalogueStore,
    jobs: JobStore,
    settings: Settings,
) -> int:
    """Store the good items of a chunk; returns how many were stored.

    Store errors propagate (StoreUnavailable) so the task can retry the chunk;
    item failures already recorded stay recorded exactly once.
    """
    good: list[ItemMessage] = []
    pixels: list[np.ndarray] = []
    loaded_items = _LOADERS.map(lambda item: load_or_reason(item, settings, model.side), items)
    for item, loaded in zip(items, loaded_items):
        if isinstance(loaded, str):
            fail(jobs, job_id, item, loaded)
            INGEST_ITEMS.labels("rejected").inc()
        else:
            pixels.append(loaded)
            good.append(item)
    if good:
        stage_two = StageTwo.of(settings)
        # Local features for stage 2 of search, found once here (OpenCV runs without the GIL).
        features = (list(_LOADERS.map(lambda px: stage_two.catalogue_features(px).pack(), pixels))
                    if stage_two else [""] * len(pixels))
        views = model.embed_catalogue(pixels)
        points = [catalogue_image(item, v, packed) for item, vs, packed in zip(good, views, features)
                  for v in range(len(vs))]
        store.upsert(points, np.concatenate(views))
        for item in good:
            jobs.record_ok(job_id, item["index"])
        INGEST_ITEMS.labels("stored").inc(len(good))
    log.info("job %s: chunk of %d stored %d", job_id, len(items), len(good))
    return len(good)


def fail(jobs: JobStore, job_id: str, item: ItemMessage, reason: str) -> None:
    jobs.record_failure(job_id, item["index"], item.get("product_id", ""),
                        item.get("image_id", ""), reason)


def fail_chunk(jobs: JobStore, job_id: str, items: list[ItemMessage], reason: str) -> int:
    """Every item of a chunk that could not be stored; outcomes already recorded (stored,
    or failed alone) stay as they are (HSETNX). Returns 0: nothing stored."""
    for item in items:
        fail(jobs, job_id, item, reason)
    INGEST_ITEMS.labels("failed").inc(len(items))
    return 0

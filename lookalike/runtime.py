"""The process's one embedder, store and job store, created on first use.

The query service and the worker share them when they run in one process (the
embedded default), which is what lets a single process own the embedded store.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from lookalike.config import get_settings
from lookalike.jobs import JobStore
from lookalike.store import Backend, CatalogueStore, open_client

if TYPE_CHECKING:
    from lookalike.embedding import Embedder

_init_lock = threading.RLock()


@lru_cache
def _embedder() -> Embedder:
    from lookalike.embedding import Embedder  # TensorFlow import: only where embeddings are made

    return Embedder(get_settings().model)


@lru_cache
def _backend() -> Backend:
    return open_client(get_settings())


@lru_cache
def _store() -> CatalogueStore:
    model = embedder()
    return CatalogueStore.open(get_settings(), model.model_id, model.dim, backend())


def backend() -> Backend:
    """The vector engine: an embedded store is locked to this process from here on."""
    with _init_lock:
        return _backend()


def embedder() -> Embedder:
    with _init_lock:
        return _embedder()


def store() -> CatalogueStore:
    backend()
    embedder()
    with _init_lock:
        return _store()


@lru_cache
def jobs() -> JobStore:
    settings = get_settings()
    return JobStore.from_url(settings.redis_dsn, settings.job_ttl_s)

"""The catalogue as vectors: one point per product image, searched by cosine similarity,
on either backend (store/backends.py)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from lookalike.config import Settings
from lookalike.store.backends import Backend, open_client
from lookalike.store.indexing import IndexReport

# Stable namespace: the same (product_id, image_id) always maps to the same point id,
# so re-ingesting an image overwrites it instead of adding a duplicate.
POINT_NAMESPACE = uuid.UUID("6f1b7c1e-3d0a-4f5e-9a51-6c0c3b1d2e77")
# No index on "model": a collection holds one model's vectors by construction (collection_for).
INDEXED_FIELDS = ("product_id", "category", "labels")


class ModelMismatch(RuntimeError):
    """The collection was embedded by another model than the one loaded."""


@dataclass(frozen=True)
class CatalogueImage:
    product_id: str
    image_id: str
    category: str = ""
    title: str = ""
    labels: tuple[str, ...] = ()
    source: str = ""  # for display, as the caller gave it
    uri: str = ""  # the reference the service read the image from (what reindex re-reads)
    view: int = 0  # a model may store several views (vectors) of one image
    features: str = ""  # packed local features (lookalike.verify), stored with view 0

    @property
    def point_id(self) -> str:
        # Unambiguous because ids may not contain control characters (refused at submit).
        key = f"{self.product_id}\x1f{self.image_id}" + (f"\x1f{self.view}" if self.view else "")
        return str(uuid.uuid5(POINT_NAMESPACE, key))


@dataclass(frozen=True)
class Match:
    product_id: str
    score: float
    image_id: str
    category: str
    title: str
    labels: list[str] = field(default_factory=list)
    source: str = ""
    point_id: str = ""  # the point of this best image (its local features are read by id)


def collection_for(catalogue: str, model_id: str) -> str:
    """Each model's vectors live in a collection of their own; `catalogue` is an alias."""
    return f"{catalogue}--{re.sub(r'[^A-Za-z0-9_.-]+', '-', model_id)}"


class CatalogueStore:
    """One model's view of the catalogue.

    The catalogue name (LOOKALIKE_COLLECTION) is an alias pointing at the live model's
    collection. A new model is rolled out by building its own collection
    (`lookalike reindex`) and moving the alias in one atomic step; services still
    running the old model keep searching the old collection until they restart.
    Thread-safe: the backends serialise what their engine needs.
    """

    def __init__(self, client: Backend, catalogue: str, model_id: str, dim: int,
                 stats_cache_s: float = 0.0) -> None:
        self.client, self.catalogue, self.model_id, self.dim = client, catalogue, model_id, dim
        self.collection = collection_for(catalogue, model_id)
        self._ready = False
        self.stats_cache_s = stats_cache_s
        self._stats: tuple[float, int, int] | None = None  # (when, points, products)
        self._stats_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, model_id: str, dim: int,
             client: Backend | None = None) -> CatalogueStore:
        """A fresh install creates this model's collection and makes it live."""
        store = cls(client or open_client(settings), settings.collection, model_id, dim,
                    settings.stats_cache_s)
        if store.live_collection() is None:
            store.create()
            store.promote()
        return store

    def create(self) -> None:
        self.client.create_collection(self.collection, self.dim, self.model_id, INDEXED_FIELDS)

    def live_collection(self) -> str | None:
        return self.client.alias(self.catalogue)

    def live_model(self) -> str:
        live = self.live_collection()
        return "" if live is None else self.client.collection_model(live)

    def promote(self) -> None:
        """Point the catalogue alias at this model's collection, atomically."""
        self.client.set_alias(self.catalogue, self.collection)

    def check_model(self) -> None:
        """Refuse to mix models: their vectors live in unrelated spaces."""
        if self._ready:
            return
        if not self.client.collection_exists(self.collection):
            raise ModelMismatch(
                f"catalogue {self.catalogue!r} was built by model "
                f"{self.live_model() or 'unknown'!r}, but this service runs {self.model_id!r}; "
                f"search with that model or run `lookalike reindex` for this one"
            )
        self._ready = True

    def upsert(self, images: list[CatalogueImage], vectors: np.ndarray) -> None:
        self.check_model()
        points = [
            (img.point_id, vec, {
                "product_id": img.product_id,
                "image_id": img.image_id,
                "category": img.category,
                "title": img.title,
                "labels": list(img.labels),
                "source": img.source,
                "uri": img.uri,
                "view": img.view,
                "model": self.model_id,
                **({"features": img.features} if img.features else {}),
            })
            for img, vec in zip(images, vectors, strict=True)
        ]
        if points:
            self.client.upsert(self.collection, points)
            self._stats = None

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        categories: list[str] | None = None,
        labels: list[str] | None = None,
        min_score: float | None = None,
    ) -> list[Match]:
        """The top_k products, each by its best image, best first."""
        self.check_model()
        must = {"category": list(categories or []), "labels": list(labels or [])}
        hits = self.client.search(self.collection, np.asarray(vector, np.float32), top_k, must,
                                  min_score)
        return [
            Match(
                product_id=str(p.get("product_id", "")),
                score=score,
                image_id=p.get("image_id", ""),
                category=p.get("category", ""),
                title=p.get("title", ""),
                labels=list(p.get("labels", [])),
                source=p.get("source", ""),
                point_id=CatalogueImage(str(p.get("product_id", "")), p.get("image_id", ""),
                                        view=int(p.get("view", 0))).point_id,
            )
            for score, p in hits
        ]

    def search_views(self, vectors: np.ndarray, top_k: int, categories: list[str] | None = None,
                     labels: list[str] | None = None, min_score: float | None = None
                     ) -> list[Match]:
        """Several vectors of one query (the photo and its crops): a product scores the best
        of its images over all of them (MaxSim). Exact: the top_k by that maximum are among
        the top_k of the vector that gives each its maximum."""
        best: dict[str, Match] = {}
        for vector in vectors:
            for match in self.search(vector, top_k, categories, labels, min_score):
                if match.product_id not in best or match.score > best[match.product_id].score:
                    best[match.product_id] = match
        return sorted(best.values(), key=lambda m: -m.score)[:top_k]

    def local_features(self, matches: list[Match]) -> list[str]:
        """The packed local features of each match's image ("" where none were stored)."""
        self.check_model()
        found = self.client.features(self.collection, [m.point_id for m in matches])
        return [found.get(m.point_id, "") for m in matches]

    def delete_products(self, product_ids: list[str]) -> int:
        self.check_model()
        before = self.count()
        self.client.delete_products(self.collection, list(product_ids))
        self._stats = None
        return before - self.count()

    def count(self) -> int:
        self.check_model()
        return self.client.count(self.collection)

    def count_products(self) -> int:
        self.check_model()
        return self.client.count_products(self.collection)

    def stats(self) -> tuple[int, int]:
        """(images, products), counted at most stats_cache_s ago: counting products is a pass
        over the catalogue, too much for every call. Writes through this store recount."""
        with self._stats_lock:
            cached = self._stats
            if cached is None or time.monotonic() - cached[0] > self.stats_cache_s:
                cached = self._stats = (time.monotonic(), self.count(), self.count_products())
            return cached[1], cached[2]

    def scroll(self, collection: str | None = None, batch: int = 256):
        """Every point's payload in `collection` (default: this model's), in batches."""
        collection = collection or self.collection
        offset = None
        while True:
            payloads, offset = self.client.scroll(collection, offset, batch)
            yield from payloads
            if offset is None:
                return

    def optimize(self) -> bool:
        """Build the search index now (embedded store: aside, while search goes on; blocks
        the caller for minutes per 100k images). A server optimizes on its own: no-op there."""
        self.check_model()
        return self.client.optimize(self.collection)

    def index_in_background(self, every_s: float,
                            report: IndexReport = lambda outcome, unindexed: None) -> None:
        """Keep the index up to date as the catalogue grows (embedded store)."""
        self.client.index_in_background(self.collection, every_s, report)

    def close(self) -> None:
        self.client.close()

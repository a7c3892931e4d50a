"""The catalogue in Qdrant: one point per product image, searched by cosine similarity.

Embedded (a folder, no server) by default; a Qdrant server when QDRANT_URL is set.
An embedded store is locked to the one process that opens it.
"""

from __future__ import annotations

import re
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from lookalike.config import Settings

# Stable namespace: the same (product_id, image_id) always maps to the same point id,
# so re-ingesting an image overwrites it instead of adding a duplicate.
POINT_NAMESPACE = uuid.UUID("6f1b7c1e-3d0a-4f5e-9a51-6c0c3b1d2e77")
INDEXED_FIELDS = ("product_id", "category", "labels", "model")


class ModelMismatch(RuntimeError):
    """The collection was embedded by another model than the one loaded."""


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached; worth retrying."""


@dataclass(frozen=True)
class CatalogueImage:
    product_id: str
    image_id: str
    category: str = ""
    title: str = ""
    labels: tuple[str, ...] = ()
    source: str = ""
    view: int = 0  # a model may store several views (vectors) of one image

    @property
    def point_id(self) -> str:
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


def open_client(settings: Settings) -> QdrantClient:
    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None)
    path = Path(settings.data_dir) / "qdrant"
    path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(path))


def collection_for(catalogue: str, model_id: str) -> str:
    """Each model's vectors live in a collection of their own; `catalogue` is an alias."""
    return f"{catalogue}--{re.sub(r'[^A-Za-z0-9_.-]+', '-', model_id)}"


class CatalogueStore:
    """One model's view of the catalogue.

    The catalogue name (LOOKALIKE_COLLECTION) is a Qdrant alias pointing at the live
    model's collection. A new model is rolled out by building its own collection
    (`lookalike reindex`) and moving the alias in one atomic step; services still
    running the old model keep searching the old collection until they restart.
    """

    def __init__(self, client: QdrantClient, catalogue: str, model_id: str, dim: int) -> None:
        self.client, self.catalogue, self.model_id, self.dim = client, catalogue, model_id, dim
        self.collection = collection_for(catalogue, model_id)
        # The embedded engine is not thread-safe; a server client is, but a lock costs ~nothing.
        self._lock = threading.Lock()
        self._ready = False

    @classmethod
    def open(cls, settings: Settings, model_id: str, dim: int) -> CatalogueStore:
        """A fresh install creates this model's collection and makes it live."""
        store = cls(open_client(settings), settings.collection, model_id, dim)
        if store.live_collection() is None:
            store.create()
            store.promote()
        return store

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return fn(*args, **kwargs)
        except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
            raise StoreUnavailable(f"vector store unavailable: {exc}") from exc
        except UnexpectedResponse as exc:
            if exc.status_code is not None and exc.status_code >= 500:
                raise StoreUnavailable(f"vector store error {exc.status_code}") from exc
            raise

    def create(self) -> None:
        if self._call(self.client.collection_exists, self.collection):
            return
        self._call(
            self.client.create_collection,
            self.collection,
            vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
            metadata={"model": self.model_id},
        )
        # The embedded engine ignores payload indexes (and warns); a server uses them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for name in INDEXED_FIELDS:
                self._call(
                    self.client.create_payload_index,
                    self.collection,
                    field_name=name,
                    field_schema=models.PayloadSchemaType.KEYWORD,
                )

    def live_collection(self) -> str | None:
        for alias in self._call(self.client.get_aliases).aliases:
            if alias.alias_name == self.catalogue:
                return alias.collection_name
        return None

    def live_model(self) -> str:
        live = self.live_collection()
        if live is None:
            return ""
        info = self._call(self.client.get_collection, live)
        return str((info.config.metadata or {}).get("model", ""))

    def promote(self) -> None:
        """Point the catalogue alias at this model's collection, atomically."""
        operations: list = []
        if self.live_collection() is not None:
            operations.append(models.DeleteAliasOperation(
                delete_alias=models.DeleteAlias(alias_name=self.catalogue)))
        operations.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=self.collection, alias_name=self.catalogue)))
        self._call(self.client.update_collection_aliases, change_aliases_operations=operations)

    def check_model(self) -> None:
        """Refuse to mix models: their vectors live in unrelated spaces."""
        if self._ready:
            return
        if not self._call(self.client.collection_exists, self.collection):
            raise ModelMismatch(
                f"catalogue {self.catalogue!r} was built by model "
                f"{self.live_model() or 'unknown'!r}, but this service runs {self.model_id!r}; "
                f"search with that model or run `lookalike reindex` for this one"
            )
        self._ready = True

    def upsert(self, images: list[CatalogueImage], vectors: np.ndarray) -> None:
        self.check_model()
        points = [
            models.PointStruct(
                id=img.point_id,
                vector=vec.tolist(),
                payload={
                    "product_id": img.product_id,
                    "image_id": img.image_id,
                    "category": img.category,
                    "title": img.title,
                    "labels": list(img.labels),
                    "source": img.source,
                    "view": img.view,
                    "model": self.model_id,
                },
            )
            for img, vec in zip(images, vectors, strict=True)
        ]
        if points:
            self._call(self.client.upsert, self.collection, points=points, wait=True)

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        categories: list[str] | None = None,
        labels: list[str] | None = None,
        min_score: float | None = None,
    ) -> list[Match]:
        self.check_model()
        must: list[models.Condition] = [
            models.FieldCondition(key="model", match=models.MatchValue(value=self.model_id))
        ]
        if categories:
            must.append(models.FieldCondition(key="category", match=models.MatchAny(any=categories)))
        must += [
            models.FieldCondition(key="labels", match=models.MatchValue(value=label))
            for label in labels or []
        ]
        result = self._call(
            self.client.query_points_groups,
            self.collection,
            group_by="product_id",
            query=vector.tolist(),
            query_filter=models.Filter(must=must),
            limit=top_k,
            group_size=1,
            score_threshold=min_score,
        )
        matches = []
        for group in result.groups:
            hit = group.hits[0]
            p = hit.payload or {}
            matches.append(
                Match(
                    product_id=p.get("product_id", str(group.id)),
                    score=float(hit.score),
                    image_id=p.get("image_id", ""),
                    category=p.get("category", ""),
                    title=p.get("title", ""),
                    labels=list(p.get("labels", [])),
                    source=p.get("source", ""),
                )
            )
        return matches

    def delete_products(self, product_ids: list[str]) -> int:
        self.check_model()
        selector = models.Filter(
            must=[models.FieldCondition(key="product_id", match=models.MatchAny(any=product_ids))]
        )
        before = self.count()
        self._call(
            self.client.delete, self.collection, points_selector=models.FilterSelector(filter=selector)
        )
        return before - self.count()

    def count(self) -> int:
        self.check_model()
        return int(self._call(self.client.count, self.collection, exact=True).count)

    def count_products(self) -> int:
        # Facet counting is server-side in Qdrant; the embedded engine needs a scroll.
        self.check_model()
        products: set[str] = set()
        offset = None
        while True:
            points, offset = self._call(
                self.client.scroll, self.collection, limit=1024, offset=offset,
                with_payload=["product_id"], with_vectors=False,
            )
            products.update(str((p.payload or {}).get("product_id")) for p in points)
            if offset is None:
                return len(products)

    def close(self) -> None:
        self.client.close()

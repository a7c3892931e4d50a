"""The catalogue in Qdrant: one point per product image, searched by cosine similarity.

Embedded (a folder, no server) by default; a Qdrant server when QDRANT_URL is set.
An embedded store is locked to the one process that opens it.
"""

from __future__ import annotations

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

    @property
    def point_id(self) -> str:
        return str(uuid.uuid5(POINT_NAMESPACE, f"{self.product_id}\x1f{self.image_id}"))


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


class CatalogueStore:
    def __init__(self, client: QdrantClient, collection: str, model_id: str, dim: int) -> None:
        self.client, self.collection, self.model_id, self.dim = client, collection, model_id, dim
        # The embedded engine is not thread-safe; a server client is, but a lock costs ~nothing.
        self._lock = threading.Lock()
        self.built_by = model_id

    @classmethod
    def open(cls, settings: Settings, model_id: str, dim: int) -> CatalogueStore:
        store = cls(open_client(settings), settings.collection, model_id, dim)
        store.ensure_collection()
        store.built_by = store.collection_model()
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

    def ensure_collection(self) -> None:
        if not self._call(self.client.collection_exists, self.collection):
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

    def collection_model(self) -> str:
        info = self._call(self.client.get_collection, self.collection)
        return str((info.config.metadata or {}).get("model", ""))

    def check_model(self) -> None:
        """Refuse to mix vectors of two models: they live in unrelated spaces."""
        built_by = self.built_by
        if built_by != self.model_id:
            raise ModelMismatch(
                f"collection {self.collection!r} was built by model {built_by or 'unknown'!r}, "
                f"but this server runs {self.model_id!r}; search it with that model or reindex"
            )

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
        selector = models.Filter(
            must=[models.FieldCondition(key="product_id", match=models.MatchAny(any=product_ids))]
        )
        before = self.count()
        self._call(
            self.client.delete, self.collection, points_selector=models.FilterSelector(filter=selector)
        )
        return before - self.count()

    def count(self) -> int:
        return int(self._call(self.client.count, self.collection, exact=True).count)

    def count_products(self) -> int:
        # Facet counting is server-side in Qdrant; the embedded engine needs a scroll.
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

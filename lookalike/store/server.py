"""A Qdrant server (or qdrant-client's local mode) as the vector store, through qdrant-client.

Collections, aliases, payload indexes and grouping by product are the server's own.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

# Local features (tens of KB a point) are read only for the shortlist that stage 2 verifies.
_WITHOUT_FEATURES = models.PayloadSelectorExclude(exclude=["features"])


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached; worth retrying."""


def _filter(must: dict[str, list[str]] | None) -> models.Filter | None:
    """The default product set ("") is stored as no value (store/catalogue.py)."""
    if not must:
        return None
    conditions: list[models.Condition] = []
    for key, values in must.items():
        if key == "product_set":
            conditions.append(
                models.FieldCondition(key=key, match=models.MatchValue(value=values[0]))
                if values[0] else models.IsEmptyCondition(is_empty=models.PayloadField(key=key)))
        elif key == "labels":  # every label
            conditions += [models.FieldCondition(key=key, match=models.MatchValue(value=v))
                           for v in values]
        elif values:
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=values)))
    return models.Filter(must=conditions)


@dataclass(frozen=True)
class ServerOptions:
    """How new collections are laid out on a Qdrant server (0: the server's default)."""

    shard_number: int = 0
    replication_factor: int = 0
    write_consistency_factor: int = 0
    quantization: str = "int8"     # int8 scalar quantisation in RAM, or "none"
    on_disk: bool = True           # original vectors and payload on disk (rescoring reads them)
    oversampling: float = 2.0      # candidates fetched per result from the quantised index
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 0               # search-time ef; 0: the server's default

    def collection_config(self) -> dict[str, Any]:
        quantization = (models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
            if self.quantization == "int8" else None)
        return {"shard_number": self.shard_number or None,
                "replication_factor": self.replication_factor or None,
                "write_consistency_factor": self.write_consistency_factor or None,
                "quantization_config": quantization, "on_disk_payload": self.on_disk,
                "hnsw_config": models.HnswConfigDiff(m=self.hnsw_m,
                                                     ef_construct=self.hnsw_ef_construct)}

    def search_params(self) -> models.SearchParams:
        rescore = (models.QuantizationSearchParams(rescore=True, oversampling=self.oversampling)
                   if self.quantization == "int8" else None)
        return models.SearchParams(hnsw_ef=self.hnsw_ef or None, quantization=rescore)


class QdrantBackend:
    def __init__(self, client: QdrantClient, options: ServerOptions = ServerOptions()) -> None:
        self.client, self.options = client, options
        # qdrant-client's local mode is not thread-safe; a server client is, and a lock costs
        # ~nothing.
        self._lock = threading.Lock()

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

    def collection_exists(self, collection: str) -> bool:
        return bool(self._call(self.client.collection_exists, collection))

    def create_collection(self, collection: str, dim: int, model_id: str,
                          indexed_fields: tuple[str, ...]) -> None:
        if self.collection_exists(collection):  # made by an older version: add new indexes
            schema = self._call(self.client.get_collection, collection).payload_schema or {}
            self._index(collection, tuple(f for f in indexed_fields if f not in schema))
            return
        self._call(
            self.client.create_collection,
            collection,
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE,
                                               on_disk=self.options.on_disk),
            metadata={"model": model_id},
            **self.options.collection_config(),
        )
        self._index(collection, indexed_fields)

    def _index(self, collection: str, indexed_fields: tuple[str, ...]) -> None:
        # The local mode ignores payload indexes (and warns); a server uses them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for name in indexed_fields:
                # Product sets are tenants (Qdrant's multitenancy): points stored by set.
                schema = (models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD,
                                                    is_tenant=True)
                          if name == "product_set" else models.PayloadSchemaType.KEYWORD)
                self._call(self.client.create_payload_index, collection, field_name=name,
                           field_schema=schema)

    def collection_model(self, collection: str) -> str:
        info = self._call(self.client.get_collection, collection)
        return str((info.config.metadata or {}).get("model", ""))

    def alias(self, catalogue: str) -> str | None:
        for alias in self._call(self.client.get_aliases).aliases:
            if alias.alias_name == catalogue:
                return alias.collection_name
        return None

    def set_alias(self, catalogue: str, collection: str) -> None:
        """Move the alias in one atomic step."""
        operations: list = []
        if self.alias(catalogue) is not None:
            operations.append(models.DeleteAliasOperation(
                delete_alias=models.DeleteAlias(alias_name=catalogue)))
        operations.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=collection, alias_name=catalogue)))
        self._call(self.client.update_collection_aliases, change_aliases_operations=operations)

    def upsert(self, collection: str, points: list[tuple[str, np.ndarray, dict]]) -> None:
        structs = [models.PointStruct(id=pid, vector=np.asarray(vec).tolist(), payload=payload)
                   for pid, vec, payload in points]
        self._call(self.client.upsert, collection, points=structs, wait=True)

    def search(self, collection: str, vector: np.ndarray, top_k: int,
               must: dict[str, list[str]], min_score: float | None) -> list[tuple[float, dict]]:
        with warnings.catch_warnings():  # the local mode searches exactly: params unused
            warnings.simplefilter("ignore", UserWarning)
            result = self._call(
                self.client.query_points_groups, collection, group_by="product_id",
                query=vector.tolist(), query_filter=_filter(must), limit=top_k, group_size=1,
                score_threshold=min_score, search_params=self.options.search_params(),
                with_payload=_WITHOUT_FEATURES,
            )
        return [(float(g.hits[0].score), {"product_id": str(g.id), **(g.hits[0].payload or {})})
                for g in result.groups]

    def delete(self, collection: str, must: dict[str, list[str]]) -> None:
        selector = models.FilterSelector(filter=_filter(must))
        self._call(self.client.delete, collection, points_selector=selector, wait=True)

    def set_payload(self, collection: str, updates: list[tuple[dict[str, list[str]], dict]]
                    ) -> None:
        """Each (must, payload): set these fields on every point matching."""
        operations = [models.SetPayloadOperation(set_payload=models.SetPayload(
            payload=payload, filter=_filter(must))) for must, payload in updates]
        if operations:
            self._call(self.client.batch_update_points, collection, operations, wait=True)

    def count(self, collection: str, must: dict[str, list[str]] | None = None) -> int:
        return int(self._call(self.client.count, collection, count_filter=_filter(must),
                              exact=True).count)

    def facet(self, collection: str, key: str, must: dict[str, list[str]] | None = None
              ) -> dict[str, int]:
        """Points per value of `key` among those matching `must`, exactly."""
        points = self.count(collection, must)
        if not points:
            return {}
        hits = self._call(self.client.facet, collection, key, facet_filter=_filter(must),
                          limit=points, exact=True).hits
        return {str(hit.value): int(hit.count) for hit in hits if hit.count > 0}

    def features(self, collection: str, point_ids: list[str]) -> dict[str, str]:
        records = self._call(self.client.retrieve, collection, ids=point_ids,
                             with_payload=["features"], with_vectors=False)
        return {str(r.id): (r.payload or {}).get("features", "") for r in records}

    def scroll(self, collection: str, offset: Any, limit: int,
               must: dict[str, list[str]] | None = None) -> tuple[list[dict], Any]:
        points, offset = self._call(self.client.scroll, collection, limit=limit, offset=offset,
                                    scroll_filter=_filter(must), with_payload=_WITHOUT_FEATURES,
                                    with_vectors=False)
        return [p.payload or {} for p in points], offset

    def optimize(self, collection: str) -> bool:
        return False  # a server optimizes in the background

    def index_in_background(self, collection: str, every_s: float, report: Any) -> None:
        pass  # idem

    def close(self) -> None:
        self.client.close()

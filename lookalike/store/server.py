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

from lookalike.store.edge import FUSION_DEPTH, MMR_CANDIDATES, OVERFETCH, RRF_K, TEXT_FIELD

# Local features (tens of KB a point) are read only for the shortlist that stage 2 verifies.
_WITHOUT_FEATURES = models.PayloadSelectorExclude(exclude=["features"])


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached; worth retrying."""


def _filter(must: dict[str, list[str]] | None,
            exclude_products: list[str] | None = None) -> models.Filter | None:
    """The default product set ("") is stored as no value (store/catalogue.py)."""
    if exclude_products:
        return models.Filter(must=(_filter(must) or models.Filter()).must, must_not=[
            models.FieldCondition(key="product_id", match=models.MatchAny(any=exclude_products))])
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
    # The text index (TEXT_FIELD): English Snowball stems and folded accents, as the embedded
    # engine's. qdrant-client's local mode ranks only plain lowercased words (no stemmer, no
    # folding): local_client turns this off.
    text_stemming: bool = True

    def text_index(self) -> models.TextIndexParams:
        scoring = models.TextScoringParams(type=models.TextScoringType.BM25)
        if not self.text_stemming:
            return models.TextIndexParams(type=models.TextIndexType.TEXT, scoring=scoring)
        return models.TextIndexParams(
            type=models.TextIndexType.TEXT, lowercase=True, ascii_folding=True,
            stemmer=models.SnowballParams(type=models.Snowball.SNOWBALL,
                                          language=models.SnowballLanguage.ENGLISH),
            scoring=scoring)

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
                schema = (self.options.text_index() if name == TEXT_FIELD
                          else models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD,
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

    def _groups(self, collection: str, top_k: int, must: dict[str, list[str]],
                exclude: list[str] | None = None, **query: Any) -> list[tuple[float, dict]]:
        """The best point of each of the top_k products for this query (the server groups)."""
        with warnings.catch_warnings():  # the local mode searches exactly: params unused
            warnings.simplefilter("ignore", UserWarning)
            result = self._call(
                self.client.query_points_groups, collection, group_by="product_id",
                query_filter=_filter(must, exclude), limit=top_k, group_size=1,
                with_payload=_WITHOUT_FEATURES, **query)
        return [(float(g.hits[0].score), {"product_id": str(g.id), **(g.hits[0].payload or {})})
                for g in result.groups]

    @staticmethod
    def _text_query(words: str) -> models.TextQuery:
        return models.TextQuery(text=models.TextQueryInput(
            query=words, scoring=models.Bm25Scoring(bm25=models.Bm25Params())))

    def search_text(self, collection: str, words: str, top_k: int,
                    must: dict[str, list[str]]) -> list[tuple[float, dict]]:
        """The top_k products by the BM25 score of their text for these words."""
        return self._groups(collection, top_k, must, query=self._text_query(words),
                            using=TEXT_FIELD)

    def search_hybrid(self, collection: str, vectors: np.ndarray, words: str, top_k: int,
                      must: dict[str, list[str]], min_score: float | None
                      ) -> list[tuple[float, dict]]:
        """Reciprocal rank fusion of the BM25 and cosine rankings, as EdgeBackend's."""
        depth = max(FUSION_DEPTH, top_k * OVERFETCH)
        where = _filter(must)
        prefetch = [models.Prefetch(query=self._text_query(words), using=TEXT_FIELD,
                                    filter=where, limit=depth)] + [
            models.Prefetch(query=np.asarray(v, np.float32).tolist(), filter=where, limit=depth,
                            score_threshold=min_score, params=self.options.search_params())
            for v in vectors]
        weights = [1.0] + [1.0 / len(vectors)] * len(vectors)
        return self._groups(collection, top_k, must, prefetch=prefetch,
                            query=models.RrfQuery(rrf=models.Rrf(k=RRF_K, weights=weights)))

    def recommend(self, collection: str, positives: np.ndarray, negatives: np.ndarray,
                  top_k: int, must: dict[str, list[str]], exclude: list[str]
                  ) -> list[tuple[float, dict]]:
        """The top_k products (not `exclude`) by the server's best-score recommendation."""
        query = models.RecommendQuery(recommend=models.RecommendInput(
            positive=[np.asarray(v, np.float32).tolist() for v in positives],
            negative=[np.asarray(v, np.float32).tolist() for v in negatives],
            strategy=models.RecommendStrategy.BEST_SCORE))
        return self._groups(collection, top_k, must, exclude, query=query,
                            search_params=self.options.search_params())

    def search_diverse(self, collection: str, vector: np.ndarray, top_k: int,
                       must: dict[str, list[str]], exclude: list[str], diversity: float
                       ) -> list[tuple[float, dict]]:
        """The top_k products (not `exclude`) by the server's MMR around `vector`, in MMR
        order, grouped here as EdgeBackend does (MMR is not asked of the server's grouping)."""
        best: dict[str, tuple[float, dict]] = {}
        while len(best) < top_k:
            limit = (top_k - len(best)) * OVERFETCH
            query = models.NearestQuery(nearest=np.asarray(vector, np.float32).tolist(),
                                        mmr=models.Mmr(diversity=diversity, candidates_limit=max(
                                            MMR_CANDIDATES, top_k * OVERFETCH)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                points = self._call(self.client.query_points, collection, query=query,
                                    query_filter=_filter(must, list(best) + list(exclude)),
                                    limit=limit, with_payload=_WITHOUT_FEATURES,
                                    search_params=self.options.search_params()).points
            for point in points:
                best.setdefault(str((point.payload or {}).get("product_id", point.id)),
                                (float(point.score), point.payload or {}))
            if len(points) < limit:
                break
        return list(best.values())[:top_k]

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

    def scroll_vectors(self, collection: str, offset: Any, limit: int,
                       must: dict[str, list[str]] | None = None
                       ) -> tuple[list[tuple[dict, np.ndarray]], Any]:
        points, offset = self._call(self.client.scroll, collection, limit=limit, offset=offset,
                                    scroll_filter=_filter(must), with_payload=_WITHOUT_FEATURES,
                                    with_vectors=True)
        return [(p.payload or {}, np.asarray(p.vector, np.float32)) for p in points], offset

    def nearest(self, collection: str, vectors: np.ndarray, limit: int,
                must: dict[str, list[str]] | None, min_score: float) -> list[list[tuple[float, dict]]]:
        """For each vector, the points (not products) scoring at least min_score, best first."""
        requests = [models.QueryRequest(query=np.asarray(v).tolist(), filter=_filter(must),
                                        limit=limit, score_threshold=min_score,
                                        params=self.options.search_params(),
                                        with_payload=_WITHOUT_FEATURES) for v in vectors]
        with warnings.catch_warnings():  # the local mode searches exactly: params unused
            warnings.simplefilter("ignore", UserWarning)
            results = self._call(self.client.query_batch_points, collection, requests)
        return [[(float(h.score), h.payload or {}) for h in r.points] for r in results]

    def features(self, collection: str, point_ids: list[str]) -> dict[str, str]:
        records = self._call(self.client.retrieve, collection, ids=point_ids,
                             with_payload=["features"], with_vectors=False)
        return {str(r.id): (r.payload or {}).get("features", "") for r in records}

    def vectors(self, collection: str, point_ids: list[str]) -> dict[str, np.ndarray]:
        records = self._call(self.client.retrieve, collection, ids=point_ids,
                             with_payload=False, with_vectors=True)
        return {str(r.id): np.asarray(r.vector, np.float32) for r in records}

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

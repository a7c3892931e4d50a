"""The embedded vector store: Qdrant's Rust engine in-process (qdrant-edge), a shard per collection.

Layout under `<data_dir>/edge/`:
    lock                    held (flock) by the one process that has the store open
    aliases.json            {"<catalogue>": "<collection>"}, replaced atomically (os.replace)
    <collection>/           the EdgeShard (segments + WAL); the engine locks it to one process
    <collection>.json       {"model": "<model id>", "dim": N}

The engine has no aliases and no group-by query, so both live here: grouping by product
over-fetches and, when one product's images crowd the candidates, asks again without the
products already seen, which keeps the grouping exact (see `search`).

Threading: the engine's calls hold the GIL, so they run one at a time whatever we do;
one lock serialises them, the shard table and the alias file, so that a shard can be
swapped for its indexed copy between two calls (see `optimize`).

The HNSW index is built aside, while this process keeps serving: see `indexing`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from lookalike.store.indexing import IndexAside
from lookalike.store.lock import FolderLock

log = logging.getLogger(__name__)

# How many points a product search fetches per wanted product. Products have a few images
# (and a model may store several views of each), so 4x nearly always yields top_k distinct
# products in one query; when it does not, the next query excludes the products already seen.
OVERFETCH = 4
# Local features (tens of KB a point) are read only for the shortlist that stage 2 verifies.
_WITHOUT_FEATURES = qe.PayloadSelector.Exclude(["features"])
# The product's words (catalogue.product_text), ranked by the engine's BM25: lowercased,
# accents folded, English Snowball stems ("tomatoes" finds "tomato"; docs/products.md).
TEXT_FIELD = "text"
TEXT_INDEX = qe.TextIndexParams(
    lowercase=True, ascii_folding=True, stemmer=qe.SnowballParams(qe.SnowballLanguage.English),
    scoring=qe.TextScoringParams(qe.TextScoringType.Bm25))
# Reciprocal rank fusion: a point scores sum(weight / (RRF_K + rank)) over the rankings, rank
# counted from 0 (the first: 1/60).
# 60 is the constant of the original RRF paper (Cormack et al. 2009); Qdrant's default is 2.
RRF_K = 60
# A fused search ranks the points among the first FUSION_DEPTH (or top_k x OVERFETCH) of each
# ranking (text, each query view); a product outside all of them is not found by it.
FUSION_DEPTH = 100
# MMR (diversity) picks among this many candidates (at least the points asked for).
MMR_CANDIDATES = 100
DATATYPES = {
    "float32": None,
    "float16": qe.VectorStorageDatatype.Float16,
    "turbo8": qe.VectorStorageDatatype.Turbo8,
    "turbo4": qe.VectorStorageDatatype.Turbo4,
}
BYTES_PER_DIM = {"float32": 4, "float16": 2, "turbo8": 1, "turbo4": 0.5}  # what the engine's
# indexing threshold counts (measured: 17k turbo8 1280-d vectors pass 20,000 KB, 4.5k do not)

@dataclass(frozen=True)
class EdgeOptions:
    """Storage and index choices for new shards (existing shards keep theirs)."""

    datatype: str = "turbo8"       # turbo8 | turbo4 | float16 | float32 (storage of the vectors)
    int8: bool = False             # int8 scalar quantization in RAM, originals rescore
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 0               # search-time ef; 0: engine default
    # Segments bigger than this (KB of vectors) get an HNSW index when optimize() runs;
    # smaller ones are searched exactly (also the exact/HNSW switch per query).
    indexing_threshold_kb: int = 20_000
    search_threads: int = 0        # 0: one per CPU
    # Without a write-ahead log an update is durable once flush() returns, so every update is
    # flushed before it returns (tests/test_store.py kills a writer to check). A WAL would keep
    # about 64 MB of segments per shard: 650 B per image at 100k.
    wal: bool = False

    def index_threshold(self, dim: int) -> int:
        """Unindexed vectors of `dim` that make the engine build an index."""
        return int(self.indexing_threshold_kb * 1024 / (dim * BYTES_PER_DIM[self.datatype]))

    def config(self, dim: int) -> qe.EdgeConfig:
        if self.datatype not in DATATYPES:
            raise ValueError(f"unknown vector datatype {self.datatype!r}: {sorted(DATATYPES)}")
        quant = (qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99,
                                             memory=qe.Memory.Pinned) if self.int8 else None)
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine,
                                        datatype=DATATYPES[self.datatype]),
            quantization_config=quant,
            hnsw_config=qe.HnswIndexConfig(m=self.hnsw_m, ef_construct=self.hnsw_ef_construct,
                                           full_scan_threshold=self.indexing_threshold_kb),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb),
            max_search_threads=self.search_threads or None,
            wal_enabled=self.wal,
        )


def _filter(must: dict[str, list[str]], exclude_products: list[str] | None = None) -> qe.Filter:
    """`must`: field -> values; one value must match, for each field (labels: each label).
    The default product set ("") is stored as no value (store/catalogue.py)."""
    conditions: list[Any] = []
    for key, values in must.items():
        if key == "product_set":
            conditions.append(qe.FieldCondition(key, match=qe.MatchValue(values[0])) if values[0]
                              else qe.IsEmptyCondition(key))
        elif key == "labels":
            conditions += [qe.FieldCondition(key, match=qe.MatchValue(v)) for v in values]
        elif values:
            conditions.append(qe.FieldCondition(key, match=qe.MatchAny(list(values))))
    must_not = ([qe.FieldCondition("product_id", match=qe.MatchAny(exclude_products))]
                if exclude_products else None)
    return qe.Filter(must=conditions or None, must_not=must_not)


class EdgeBackend(IndexAside):
    """A folder of edge shards, one per collection, plus the catalogue aliases."""

    def __init__(self, root: Path, options: EdgeOptions = EdgeOptions()) -> None:
        self.root, self.options = Path(root), options
        self.root.mkdir(parents=True, exist_ok=True)
        self._owner = FolderLock(self.root)
        self._owner.acquire()  # raises StoreLocked, naming the process that has it
        self._shards: dict[str, qe.EdgeShard] = {}
        self._models: dict[str, str] = {}
        self._lock = threading.RLock()
        self._replay: dict[str, list[qe.UpdateOperation]] = {}  # collection -> while indexing
        self._builds: dict[str, subprocess.Popen] = {}
        self._not_indexed: dict[str, int] = {}  # points left unindexed by the last build
        self._closed = threading.Event()

    # -- collections and aliases ---------------------------------------------------------
    def _meta_path(self, collection: str) -> Path:
        return self.root / f"{collection}.json"

    def _write_json(self, path: Path, data: dict) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)  # atomic: readers see the old or the new file, never half

    def collection_exists(self, collection: str) -> bool:
        return self._meta_path(collection).exists()

    def create_collection(self, collection: str, dim: int, model_id: str,
                          indexed_fields: tuple[str, ...]) -> None:
        with self._lock:
            if self.collection_exists(collection):  # made by an older version: add new indexes
                with self.shard(collection) as shard:
                    self._index(shard, indexed_fields)
                return
            shard = qe.EdgeShard.create(str(self.root / collection), self.options.config(dim))
            self._index(shard, indexed_fields)
            self._shards[collection] = shard
            # Written last: a crash before it leaves a shard folder that create() redoes.
            self._write_json(self._meta_path(collection), {"model": model_id, "dim": dim})

    @staticmethod
    def _index(shard: qe.EdgeShard, fields: tuple[str, ...]) -> None:
        missing = [name for name in fields if name not in shard.info().payload_schema]
        for name in missing:
            # Product sets are tenants: the engine keeps each set's points together.
            shard.update(qe.UpdateOperation.create_field_index(
                name, TEXT_INDEX if name == TEXT_FIELD
                else qe.KeywordIndexParams(is_tenant=True) if name == "product_set"
                else qe.PayloadSchemaType.Keyword))
        if missing:
            shard.flush()

    def collection_model(self, collection: str) -> str:
        if collection not in self._models:  # written once, at creation
            try:
                meta = json.loads(self._meta_path(collection).read_text())
            except FileNotFoundError:
                return ""
            self._models[collection] = str(meta.get("model", ""))
        return self._models[collection]

    def _aliases(self) -> dict[str, str]:
        try:
            return json.loads((self.root / "aliases.json").read_text())
        except FileNotFoundError:
            return {}

    def alias(self, catalogue: str) -> str | None:
        return self._aliases().get(catalogue)

    def set_alias(self, catalogue: str, collection: str) -> None:
        with self._lock:
            self._write_json(self.root / "aliases.json", {**self._aliases(), catalogue: collection})

    @contextmanager
    def shard(self, collection: str) -> Iterator[qe.EdgeShard]:
        """The open shard, held: it cannot be swapped for its indexed copy meanwhile."""
        with self._lock:
            shard = self._shards.get(collection)
            if shard is None:
                if not self.collection_exists(collection):
                    raise LookupError(f"no collection {collection!r}")
                self._finish_swap(collection)
                shard = self._shards[collection] = qe.EdgeShard.load(str(self.root / collection))
            yield shard

    # -- points -------------------------------------------------------------------------
    def _update(self, collection: str, operation: qe.UpdateOperation) -> None:
        """Apply and persist: the job report counts an image as stored after this returns."""
        with self.shard(collection) as shard:
            shard.update(operation)
            shard.flush()
            if collection in self._replay:
                self._replay[collection].append(operation)

    def upsert(self, collection: str, points: list[tuple[str, np.ndarray, dict]]) -> None:
        self._update(collection, qe.UpdateOperation.upsert_points(
            [qe.Point(pid, np.asarray(vec, np.float32).tolist(), payload)
             for pid, vec, payload in points]))

    def search(self, collection: str, vector: np.ndarray, top_k: int,
               must: dict[str, list[str]], min_score: float | None) -> list[tuple[float, dict]]:
        """The best image of each of the top_k products, best first."""
        return self._grouped(collection, qe.Query.Nearest(vector.astype(np.float32).tolist()),
                             top_k, must, min_score)

    def _grouped(self, collection: str, query: Any, top_k: int, must: dict[str, list[str]],
                 min_score: float | None = None, exclude: list[str] | None = None,
                 by_score: bool = True) -> list[tuple[float, dict]]:
        """The best point of each of the top_k products for a query that scores each point on
        its own (nearest, BM25, recommend), best first.

        Exact grouping: the products seen in the top-L points are exactly the best products
        (any product missing from them scores below the L-th point), so when L points give
        fewer than top_k products, asking again without those products continues the ranking.
        (BM25 too: a product's points carry the same text, so they score alike, and a filter
        does not change the engine's term statistics.) MMR (by_score=False: the engine's
        order is kept) scores a point against those picked before it: asking again is then
        a continuation from fresh candidates, not the exact ranking.
        """
        params = qe.SearchParams(hnsw_ef=self.options.hnsw_ef or None)
        best: dict[str, tuple[float, dict]] = {}
        while len(best) < top_k:
            want = top_k - len(best)
            limit = want * OVERFETCH
            with self.shard(collection) as shard:
                hits = shard.query(qe.QueryRequest(
                    limit=limit, query=query, with_payload=_WITHOUT_FEATURES,
                    params=params, filter=_filter(must, list(best) + list(exclude or ())),
                    score_threshold=min_score))
            for hit in hits:
                product = str((hit.payload or {}).get("product_id", hit.id))
                if product not in best:
                    best[product] = (float(hit.score), hit.payload or {})
            if len(hits) < limit:
                break  # nothing more to find
        found = list(best.values())
        return (sorted(found, key=lambda sp: -sp[0]) if by_score else found)[:top_k]

    def search_text(self, collection: str, words: str, top_k: int,
                    must: dict[str, list[str]]) -> list[tuple[float, dict]]:
        """The top_k products by the BM25 score of their text (TEXT_FIELD) for these words."""
        return self._grouped(collection, qe.TextQuery(TEXT_FIELD, words, scoring=qe.Bm25Params()),
                             top_k, must)

    def search_hybrid(self, collection: str, vectors: np.ndarray, words: str, top_k: int,
                      must: dict[str, list[str]], min_score: float | None
                      ) -> list[tuple[float, dict]]:
        """The top_k products by the engine's reciprocal rank fusion of the BM25 ranking of
        `words` and the cosine ranking of each query view (the views share the image's
        weight, so the photo and the words weigh the same); min_score applies to the cosine.

        One query: the fused ranking covers the first `depth` points of each ranking, and the
        query returns all of them, so grouping by product (each by its best fused point) is
        exact for that ranking. It fuses point ranks: a product with many images takes
        several consecutive text ranks (its images have the same text), pushing the next
        products' text ranks down by that many.
        """
        depth = max(FUSION_DEPTH, top_k * OVERFETCH)
        where = _filter(must)
        params = qe.SearchParams(hnsw_ef=self.options.hnsw_ef or None)
        views = [np.asarray(v, np.float32).tolist() for v in vectors]
        prefetches = [qe.Prefetch(limit=depth, filter=where, query=qe.TextQuery(
            TEXT_FIELD, words, scoring=qe.Bm25Params()))] + [
            qe.Prefetch(limit=depth, filter=where, query=qe.Query.Nearest(view), params=params,
                        score_threshold=min_score) for view in views]
        with self.shard(collection) as shard:
            hits = shard.query(qe.QueryRequest(
                limit=depth * len(prefetches), prefetches=prefetches, filter=where,
                query=qe.Fusion.Rrf(k=RRF_K, weights=[1.0] + [1.0 / len(views)] * len(views)),
                with_payload=_WITHOUT_FEATURES))
        best: dict[str, tuple[float, dict]] = {}
        for hit in hits:  # best first
            best.setdefault(str((hit.payload or {}).get("product_id", hit.id)),
                            (float(hit.score), hit.payload or {}))
        return list(best.values())[:top_k]

    def recommend(self, collection: str, positives: np.ndarray, negatives: np.ndarray,
                  top_k: int, must: dict[str, list[str]], exclude: list[str]
                  ) -> list[tuple[float, dict]]:
        """The top_k products (not `exclude`) by the engine's best-score recommendation: a
        point scores its best cosine to a positive when that beats its best to a negative,
        else minus its best to a negative (so negatives push their look-alikes down)."""
        query = qe.Query.RecommendBestScore(qe.RecommendQuery(
            [np.asarray(v, np.float32).tolist() for v in positives],
            [np.asarray(v, np.float32).tolist() for v in negatives]))
        return self._grouped(collection, query, top_k, must, exclude=exclude)

    def search_diverse(self, collection: str, vector: np.ndarray, top_k: int,
                       must: dict[str, list[str]], exclude: list[str], diversity: float
                       ) -> list[tuple[float, dict]]:
        """The top_k products (not `exclude`) by the engine's MMR around `vector`, in MMR
        order (score: the cosine to `vector`); diversity in (0, 1] is 1 - MMR's lambda."""
        query = qe.Mmr(np.asarray(vector, np.float32).tolist(), 1.0 - diversity,
                       max(MMR_CANDIDATES, top_k * OVERFETCH))  # >= any limit asked
        return self._grouped(collection, query, top_k, must, exclude=exclude, by_score=False)

    def delete(self, collection: str, must: dict[str, list[str]]) -> None:
        self._update(collection, qe.UpdateOperation.delete_points_by_filter(_filter(must)))

    def set_payload(self, collection: str, updates: list[tuple[dict[str, list[str]], dict]]
                    ) -> None:
        """Each (must, payload): set these fields on every point matching; one flush."""
        if not updates:
            return
        with self.shard(collection) as shard:
            for must, payload in updates:
                operation = qe.UpdateOperation.set_payload_by_filter(_filter(must), payload)
                shard.update(operation)
                if collection in self._replay:
                    self._replay[collection].append(operation)
            shard.flush()

    def count(self, collection: str, must: dict[str, list[str]] | None = None) -> int:
        with self.shard(collection) as shard:
            return int(shard.count(qe.CountRequest(
                exact=True, filter=_filter(must) if must else None)))

    def facet(self, collection: str, key: str, must: dict[str, list[str]] | None = None
              ) -> dict[str, int]:
        """Points per value of `key` among those matching `must`, exactly."""
        condition = _filter(must) if must else None
        with self.shard(collection) as shard:
            points = shard.count(qe.CountRequest(exact=True, filter=condition))
            if not points:
                return {}
            hits = shard.facet(qe.FacetRequest(key, limit=points, exact=True,
                                               filter=condition)).hits
        # A deleted product's value stays in the facet, with count 0, until a rebuild.
        return {str(hit.value): int(hit.count) for hit in hits if hit.count > 0}

    def scroll(self, collection: str, offset: Any, limit: int,
               must: dict[str, list[str]] | None = None) -> tuple[list[dict], Any]:
        with self.shard(collection) as shard:
            records, offset = shard.scroll(qe.ScrollRequest(
                offset=offset, limit=limit, with_payload=_WITHOUT_FEATURES, with_vector=False,
                filter=_filter(must) if must else None))
        return [r.payload or {} for r in records], offset

    def scroll_vectors(self, collection: str, offset: Any, limit: int,
                       must: dict[str, list[str]] | None = None
                       ) -> tuple[list[tuple[dict, np.ndarray]], Any]:
        """Payloads with their stored vectors (as the engine keeps them: turbo8 is lossy)."""
        with self.shard(collection) as shard:
            records, offset = shard.scroll(qe.ScrollRequest(
                offset=offset, limit=limit, with_payload=_WITHOUT_FEATURES, with_vector=True,
                filter=_filter(must) if must else None))
        return [(r.payload or {}, np.asarray(r.vector, np.float32)) for r in records], offset

    def nearest(self, collection: str, vectors: np.ndarray, limit: int,
                must: dict[str, list[str]] | None, min_score: float) -> list[list[tuple[float, dict]]]:
        """For each vector, the points (not products) scoring at least min_score, best first:
        one planned batch."""
        condition = _filter(must) if must else None
        params = qe.SearchParams(hnsw_ef=self.options.hnsw_ef or None)
        with self.shard(collection) as shard:
            results = shard.query_batch(qe.QueryBatchRequest([qe.QueryRequest(
                limit=limit, query=qe.Query.Nearest(np.asarray(v, np.float32).tolist()),
                with_payload=_WITHOUT_FEATURES, params=params, filter=condition,
                score_threshold=min_score) for v in vectors]))
        return [[(float(h.score), h.payload or {}) for h in hits] for hits in results]

    def features(self, collection: str, point_ids: list[str]) -> dict[str, str]:
        with self.shard(collection) as shard:
            records = shard.retrieve(point_ids, with_payload=["features"], with_vector=False)
        return {str(r.id): (r.payload or {}).get("features", "") for r in records}

    def vectors(self, collection: str, point_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these points (as the engine keeps them)."""
        with self.shard(collection) as shard:
            records = shard.retrieve(point_ids, with_payload=False, with_vector=True)
        return {str(r.id): np.asarray(r.vector, np.float32) for r in records}

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for child in self._builds.values():
                child.kill()  # its copy is discarded; the next start builds again
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            self._owner.release()

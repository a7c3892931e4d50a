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
# "text": a full-text index with BM25 scoring (edge.TEXT_INDEX, ServerOptions.text_index).
INDEXED_FIELDS = ("product_set", "product_id", "category", "labels", "text")
# What belongs to the product, not to one image: the same on all its images (set_product).
PRODUCT_FIELDS = ("category", "title", "labels", "description")


def product_text(fields: dict) -> str:
    """What text search reads: the product's title, description, category and labels, one a
    line (stored as the payload field "text", derived from the product fields on every
    write of them: upsert, set_product)."""
    return "\n".join(part for part in (fields.get("title", ""), fields.get("description", ""),
                                       fields.get("category", ""), *fields.get("labels", ()))
                     if part)


class ModelMismatch(RuntimeError):
    """The collection was embedded by another model than the one loaded."""


def point_id(product_set: str, product_id: str, image_id: str, view: int = 0) -> str:
    # Unambiguous because ids may not contain control characters (refused at submit); the
    # default set and view 0 add nothing, so ids from before product sets stay the same.
    key = (f"{product_set}\x1e" if product_set else "") + f"{product_id}\x1f{image_id}"
    return str(uuid.uuid5(POINT_NAMESPACE, key + (f"\x1f{view}" if view else "")))


def must(product_set: str, **fields: list[str]) -> dict[str, list[str]]:
    """A filter on one product set ("": the default one) and these fields."""
    return {"product_set": [product_set], **{k: v for k, v in fields.items() if v}}


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
    product_set: str = ""  # "": the default set, stored as no value (older points have none)
    description: str = ""

    @property
    def point_id(self) -> str:
        return point_id(self.product_set, self.product_id, self.image_id, self.view)

    def product_fields(self) -> dict:
        """The product's record, and the text that search_text ranks (product_text)."""
        fields = {"category": self.category, "title": self.title, "labels": list(self.labels),
                  "description": self.description}
        return {**fields, "text": product_text(fields)}


@dataclass(frozen=True)
class Product:
    product_id: str
    product_set: str
    category: str
    title: str
    labels: list[str]
    description: str
    images: list[tuple[str, str]]  # (image_id, source), by image id


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
    description: str = ""


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
        # product set -> (when, points, products, products per category); writes here drop it
        self._stats: dict[str, tuple[float, int, int, dict[str, int]]] = {}
        self._stats_lock = threading.Lock()
        # (product set, field) -> (when, values): what case-insensitive filters resolve to
        self._vocabularies: dict[tuple[str, str], tuple[float, list[str]]] = {}

    @classmethod
    def open(cls, settings: Settings, model_id: str, dim: int,
             client: Backend | None = None) -> CatalogueStore:
        """A fresh install creates this model's collection and makes it live."""
        store = cls(client or open_client(settings), settings.collection, model_id, dim,
                    settings.stats_cache_s)
        if store.live_collection() is None:
            store.create()
            store.promote()
        elif store.client.collection_exists(store.collection):
            store.create()  # indexes added since it was made
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

    def check_live(self) -> None:
        """At a service's start: the catalogue must be live on this model. (A service that is
        already running keeps its collection when reindex moves the catalogue: check_model.)"""
        live = self.live_model()
        if live and live != self.model_id:
            name, ours = live.split("@")[0], self.model_id.split("@")[0]
            if name != ours:
                fix = f"set LOOKALIKE_MODEL={name}"
            else:  # the same model's other vectors: the int8 network's (".int8-" in the version) or not
                fix = f"set LOOKALIKE_RUNTIME={'litert-int8' if '.int8-' in live else 'litert'}"
            raise ModelMismatch(
                f"catalogue {self.catalogue!r} is live on model {live!r}, but this service "
                f"runs {self.model_id!r}: {fix}, or move the catalogue to this model with "
                f"`lookalike reindex --model {ours}`")

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
        """Store the images; each product's fields become those of its last image here, on
        all its images (stored before too), so that two images never disagree on them."""
        self.check_model()
        points = [
            (img.point_id, vec, {
                "product_id": img.product_id,
                "image_id": img.image_id,
                **img.product_fields(),
                "source": img.source,
                "uri": img.uri,
                "view": img.view,
                "model": self.model_id,
                **({"product_set": img.product_set} if img.product_set else {}),
                **({"features": img.features} if img.features else {}),
            })
            for img, vec in zip(images, vectors, strict=True)
        ]
        if points:
            self.client.upsert(self.collection, points)
            products = {(img.product_set, img.product_id): img.product_fields() for img in images}
            self.client.set_payload(self.collection, [
                (must(product_set, product_id=[product_id]), fields)
                for (product_set, product_id), fields in products.items()])
            self._stats.clear()

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        categories: list[str] | None = None,
        labels: list[str] | None = None,
        min_score: float | None = None,
        product_set: str = "",
    ) -> list[Match]:
        """The top_k products of a product set, each by its best image, best first."""
        self.check_model()
        where = must(product_set, category=list(categories or []), labels=list(labels or []))
        hits = self.client.search(self.collection, np.asarray(vector, np.float32), top_k, where,
                                  min_score)
        return self._matches(hits, product_set)

    @staticmethod
    def _matches(hits: list[tuple[float, dict]], product_set: str) -> list[Match]:
        return [
            Match(
                product_id=str(p.get("product_id", "")),
                score=score,
                image_id=p.get("image_id", ""),
                category=p.get("category", ""),
                title=p.get("title", ""),
                labels=list(p.get("labels", [])),
                source=p.get("source", ""),
                point_id=point_id(product_set, str(p.get("product_id", "")),
                                  p.get("image_id", ""), int(p.get("view", 0))),
                description=p.get("description", ""),
            )
            for score, p in hits
        ]

    def search_text(self, words: str, top_k: int, categories: list[str] | None = None,
                    labels: list[str] | None = None, product_set: str = "") -> list[Match]:
        """The top_k products of a product set whose text (product_text) holds any of these
        words, by the engine's BM25 score (not a cosine: unbounded, comparable within one
        query only), best first; one match per product (its images score alike).
        Points stored before text search existed have no text until re-ingested or
        reindexed (docs/products.md)."""
        self.check_model()
        where = must(product_set, category=list(categories or []), labels=list(labels or []))
        return self._matches(self.client.search_text(self.collection, words, top_k, where),
                             product_set)

    def search_hybrid(self, vectors: np.ndarray, words: str, top_k: int,
                      categories: list[str] | None = None, labels: list[str] | None = None,
                      min_score: float | None = None, product_set: str = "") -> list[Match]:
        """A photo (its views, as search_views) and words: the engine's reciprocal rank fusion
        of the cosine ranking of each view and the BM25 ranking of the words, the photo and
        the words weighing the same. Score: the fused one, sum(weight / (60 + rank from 0)), not a
        cosine; min_score applies to the cosine (a point below it gets no image rank). One
        match per product, by its best fused point (see EdgeBackend.search_hybrid)."""
        self.check_model()
        where = must(product_set, category=list(categories or []), labels=list(labels or []))
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        return self._matches(self.client.search_hybrid(self.collection, vectors, words, top_k,
                                                       where, min_score), product_set)

    def product_vectors(self, product_set: str, product_ids: list[str]
                        ) -> dict[str, np.ndarray]:
        """product_id -> (points, dim): the stored vectors (every image and view) of these
        products, as the engine keeps them; products without a point are absent."""
        self.check_model()
        found: dict[str, list[np.ndarray]] = {}
        offset = None
        while True:
            rows, offset = self.client.scroll_vectors(
                self.collection, offset, 1024, must(product_set, product_id=list(product_ids)))
            for payload, vector in rows:
                found.setdefault(str(payload.get("product_id", "")), []).append(vector)
            if offset is None:
                break
        return {pid: np.stack(vs) for pid, vs in found.items()}

    def recommend(self, positive_ids: list[str], negative_ids: list[str] | None = None,
                  top_k: int = 10, categories: list[str] | None = None,
                  labels: list[str] | None = None, product_set: str = "",
                  diversity: float = 0.0) -> list[Match]:
        """Products like the positive products' images and unlike the negative ones', the
        input products excluded, one match per product (its best point).

        diversity 0: the engine's best-score recommendation over the products' stored
        vectors (score: a positive's cosine, or a negative value where a negative is closer).
        diversity in (0, 1]: the engine's MMR (lambda = 1 - diversity) around the average
        target of Qdrant's average_vector strategy, 2 x mean(positives) - mean(negatives)
        (mean(positives) without negatives; each product's points averaged first, so each
        product weighs the same), in MMR order, score the cosine to that target.
        Unknown product ids (positive or negative): LookupError naming them."""
        self.check_model()
        if not positive_ids:
            raise ValueError("recommend needs at least one positive product")
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity is {diversity}; in [0, 1]")
        negative_ids = list(negative_ids or [])
        vectors = self.product_vectors(product_set, list(positive_ids) + negative_ids)
        unknown = {kind: [p for p in ids if p not in vectors]
                   for kind, ids in (("positive", positive_ids), ("negative", negative_ids))}
        if any(unknown.values()):
            where = f"product set {product_set!r}" if product_set else "the default product set"
            raise LookupError(f"no such products in {where}: " + "; ".join(
                f"{kind} {', '.join(ids)}" for kind, ids in unknown.items() if ids))
        where = must(product_set, category=list(categories or []), labels=list(labels or []))
        exclude = sorted(set(positive_ids) | set(negative_ids))
        positives = np.concatenate([vectors[p] for p in positive_ids])
        negatives = (np.concatenate([vectors[p] for p in negative_ids]) if negative_ids
                     else np.zeros((0, self.dim), np.float32))
        if diversity == 0.0:
            hits = self.client.recommend(self.collection, positives, negatives, top_k, where,
                                         exclude)
        else:
            target = np.mean([vectors[p].mean(0) for p in positive_ids], axis=0)
            if negative_ids:
                target = 2 * target - np.mean([vectors[p].mean(0) for p in negative_ids], axis=0)
            hits = self.client.search_diverse(self.collection, target.astype(np.float32), top_k,
                                              where, exclude, diversity)
        return self._matches(hits, product_set)

    def search_views(self, vectors: np.ndarray, top_k: int, categories: list[str] | None = None,
                     labels: list[str] | None = None, min_score: float | None = None,
                     product_set: str = "") -> list[Match]:
        """Several vectors of one query (the photo and its crops): a product scores the best
        of its images over all of them (MaxSim). Exact: the top_k by that maximum are among
        the top_k of the vector that gives each its maximum."""
        best: dict[str, Match] = {}
        for vector in vectors:
            for match in self.search(vector, top_k, categories, labels, min_score, product_set):
                if match.product_id not in best or match.score > best[match.product_id].score:
                    best[match.product_id] = match
        return sorted(best.values(), key=lambda m: -m.score)[:top_k]

    def local_features(self, matches: list[Match]) -> list[str]:
        """The packed local features of each match's image ("" where none were stored)."""
        self.check_model()
        found = self.client.features(self.collection, [m.point_id for m in matches])
        return [found.get(m.point_id, "") for m in matches]

    def vectors(self, matches: list[Match]) -> list[np.ndarray | None]:
        """The stored vector of each match's point (None where it is gone)."""
        self.check_model()
        found = self.client.vectors(self.collection, [m.point_id for m in matches])
        return [found.get(m.point_id) for m in matches]

    def delete_products(self, product_ids: list[str], product_set: str = "") -> int:
        return self._delete(must(product_set, product_id=list(product_ids)))

    def delete_images(self, product_id: str, image_ids: list[str], product_set: str = "") -> int:
        return self._delete(must(product_set, product_id=[product_id], image_id=list(image_ids)))

    def _delete(self, where: dict[str, list[str]]) -> int:
        """Points removed (every view of every image matching)."""
        self.check_model()
        before = self.client.count(self.collection, where)
        self.client.delete(self.collection, where)
        self._stats.clear()
        return before - self.client.count(self.collection, where)

    def count(self, product_set: str | None = None) -> int:
        """Points, of one product set or (None) of all."""
        self.check_model()
        return self.client.count(self.collection,
                                 None if product_set is None else must(product_set))

    def count_products(self, product_set: str = "") -> int:
        return len(self.product_ids(product_set))

    def stats(self, product_set: str = "") -> tuple[int, int, dict[str, int]]:
        """(points, products, products per category) of a product set, counted at most
        stats_cache_s ago: counting is a pass over the set, too much for every call.
        Writes through this store recount."""
        with self._stats_lock:
            cached = self._stats.get(product_set)
            if cached is None or time.monotonic() - cached[0] > self.stats_cache_s:
                # A product's images share its category: count products per category.
                categories = {c: len(self.product_ids(product_set, [c]))
                              for c in self.vocabulary(product_set, "category")}
                cached = self._stats[product_set] = (
                    time.monotonic(), self.count(product_set), self.count_products(product_set),
                    dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))))
            return cached[1:]

    def scroll(self, collection: str | None = None, batch: int = 256,
               where: dict[str, list[str]] | None = None):
        """Every point's payload in `collection` (default: this model's), in batches."""
        collection = collection or self.collection
        offset = None
        while True:
            payloads, offset = self.client.scroll(collection, offset, batch, where)
            yield from payloads
            if offset is None:
                return

    # -- products ---------------------------------------------------------------------------
    def product_ids(self, product_set: str, categories: list[str] | None = None,
                    labels: list[str] | None = None) -> dict[str, int]:
        """product_id -> points, for the products of a set with these categories / labels,
        counted by the engine (a facet)."""
        self.check_model()
        where = must(product_set, category=list(categories or []), labels=list(labels or []))
        return self.client.facet(self.collection, "product_id", where)

    def products(self, product_set: str, product_ids: list[str]) -> list[Product]:
        """These products (those that have an image), by product id."""
        self.check_model()
        found: dict[str, Product] = {}
        for p in self.scroll(batch=1024, where=must(product_set, product_id=product_ids)):
            product = found.setdefault(str(p["product_id"]), Product(
                str(p["product_id"]), product_set, p.get("category", ""), p.get("title", ""),
                list(p.get("labels", [])), p.get("description", ""), []))
            if not p.get("view"):
                product.images.append((p.get("image_id", ""), p.get("source", "")))
        for product in found.values():
            product.images.sort()
        return [found[pid] for pid in sorted(found)]

    def set_product(self, product_set: str, product_id: str, fields: dict) -> None:
        """Replace these product fields on all the product's images (no re-embedding), and
        the text that search_text ranks, made from the product's whole record."""
        self.check_model()
        current = self.products(product_set, [product_id])
        if current:
            record = {**{name: getattr(current[0], name) for name in PRODUCT_FIELDS}, **fields}
            fields = {**fields, "text": product_text(record)}
        self.client.set_payload(self.collection,
                                [(must(product_set, product_id=[product_id]), fields)])
        self._stats.clear()

    def vocabulary(self, product_set: str, field_name: str) -> list[str]:
        """The distinct values of category or labels in a product set."""
        self.check_model()
        return sorted(self.client.facet(self.collection, field_name, must(product_set)))

    def resolve(self, product_set: str, field_name: str, values: list[str]) -> list[str]:
        """The stored spellings of these values, ignoring case: filters match "Dairy" with
        "dairy". A value stored in no spelling stays as it is (it matches nothing)."""
        if not values:
            return []
        key = (product_set, field_name)
        for attempt in range(2):
            when, known = self._vocabularies.get(key, (0.0, []))
            # Recount when a value is unknown (a worker may just have stored it), once a second.
            if attempt and time.monotonic() - when > min(1.0, self.stats_cache_s):
                known = self.vocabulary(product_set, field_name)
                self._vocabularies[key] = (time.monotonic(), known)
            spelled = {k.casefold(): k for k in known}
            if all(v.casefold() in spelled for v in values):
                break
        return [spelled.get(v.casefold(), v) for v in values]

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

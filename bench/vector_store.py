"""Vector store benchmark: engines and storage choices at catalogue sizes, through CatalogueStore.

    .venv/bin/python bench/vector_store.py --sizes 100000 --out vector_store.json

Synthetic catalogue: unit vectors (--dim: 1280, the default model's; make bench uses its
model's) in clusters (like product embeddings: many near neighbours), one image per product
so that product-grouped search ranks the same points as exact nearest neighbours; queries
are perturbed catalogue vectors. Per engine/config and size:
search p50/p99 (top-10 products) without a filter, with a 10% category filter that ignores the
clusters (every tenth product, the same category for every query) and with the query's own
10% department (a label that follows the clusters, as a shop's departments follow what its
products look like), recall@10 against exact float32 search, store bytes and RSS per image,
reopen seconds. Reopen, RSS and search run in a fresh subprocess (a restarted service), so
the builder's memory does not count.
With --grocery: Recall@1 on GroceryStoreDataset (40 gallery images, 2,591 phone photos) with the
default embedder, per storage datatype.

A harness imports `measure(sizes, ...) -> list[dict]` (and `grocery_recall(...)`).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import rss_bytes  # noqa: E402
from lookalike.config import Settings  # noqa: E402
from lookalike.store import CatalogueImage, CatalogueStore, local_client  # noqa: E402
from lookalike.store.edge import EdgeBackend, EdgeOptions  # noqa: E402

DIM, MODEL, CATEGORIES = 1280, "bench@1", 10
GROCERY = ROOT.parent / "shared" / "data" / "grocerystore_dev"

# name -> (engine, EdgeOptions or None, build the HNSW index?, hnsw_ef values to search with)
CONFIGS: dict[str, tuple[str, EdgeOptions | None, bool, list[int]]] = {
    "qdrant-client-local": ("local", None, False, [0]),
    "edge-float32-exact": ("edge", EdgeOptions(datatype="float32", indexing_threshold_kb=10**9), False, [0]),
    "edge-float16-exact": ("edge", EdgeOptions(datatype="float16", indexing_threshold_kb=10**9), False, [0]),
    "edge-turbo8-exact": ("edge", EdgeOptions(datatype="turbo8", indexing_threshold_kb=10**9), False, [0]),
    "edge-turbo4-exact": ("edge", EdgeOptions(datatype="turbo4", indexing_threshold_kb=10**9), False, [0]),
    "edge-turbo8-hnsw": ("edge", EdgeOptions(datatype="turbo8", indexing_threshold_kb=20_000), True,
                         [64, 128, 256]),
}
DEFAULT_CONFIGS = ["edge-float32-exact", "edge-float16-exact", "edge-turbo8-exact",
                   "edge-turbo8-hnsw", "qdrant-client-local"]


BLOCK = 50_000  # vectors generated at a time: 1M never sits in memory (256 MB per block)


class Dataset:
    """n clustered unit vectors, generated block by block from a seed (any block, any time),
    and `queries` perturbed copies of catalogue vectors. Memory stays at one block whatever n.
    Vector i's category is i % CATEGORIES; its department, its cluster's % CATEGORIES."""

    def __init__(self, n: int, queries: int, seed: int = 0, dim: int = DIM) -> None:
        self.n, self.seed, self.dim = n, seed, dim
        self.centres = np.random.default_rng(seed).standard_normal((max(n // 50, 1), dim),
                                                                   dtype=np.float32)
        rng = np.random.default_rng([seed, 1])
        picks = rng.integers(0, n, queries)
        q = np.empty((queries, dim), np.float32)
        self.query_departments = np.empty(queries, np.int64)
        for start, x, departments in self.blocks():
            inside = (picks >= start) & (picks < start + len(x))
            q[inside] = x[picks[inside] - start]
            self.query_departments[inside] = departments[picks[inside] - start]
        q += 0.5 / np.sqrt(dim) * rng.standard_normal(q.shape, dtype=np.float32)
        self.queries = q / np.linalg.norm(q, axis=1, keepdims=True)

    def blocks(self):
        for start in range(0, self.n, BLOCK):
            rng = np.random.default_rng([self.seed, 2, start])
            clusters = rng.integers(0, len(self.centres), min(BLOCK, self.n - start))
            x = self.centres[clusters] + 0.8 * rng.standard_normal(
                (len(clusters), self.dim), dtype=np.float32)
            yield start, x / np.linalg.norm(x, axis=1, keepdims=True), clusters % CATEGORIES

    def exact_top(self, k: int = 10, category: int | None = None, own_department: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Exact float32 top-k ids per query (optionally within one category, or within the
        query's own department) and their cosines, best first, one pass."""
        best_s = np.full((len(self.queries), k), -np.inf, np.float32)
        best_i = np.zeros((len(self.queries), k), np.int64)
        for start, x, departments in self.blocks():
            s = self.queries @ x.T
            if category is not None:
                s[:, (start + np.arange(len(x))) % CATEGORIES != category] = -np.inf
            if own_department:
                s[self.query_departments[:, None] != departments[None, :]] = -np.inf
            s = np.concatenate([best_s, s], axis=1)
            ids = np.concatenate([best_i, np.broadcast_to(start + np.arange(len(x)),
                                                          (len(s), len(x)))], axis=1)
            part = np.argpartition(-s, k, axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(s, part, 1), np.take_along_axis(ids, part, 1)
        order = np.argsort(-best_s, axis=1)
        return np.take_along_axis(best_i, order, 1), np.take_along_axis(best_s, order, 1)


def _client(engine: str, path: Path, options: EdgeOptions | None):
    return local_client(path) if engine == "local" else EdgeBackend(path, options or EdgeOptions())


def build(engine: str, path: Path, options: EdgeOptions | None, data: Dataset, index: bool) -> dict:
    settings = Settings(data_dir=path, qdrant_url="")
    store = CatalogueStore.open(settings, MODEL, data.dim, _client(engine, path, options))
    started = time.perf_counter()
    for start, x, departments in data.blocks():
        for s in range(0, len(x), 1000):
            ids = range(start + s, start + min(len(x), s + 1000))
            images = [CatalogueImage(f"p{i}", "front", f"c{i % CATEGORIES}", f"Product {i}",
                                     (f"d{departments[i - start]}",), f"/catalogue/p{i}.jpg")
                      for i in ids]
            store.upsert(images, x[s:s + 1000])
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    if index:
        store.optimize()
    optimize_s = time.perf_counter() - started
    store.close()
    return {"ingest_s": round(ingest_s, 1), "optimize_s": round(optimize_s, 1)}


def probe(engine: str, path: Path, options: EdgeOptions | None, qfile: Path, max_queries: int,
          efs: list[int]) -> list[dict]:
    """In this (fresh) process: reopen, search, RSS. One dict per hnsw_ef."""
    import resource  # noqa: F401  (Linux only, like the service)

    saved = np.load(qfile)
    q, departments = saved["queries"][:max_queries], saved["departments"][:max_queries]
    base = rss_bytes()
    started = time.perf_counter()
    store = CatalogueStore.open(Settings(data_dir=path, qdrant_url=""), MODEL, q.shape[1],
                                _client(engine, path, options))
    n = store.count()
    reopen_s = time.perf_counter() - started
    rows = []
    for ef in efs:
        if isinstance(store.client, EdgeBackend):
            store.client.options = EdgeOptions(**{**asdict(store.client.options), "hnsw_ef": ef})
        store.search(q[0], 10)  # warm
        out: dict = {"hnsw_ef": ef, "reopen_s": round(reopen_s, 2), "points": n}
        for label, cats, own in (("", None, False), ("_filter", ["c3"], False),
                                 ("_department", None, True)):
            times, found = [], []
            for v, department in zip(q, departments):
                t = time.perf_counter()
                matches = store.search(v, 10, categories=cats,
                                       labels=[f"d{department}"] if own else None)
                times.append(time.perf_counter() - t)
                found.append([int(m.product_id[1:]) for m in matches])
            out[f"p50_ms{label}"] = round(float(np.percentile(times, 50)) * 1000, 2)
            out[f"p99_ms{label}"] = round(float(np.percentile(times, 99)) * 1000, 2)
            out[f"found{label}"] = found
        out["rss_bytes"] = rss_bytes() - base
        rows.append(out)
    store.close()
    return rows


def _du(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def measure(sizes: list[int], configs: list[str] | None = None, queries: int = 200,
            local_queries: int = 20, local_max_size: int = 100_000, workdir: str | None = None,
            log=print, dim: int = DIM) -> list[dict]:
    """One row per (config, size, hnsw_ef)."""
    rows: list[dict] = []
    for n in sizes:
        data = Dataset(n, queries, dim=dim)
        q = data.queries
        (truth, cos), (truth_f, cos_f), (truth_d, cos_d) = (
            data.exact_top(), data.exact_top(category=3), data.exact_top(own_department=True))
        for name in configs or DEFAULT_CONFIGS:
            engine, options, index, efs = CONFIGS[name]
            if engine == "local" and n > local_max_size:
                continue
            with tempfile.TemporaryDirectory(dir=workdir, prefix="vs-") as tmp:
                path = Path(tmp) / "store"
                qfile = Path(tmp) / "q.npz"
                np.savez(qfile, queries=q, departments=data.query_departments)
                log(f"[{name} n={n}] building...")
                built = build(engine, path, options, data, index)
                nq = local_queries if engine == "local" else queries
                cmd = [sys.executable, __file__, "--probe", json.dumps(
                    {"engine": engine, "path": str(path), "name": name, "qfile": str(qfile),
                     "max_queries": nq, "efs": efs})]
                results = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                                    text=True).stdout.splitlines()[-1])
                store_bytes = _du(path)
            for r in results:
                found, found_f, found_d = r.pop("found"), r.pop("found_filter"), r.pop("found_department")
                row = {"config": name, "size": n, "dim": dim, "queries": nq, **built,
                       "recall@10": recall(found, truth[:nq]),
                       "recall@10_filter": recall(found_f, truth_f[:nq]),
                       "recall@10_near": recall(found, truth[:nq], cos[:nq]),
                       "recall@10_near_filter": recall(found_f, truth_f[:nq], cos_f[:nq]),
                       "recall@10_department": recall(found_d, truth_d[:nq]),
                       "recall@10_near_department": recall(found_d, truth_d[:nq], cos_d[:nq]),
                       **r, "store_bytes_per_image": round(store_bytes / n),
                       "rss_bytes_per_image": round(r.pop("rss_bytes") / n)}
                log(format_row(row))
                rows.append(row)
    return rows


# A neighbour that resembles the query: same-cluster vectors sit near cosine 0.6, unrelated ones
# at 0 +- 0.03 (1280-d). A 10 % category filter leaves a query about 5 of its cluster; the rest
# of its exact top 10 are unrelated points tied near 0.1, whose order no index is built to keep.
NEAR = 0.3


def recall(found: list[list[int]], truth: np.ndarray, cosines: np.ndarray | None = None) -> float:
    """Share of the exact top-10 found (only those at cosine >= NEAR when `cosines` are given),
    over all queries."""
    hits = wanted = 0
    for i, (f, t) in enumerate(zip(found, truth)):
        want = set(t.tolist() if cosines is None else t[cosines[i] >= NEAR].tolist())
        hits += len(want & set(f))
        wanted += len(want)
    return round(hits / max(1, wanted), 4)


def grocery_recall(datatypes: tuple[str, ...] = ("float32", "float16", "turbo8"),
                   data: Path = GROCERY, log=print, model: str | None = None) -> list[dict]:
    """Recall@1 on GroceryStoreDataset through the store, per storage datatype."""
    from lookalike.imaging import decode
    from lookalike.model import load_model

    embedder = load_model(model) if model else load_model()
    gallery = list(csv.DictReader((data / "gallery.csv").open()))
    truth = list(csv.DictReader((data / "ground_truth.csv").open()))
    views = embedder.embed_catalogue([decode((data / "gallery" / g["gallery_file"]).read_bytes())
                                      for g in gallery])
    queries = np.concatenate([
        embedder.embed_query([decode((data / "queries" / t["query_file"]).read_bytes())
                              for t in truth[i:i + 64]]) for i in range(0, len(truth), 64)])
    rows = []
    for datatype in datatypes:
        with tempfile.TemporaryDirectory(prefix="vs-grocery-") as tmp:
            store = CatalogueStore.open(Settings(data_dir=tmp), embedder.model_id, embedder.dim,
                                        EdgeBackend(Path(tmp), EdgeOptions(datatype=datatype)))
            images = [CatalogueImage(g["product_id"], g["gallery_file"], g["category"], view=v)
                      for g, vs in zip(gallery, views) for v in range(len(vs))]
            store.upsert(images, np.concatenate(views))
            hits = [store.search(v, 1)[0].product_id == t["product_id"]
                    for v, t in zip(queries, truth)]
            store.close()
        rows.append({"config": f"grocery-edge-{datatype}", "recall@1": round(float(np.mean(hits)), 4),
                     "queries": len(truth), "model": embedder.model_id})
        log(rows[-1])
    return rows


COLUMNS = [("config", 22), ("size", 8), ("hnsw_ef", 7), ("p50_ms", 7), ("p99_ms", 7),
           ("p50_ms_filter", 9), ("p99_ms_filter", 9), ("recall@10", 9), ("recall@10_filter", 9),
           ("recall@10_near", 9), ("recall@10_near_filter", 9), ("p50_ms_department", 9),
           ("recall@10_department", 9),
           ("store_bytes_per_image", 9), ("rss_bytes_per_image", 9), ("reopen_s", 8),
           ("ingest_s", 8), ("optimize_s", 8)]
HEADERS = ["engine/config", "size", "ef", "p50 ms", "p99 ms", "p50 filt", "p99 filt", "R@10",
           "R@10 flt", "R@10 near", "near flt", "p50 dept", "R@10 dept", "store B", "RSS B",
           "reopen s", "ingest s", "index s"]


def format_row(row: dict) -> str:
    return " ".join(str(row.get(k, "")).ljust(w) for k, w in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=DIM, help="vector dimension (default %(default)s)")
    parser.add_argument("--local-queries", type=int, default=20)
    parser.add_argument("--grocery", action="store_true", help="also Recall@1 on GroceryStoreDataset")
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        p = json.loads(args.probe)
        print(json.dumps(probe(p["engine"], Path(p["path"]), CONFIGS[p["name"]][1], Path(p["qfile"]),
                               p["max_queries"], p["efs"])))
        return
    print(" ".join(h.ljust(w) for h, (_, w) in zip(HEADERS, COLUMNS)))
    rows = measure([int(s) for s in args.sizes.split(",")], args.configs.split(","),
                   args.queries, args.local_queries, dim=args.dim)
    if args.grocery:
        rows += grocery_recall()
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    print("\n" + " ".join(h.ljust(w) for h, (_, w) in zip(HEADERS, COLUMNS)))
    for row in rows:
        print(format_row(row) if "size" in row else row)


if __name__ == "__main__":
    main()

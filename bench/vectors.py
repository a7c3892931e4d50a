"""4. Vector search alone (bench/vector_store.py): p50/p99 with and without a filter, recall@10
against exact float32 search, bytes and memory per image and reopen time, per storage config,
plus GroceryStoreDataset Recall@1 per vector datatype."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import vector_store as vs
from bench.common import log
from bench.report import Row

if TYPE_CHECKING:
    from bench.run import Bench

VECTOR_BYTES_F32 = 4  # float32
TARGET_BYTES = 1536  # the target: at most 1.5 KB of store (and of memory) per catalogue image


def plan(b: Bench) -> list[tuple[list[int], list[str], int]]:
    """(sizes, configs, queries) for bench.vector_store.measure.

    1M is built and searched exactly only: the synthetic vectors are generated block by
    block, so memory stays at one 50k block, but an HNSW build of 1M takes far longer
    than the rest of the run together (100k: about a minute on 2 cores).
    """
    a = b.args
    if a.store_sizes or a.store_configs:
        return [([int(x) for x in (a.store_sizes or "100000").split(",")],
                 a.store_configs.split(",") if a.store_configs else list(vs.DEFAULT_CONFIGS), 100)]
    if a.quick:
        return [([5_000], ["edge-turbo8-exact", "edge-turbo4-exact", "edge-turbo8-hnsw"], 40)]
    return [([100_000], ["edge-float32-exact", "edge-turbo8-exact", "edge-turbo4-exact",
                         "edge-turbo8-hnsw"], 100),
            ([1_000_000], ["edge-turbo8-exact", "edge-turbo4-exact"], 100)]


def run(b: Bench) -> None:
    workdir = b.store_root / "vector-store"
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for sizes, configs, queries in plan(b):
        log(f"  bench/vector_store.py: sizes {sizes}, configs {configs}, {queries} queries")
        rows += vs.measure(sizes, configs, queries=queries, workdir=str(workdir), log=log,
                           dim=b.model.dim)
    b.res.details["vector_store"] = rows
    seen: set = set()
    for r in rows:
        table_rows(b, r, seen)
    if not b.args.quick and b.data.photos:
        log("  GroceryStoreDataset Recall@1 per vector datatype")
        grocery = vs.grocery_recall(("float32", "turbo8", "turbo4"), b.data.root, log=log,
                                    model=b.model_name)
        b.res.details["vector_store_grocery"] = grocery
        f32 = grocery[0]["recall@1"]
        for g in grocery[1:]:
            b.res.add(Row("vector store", f"GroceryStoreDataset Recall@1, {g['config'][13:]}",
                          g["recall@1"], "", g["recall@1"] - f32, "- float32", ">= -0.01",
                          n=g["queries"], note=f"float32 {f32:.4f}; {g['model']}"))


def table_rows(b: Bench, r: dict, reopen_seen: set) -> None:
    """A bench/vector_store.py row (config, size, hnsw_ef, p50_ms, ...) -> table rows."""
    vec_bytes = b.model.dim * VECTOR_BYTES_F32
    ef = r.get("hnsw_ef") or 0
    tag = f"{r['config']} {int(r['size']):,}" + (f" ef={ef}" if ef else "")
    n = r.get("queries")
    for label, suffix in (("no filter", ""), ("10% category filter", "_filter"),
                          ("the query's own 10% department", "_department")):
        p50, p99, rec = r[f"p50_ms{suffix}"], r[f"p99_ms{suffix}"], r[f"recall@10{suffix}"]
        # At 1M an HNSW index is judged (5 ms without a filter, 10 ms with), exact search not.
        target = ("<= 1" if r["size"] <= 100_000 or (ef and suffix) else "<= 0.5" if ef else "")
        b.res.add(Row("vector store", f"{tag}, {label}: p50", p50, "ms", p50 / 10,
                      "/ 10 ms", target, n=n,
                      note=f"{p50 / b.b1_ms:.2f}x the bare b1 forward; p99 {p99} ms"))
        b.res.add(Row("vector store", f"{tag}, {label}: p99", p99, "ms", p99 / p50, "/ p50",
                      "<= 2", n=n))
        b.res.add(Row("vector store", f"{tag}, {label}: recall@10", rec, "", rec,
                      "/ exact float32 search", ">= 0.99", n=n))
        near = r[f"recall@10_near{suffix}"]
        b.res.add(Row("vector store", f"{tag}, {label}: recall@10 of the near neighbours", near,
                      "", near, "/ exact float32 search", "", n=n,
                      note=f"those of the exact top 10 at cosine >= {vs.NEAR}: the rest are "
                           "unrelated points tied near 0.1"))
    key = (r["config"], r["size"])
    if key in reopen_seen:
        return
    reopen_seen.add(key)
    size = f"{r['config']} {int(r['size']):,}"
    v = float(r["store_bytes_per_image"])
    b.res.add(Row("vector store", f"{size}: store bytes/image", v, "B", v / TARGET_BYTES,
                  "/ 1.5 KB", "<= 1", note=f"du of the store folder / images; a float32 "
                                           f"{b.model.dim}-d vector is {vec_bytes} B"))
    v = float(r["rss_bytes_per_image"])
    b.res.add(Row("vector store", f"{size}: memory/image", v, "B", v / TARGET_BYTES,
                  "/ 1.5 KB", "", note="RSS growth of a fresh process opening the store and "
                                       "searching it / images"))
    v = float(r["reopen_s"])
    b.res.add(Row("vector store", f"{size}: reopen", v, "s", v, "/ 1 s",
                  "<= 1" if r["size"] <= 100_000 else "",
                  note=f"fresh process; build {r['ingest_s']} s, index {r['optimize_s']} s"))

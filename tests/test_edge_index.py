"""The embedded store builds its HNSW index aside: search and writes go on during the build,
nothing written meanwhile is lost, and a swap cut short by a crash is finished at the next open."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import qdrant_edge as qe

from lookalike.client import Client
from lookalike.config import Settings
from lookalike.store import CatalogueImage, CatalogueStore, open_client
from lookalike.store.edge import EdgeBackend
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.tools.local import free_port, start_service, stop
from tests.test_observability import metric

DIM = 64


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def images(prefix: str, n: int) -> list[CatalogueImage]:
    return [CatalogueImage(f"{prefix}{i}", "front", "c", "t") for i in range(n)]


def open_store(tmp_path: Path, **options) -> tuple[CatalogueStore, EdgeBackend]:
    # float32 64-d: 0.25 KB per vector, so a 200 KB threshold is passed at 800 vectors.
    settings = Settings(data_dir=tmp_path, qdrant_url="", vector_datatype="float32",
                        indexing_threshold_kb=200, **options)
    store = CatalogueStore.open(settings, "model-a@1", DIM, open_client(settings))
    return store, store.client


def fill(store: CatalogueStore, prefix: str, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), 1000):
        batch = vectors[start : start + 1000]
        store.upsert(images(prefix, len(vectors))[start : start + len(batch)], batch)


def top(store: CatalogueStore, vector: np.ndarray) -> tuple[str, float]:
    match = store.search(vector, top_k=1)[0]
    return match.product_id, match.score


def test_search_and_writes_go_on_while_the_index_builds(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    store, edge = open_store(tmp_path)
    old = unit(rng, 20_000)
    fill(store, "p", old)
    assert edge.needs_index(store.collection)
    assert edge.unindexed(store.collection) == 20_000

    build = threading.Thread(target=store.optimize)
    build.start()
    new = unit(rng, 200)
    searched = written = 0
    while build.is_alive():
        if store.collection not in edge._replay:  # noqa: SLF001 - before the copy or after the swap
            time.sleep(0.01)
            continue
        assert top(store, old[searched])[0] == f"p{searched}"
        searched += 1
        if written < len(new):
            store.upsert(images("new", len(new))[written : written + 1], new[written : written + 1])
            store.delete_products([f"p{written}"])
            written += 1
    build.join()

    # The main thread ran while the child process built the index: the GIL was free.
    assert searched >= 5 and written >= 5, (searched, written)
    assert edge.unindexed(store.collection) < 1000  # at most the small appendable segment
    assert not edge.needs_index(store.collection)
    # Everything written during the build was replayed onto the indexed copy.
    assert store.count() == 20_000
    for i in range(written):
        assert top(store, new[i]) == ("new" + str(i), pytest.approx(1.0, abs=1e-5))
        assert top(store, old[i])[0] != f"p{i}"
    assert top(store, old[-1]) == (f"p{len(old) - 1}", pytest.approx(1.0, abs=1e-5))
    store.close()
    # Nothing left behind but the store itself, and it reopens indexed.
    root = tmp_path / "edge"
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(store.collection)) == [
        store.collection, f"{store.collection}.json"]
    store, edge = open_store(tmp_path)
    assert edge.unindexed(store.collection) < 1000 and store.count() == 20_000
    store.close()


@pytest.mark.parametrize("copy_complete", [True, False])
def test_an_interrupted_swap_is_finished_or_undone_at_open(tmp_path: Path,
                                                           copy_complete: bool) -> None:
    rng = np.random.default_rng(1)
    store, _ = open_store(tmp_path)
    fill(store, "p", unit(rng, 100))
    store.close()
    # The state between the two renames of a swap: the shard moved to .old, the copy not yet
    # in its place (with one more image, so that the test sees which one was kept).
    root, name = tmp_path / "edge", store.collection
    copy = root / f"{name}.indexing-x"
    shutil.copytree(root / name, copy)
    shard = qe.EdgeShard.load(str(copy))
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(10**9, [1.0] * DIM, {})]))
    shard.close()
    if copy_complete:
        (root / f"{name}.indexed").write_text(json.dumps({"copy": copy.name}))
    os.rename(root / name, root / f"{name}.old")

    store, _ = open_store(tmp_path)
    assert store.count() == (101 if copy_complete else 100)
    store.close()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(name)) == [
        name, f"{name}.json"]


def test_the_service_indexes_by_itself_as_the_catalogue_grows(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store, edge = open_store(tmp_path)
    fill(store, "p", unit(rng, 500))  # below the threshold: searched exactly, no build
    store.index_in_background(0.05)
    time.sleep(0.5)
    assert edge.unindexed(store.collection) == 500
    fill(store, "q", unit(rng, 1500))
    deadline = time.monotonic() + 60
    while edge.unindexed(store.collection) >= 800:  # what the threshold of 200 KB leaves
        assert time.monotonic() < deadline, "no index built"
        time.sleep(0.1)
    assert not edge.needs_index(store.collection) and store.count() == 2000
    store.close()


def test_lookalike_serve_indexes_what_it_ingests(tmp_path: Path, service_env: dict[str, str],
                                                 sample: Path) -> None:
    """The wiring in the service: ingest past the threshold, the index appears in /metrics."""
    port = free_port()
    env = {**service_env, "LOOKALIKE_METRICS_PORT": str(port), "LOOKALIKE_INDEX_CHECK_S": "0.2",
           "LOOKALIKE_VECTOR_DATATYPE": "float32", "LOOKALIKE_INDEXING_THRESHOLD_KB": "20"}
    proc, target = start_service(tmp_path, env=env)
    try:
        with Client(target) as client:
            outcome = bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))
            assert outcome.done == 14  # 14 x 5 KB of float32 vectors > 20 KB
            deadline = time.monotonic() + 60
            while True:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                # A build during the ingest may leave a tail below the threshold (< 4 vectors).
                if (metric(text, "lookalike_index_builds_total", outcome="built") >= 1
                        and metric(text, "lookalike_unindexed_vectors") < 4):
                    break
                assert time.monotonic() < deadline, text[-2000:]
                time.sleep(0.2)
            photo = (sample / "queries" / "coffee-cup-1.jpg").read_bytes()
            assert client.search(photo, top_k=1).matches[0].product_id == "coffee-cup"
    finally:
        stop(proc)

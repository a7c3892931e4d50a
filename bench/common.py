"""Shared by the harness (run.py and its sections), the load test and the vector store benchmark:
the log clock, percentiles, sizes on disk and in memory, the real photos of the
GroceryStoreDataset dev set, the synthetic catalogue written straight into a store folder, and
the Search load loop against a running service.

Importing this module puts the repository first on sys.path (`python bench/X.py` puts bench/
there, not the repository), so that `bench` and `lookalike` import from this checkout.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "grocerystore_dev"  # GroceryStoreDataset dev set

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def dir_bytes(path: Path) -> int:
    """Sum of the file sizes under path."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (this one by default), bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int | str = "self") -> float:
    return rss_bytes(pid) / 2**20


def git_rev() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


# ------------------------------------------------------------------------- real photos
@dataclass
class Data:
    root: Path | None
    gallery: list[tuple[Path, str, str]]   # file, product_id, category
    photos: list[tuple[Path, str, str]]
    reason: str = ""


def load_data(root: Path) -> Data:
    qdir, gdir = root / "queries", root / "gallery"
    if not (qdir.is_dir() and (root / "ground_truth.csv").is_file()):
        return Data(None, [], [], f"no store photos at {qdir} (GroceryStoreDataset dev set)")
    with (root / "ground_truth.csv").open(newline="") as f:
        photos = [(qdir / r["query_file"], r["product_id"], r["product_id"]) for r in csv.DictReader(f)]
    photos = [p for p in photos if p[0].is_file()]
    gallery = []
    if (root / "gallery.csv").is_file():
        with (root / "gallery.csv").open(newline="") as f:
            gallery = [(gdir / r["gallery_file"], r["product_id"], r.get("category", ""))
                       for r in csv.DictReader(f)]
        gallery = [g for g in gallery if g[0].is_file()]
    if not photos:
        return Data(None, gallery, [], f"{qdir} holds no photos")
    # Spread over the products (the files come in bursts of one shelf).
    rng = np.random.default_rng(0)
    photos = [photos[i] for i in rng.permutation(len(photos))]
    return Data(root, gallery, photos)



# -------------------------------------------------------------------- synthetic catalogue
CATEGORIES = ["dairy", "fruit", "vegetables", "bakery", "beverages", "snacks", "frozen",
              "household", "personal-care", "pantry"]  # a category filter keeps 10 %
LABELS = ["organic", "vegan", "gluten-free", "sale", "new", "bestseller", "local", "family-size"]
NOUNS = ["yoghurt", "juice", "crispbread", "oat drink", "apple", "pepper", "soup", "coffee",
         "detergent", "shampoo", "pasta", "tomatoes"]
IMAGES_PER_PRODUCT = 2
BLOCK = 2_000  # synthetic vectors are generated (and regenerated, for exact search) per block


def synthetic_block(start: int, n: int, dim: int, seed: int = 0):
    """Images start..start+n-1: unit vectors and CatalogueImages (2 images per product)."""
    from lookalike.store import CatalogueImage

    rng = np.random.default_rng([seed, start])
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    images = []
    for k in range(start, start + n):
        p = k // IMAGES_PER_PRODUCT
        images.append(CatalogueImage(
            product_id=f"sku-{p:08d}", image_id=f"{p:08d}-{k % IMAGES_PER_PRODUCT}",
            category=CATEGORIES[p % len(CATEGORIES)],
            title=f"{LABELS[p % 8].replace('-', ' ').title()} {NOUNS[p % len(NOUNS)]} {200 + p % 800} g",
            labels=tuple(LABELS[j] for j in range(len(LABELS)) if (p >> j) & 1 and j < 3),
            source=f"https://cdn.shop.example/catalogue/sku-{p:08d}/{k % IMAGES_PER_PRODUCT}.jpg",
        ))
    return v, images


def settings_for(data_dir: Path):
    from lookalike.config import Settings

    return Settings(data_dir=Path(data_dir), qdrant_url="")


def write_catalogue(data_dir: Path, n: int, model_id: str, dim: int,
                    progress: Callable[[str], None] | None = None) -> float:
    """Write n synthetic images straight into the store folder (before a service opens it:
    an embedded store is one process's), under `model_id`; returns seconds."""
    from lookalike.store import CatalogueStore

    t = time.perf_counter()
    store = CatalogueStore.open(settings_for(data_dir), model_id, dim)
    try:
        for start in range(0, n, BLOCK):
            vectors, images = synthetic_block(start, min(BLOCK, n - start), dim)
            store.upsert(images, vectors)
            if progress is not None and (start // BLOCK) % 10 == 9:
                progress(f"    {start + len(images):,}/{n:,} written")
        assert store.count() == n, f"store holds {store.count()} points, expected {n}"
    finally:
        store.close()
    return time.perf_counter() - t


# ------------------------------------------------------------------------------ load loop
def load_search(target: str, photos: list[bytes], in_flight: int, min_n: int, max_n: int,
                budget_s: float, offset: int = 0, between: Callable[[], None] | None = None,
                warm: int = 2, timeout_s: float = 900, channel_per_worker: bool = False,
                verify: str | None = None) -> dict:
    """Search with `in_flight` requests outstanding; latency measured at the client.
    Requests stop once both `min_n` were issued and `budget_s` passed (or at `max_n`).
    `between`: called after each request (by the thread that made it). The workers share one
    channel, or open one each with `channel_per_worker`. `verify`: the Search's stage-2 mode
    (None: the service's default).

    Returns latency_ms and server_ms of the successful requests, errors (messages),
    failed_ms (latency of the failed ones), codes (status name -> count, "OK" included),
    wall_s and qps."""
    import grpc

    from lookalike.client import Client

    lat: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    failed_ms: list[float] = []
    codes: Counter[str] = Counter()
    lock = threading.Lock()
    issued = [0]
    with Client(target, timeout_s=timeout_s) as shared:
        for i in range(warm):  # warm the channel and the service
            shared.search(photos[(offset + i) % len(photos)], top_k=10, verify=verify)
        t0 = time.perf_counter()

        def worker() -> None:
            with ExitStack() as stack:
                client = (stack.enter_context(Client(target, timeout_s=timeout_s))
                          if channel_per_worker else shared)
                while True:
                    with lock:
                        if issued[0] >= max_n or (issued[0] >= min_n
                                                  and time.perf_counter() - t0 >= budget_s):
                            return
                        i = issued[0]
                        issued[0] += 1
                    data = photos[(offset + warm + i) % len(photos)]
                    t = time.perf_counter()
                    try:
                        resp = client.search(data, top_k=10, verify=verify)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        dt = 1000 * (time.perf_counter() - t)
                        code = exc.code().name if isinstance(exc, grpc.RpcError) else type(exc).__name__
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}"[:200])
                            failed_ms.append(dt)
                            codes[code] += 1
                        continue
                    dt = 1000 * (time.perf_counter() - t)
                    with lock:
                        lat.append(dt)
                        server_ms.append(resp.server_ms)
                        codes["OK"] += 1
                    if between is not None:
                        between()

        threads = [threading.Thread(target=worker) for _ in range(in_flight)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
    return {"latency_ms": lat, "server_ms": server_ms, "errors": errors, "wall_s": wall,
            "qps": len(lat) / wall if wall > 0 else 0.0, "failed_ms": failed_ms, "codes": dict(codes)}

#!/usr/bin/env python
"""lookalike performance harness: one run, one table, bench-results.json.

    make bench                                   # full run (about 15 min on 2 cores)
    .venv/bin/python bench/run.py --quick        # smoke run, small sizes (< 3 min)
    .venv/bin/python bench/run.py --help

Every figure is also printed as a ratio against a baseline measured in the same run,
next to the job (these machines are noisy: absolute times are for orientation only):

1. the limit: the default model's tf.function on preprocessed 224x224 input,
   batch 1 and batch 32, ms per image;
2. Search over gRPC end to end (lookalike.client.Client -> a service started with
   lookalike.local.start_service on a fresh data dir), 1 and 8 requests in flight,
   p50/p99, at each catalogue size. The catalogue is synthetic (random unit vectors,
   realistic payloads) written with lookalike.store.CatalogueStore, under the model id
   the service uses, before the service starts (an embedded store is one process's);
   the queries are real store photos. A catalogue past the indexing threshold is searched
   once while the service builds its HNSW index by itself, then measured once it is built.
   Ratios: p50 / bare batch-1 forward, p99 / p50. With one request in flight a bare forward
   pass runs after every request, so the baseline sees the same moments of the machine;
3. ingest of real images (gallery + store photos used as catalogue images) through
   SubmitIngest -> Redis/Celery -> worker -> store (lookalike.bulk.ingest), images/s,
   against bare decode + batch-32 forward of the same bytes;
4. vector search alone (bench/vector_store.py): p50/p99 with and without a filter,
   recall@10 against exact float32 search, bytes and memory per image and reopen time,
   per storage config at 100k and (exact only) 1M, plus GroceryStoreDataset Recall@1
   per vector datatype;
5. for reference, the "seed article's way": Keras model.predict per image, the whole
   catalogue re-embedded for every query.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` puts bench/ first, not the repo
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench import vector_store as vs  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "grocerystore_dev"
VECTOR_BYTES_F32 = 4  # float32
TARGET_BYTES = 1536  # the target: at most 1.5 KB of store (and of memory) per catalogue image

# Sizes and sample counts. Latency rows stop issuing requests once both `min_n` requests
# were issued and `budget_s` passed (or at `max_n`): slow stores get few samples, fast
# ones many, and the run stays bounded either way.
PROFILES: dict[str, dict] = {
    "full": dict(
        sizes=[10_000, 100_000], b1_calls=40, b32_calls=6, adjacent_b1_calls=15,
        serial=dict(min_n=12, max_n=300, budget_s=40), concurrent=dict(min_n=24, max_n=600, budget_s=40),
        in_flight=8, ingest_photos=2600, seed_catalogue=40, seed_queries=20,
        store_queries=dict(min_n=12, max_n=200, budget_s=30),
    ),
    "quick": dict(
        sizes=[1_000, 20_000], b1_calls=10, b32_calls=2, adjacent_b1_calls=8,
        serial=dict(min_n=8, max_n=100, budget_s=6), concurrent=dict(min_n=16, max_n=200, budget_s=6),
        in_flight=8, ingest_photos=40, seed_catalogue=10, seed_queries=3,
        store_queries=dict(min_n=8, max_n=50, budget_s=5),
    ),
}

CATEGORIES = ["dairy", "fruit", "vegetables", "bakery", "beverages", "snacks", "frozen",
              "household", "personal-care", "pantry"]  # a category filter keeps 10 %
LABELS = ["organic", "vegan", "gluten-free", "sale", "new", "bestseller", "local", "family-size"]
NOUNS = ["yoghurt", "juice", "crispbread", "oat drink", "apple", "pepper", "soup", "coffee",
         "detergent", "shampoo", "pasta", "tomatoes"]
IMAGES_PER_PRODUCT = 2
BLOCK = 2_000  # synthetic vectors are generated (and regenerated, for exact search) per block

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


# ------------------------------------------------------------------------------- results
@dataclass
class Row:
    section: str
    name: str
    value: float | None
    unit: str
    ratio: float | None = None
    baseline: str = ""   # what the ratio divides by (or what divides by it)
    target: str = ""     # "<= 1.25", ">= 0.85", "" (for information)
    met: bool | None = None
    n: int | None = None
    note: str = ""

    def judge(self) -> Row:
        m = re.fullmatch(r"\s*(<=|>=)\s*(-?[0-9.]+)\s*", self.target or "")
        if m and self.ratio is not None:
            bound = float(m.group(2))
            self.met = self.ratio <= bound if m.group(1) == "<=" else self.ratio >= bound
        return self


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row.judge())
        r = row
        val = "skipped" if r.value is None else f"{r.value:,.4g} {r.unit}"
        ratio = "" if r.ratio is None else f" ratio {r.ratio:.3g}"
        verdict = "" if r.met is None else (" MET" if r.met else " NOT MET")
        log(f"  {r.section} | {r.name}: {val}{ratio}{(' target ' + r.target) if r.target else ''}"
            f"{verdict}{(' — ' + r.note) if r.value is None and r.note else ''}")
        return row

    def skip(self, section: str, name: str, reason: str, target: str = "") -> None:
        self.add(Row(section, name, None, "", target=target, note=f"SKIPPED: {reason}"))


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def print_table(res: Results) -> None:
    head = ["section", "measurement", "value", "ratio", "ratio is", "target", "met", "n"]
    body = []
    for r in res.rows:
        body.append([
            r.section, r.name,
            "skipped" if r.value is None else f"{r.value:,.4g} {r.unit}".strip(),
            "" if r.ratio is None else f"{r.ratio:.3g}",
            r.baseline, r.target or "info",
            "" if r.met is None else ("yes" if r.met else "NO"),
            "" if r.n is None else str(r.n),
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print(line)
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip())
    print(line)
    notes = [(i, r) for i, r in enumerate(res.rows, 1) if r.note]
    if notes:
        print("notes:")
        for _, r in notes:
            print(f"  - {r.section} / {r.name}: {r.note}")
    met = [r for r in res.rows if r.met is not None]
    print(f"targets met: {sum(r.met for r in met)} of {len(met)}")


# ---------------------------------------------------------------------------- utilities
def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def git_rev() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def redis_ok(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def metrics_text(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def scrape(port: int) -> dict[str, float]:
    """Sum/count of the service's stage and request histograms (Prometheus text)."""
    text = metrics_text(port)
    out: dict[str, float] = {}
    for m in re.finditer(r'^(lookalike_stage_seconds|lookalike_grpc_request_seconds)_(sum|count)'
                         r'\{(?:stage|method)="([A-Za-z]+)"\} ([0-9.e+-]+)$', text, re.M):
        out[f"{m.group(3)}_{m.group(2)}"] = float(m.group(4))
    return out


def stage_means(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean ms per call of each server stage between two scrapes."""
    out = {}
    for name in ("decode", "embed", "search", "Search"):
        n = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
        if n > 0:
            s = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
            out[name if name != "Search" else "rpc"] = 1000 * s / n
    return out


# ------------------------------------------------------------------------ data and model
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


class Model:
    """The default model and the bare forward function behind it."""

    def __init__(self, name: str) -> None:
        from lookalike.model import load_model

        t = time.perf_counter()
        self.embedder = load_model(name)
        self.load_s = time.perf_counter() - t
        # The tf.function the service runs (input: preprocessed 224x224 float32 RGB).
        self.forward = self.embedder._forward
        self.side, self.dim, self.model_id = self.embedder.side, self.embedder.dim, self.embedder.model_id
        self.batch_size = self.embedder.batch_size

    def inputs(self, photos: Sequence[Path], n: int) -> np.ndarray:
        from lookalike.imaging import decode
        from lookalike.model.preprocess import to_model_input

        if photos:
            imgs = [to_model_input(decode(p.read_bytes()), self.side) for p in photos[:n]]
            while len(imgs) < n:
                imgs += imgs[: n - len(imgs)]
        else:
            rng = np.random.default_rng(0)
            imgs = [rng.integers(0, 256, (self.side, self.side, 3), np.uint8) for _ in range(n)]
        return np.stack(imgs).astype(np.float32)

    def time_forward(self, x: np.ndarray, calls: int, warm: int = 2) -> list[float]:
        """ms per image of each call (the whole batch in one call)."""
        for _ in range(warm):
            self.forward(x).numpy()
        out = []
        for _ in range(calls):
            t = time.perf_counter()
            self.forward(x).numpy()
            out.append(1000 * (time.perf_counter() - t) / len(x))
        return out


# -------------------------------------------------------------------- synthetic catalogue
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


def build_store(data_dir: Path, n: int, model: Model) -> float:
    """Write n synthetic images straight into the store folder; returns seconds."""
    from lookalike.store import CatalogueStore

    t = time.perf_counter()
    store = CatalogueStore.open(settings_for(data_dir), model.model_id, model.dim)
    try:
        for start in range(0, n, BLOCK):
            vectors, images = synthetic_block(start, min(BLOCK, n - start), model.dim)
            store.upsert(images, vectors)
            if (start // BLOCK) % 10 == 9:
                log(f"    {start + len(images):,}/{n:,} written")
        assert store.count() == n, f"store holds {store.count()} points, expected {n}"
    finally:
        store.close()
    return time.perf_counter() - t


# --------------------------------------------------------------------------------- service
class Service:
    """lookalike.tools.local.start_service on a data dir, with a known metrics port."""

    def __init__(self, data_dir: Path, log_path: Path, model_name: str) -> None:
        from lookalike.tools.local import free_port, start_service

        self.metrics_port = free_port()
        env = {"LOOKALIKE_METRICS_PORT": str(self.metrics_port), "LOOKALIKE_MODEL": model_name,
               "LOOKALIKE_INDEX_CHECK_S": "1"}
        self.log_path = log_path
        t = time.perf_counter()
        self.proc, self.target = start_service(data_dir, env=env, log_path=log_path,
                                               ready_timeout_s=900)
        self.start_s = time.perf_counter() - t

    def stop(self) -> None:
        from lookalike.tools.local import stop

        stop(self.proc)

    def wait_for_index(self, threshold_points: int, timeout_s: float = 1800) -> float:
        """Seconds until the service has built its index (unindexed vectors below threshold)."""
        t = time.perf_counter()
        while True:
            text = metrics_text(self.metrics_port)
            built = re.search(r'^lookalike_index_builds_total\{outcome="built"\} (\S+)$', text, re.M)
            left = re.search(r"^lookalike_unindexed_vectors (\S+)$", text, re.M)
            if built and float(built.group(1)) >= 1 and left and float(left.group(1)) < threshold_points:
                return time.perf_counter() - t
            if self.proc.poll() is not None or time.perf_counter() - t > timeout_s:
                raise RuntimeError(f"no index built after {time.perf_counter() - t:.0f} s:\n"
                                   + self.log_tail())
            time.sleep(1)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def load_search(target: str, photos: list[bytes], in_flight: int, min_n: int, max_n: int,
                budget_s: float, offset: int = 0, between: Callable[[], None] | None = None) -> dict:
    """Search with `in_flight` requests outstanding; latency measured at the client.
    `between`: called after each request (by the thread that made it)."""
    from lookalike.client import Client

    lat: list[float] = []
    server_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = [0]
    with Client(target, timeout_s=900) as client:
        for i in range(2):  # warm the channel and the service
            client.search(photos[(offset + i) % len(photos)], top_k=10)
        t0 = time.perf_counter()

        def worker() -> None:
            while True:
                with lock:
                    if issued[0] >= max_n or (issued[0] >= min_n
                                              and time.perf_counter() - t0 >= budget_s):
                        return
                    i = issued[0]
                    issued[0] += 1
                data = photos[(offset + 2 + i) % len(photos)]
                t = time.perf_counter()
                try:
                    resp = client.search(data, top_k=10)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                dt = 1000 * (time.perf_counter() - t)
                with lock:
                    lat.append(dt)
                    server_ms.append(resp.server_ms)
                if between is not None:
                    between()

        threads = [threading.Thread(target=worker) for _ in range(in_flight)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
    return {"latency_ms": lat, "server_ms": server_ms, "errors": errors, "wall_s": wall,
            "qps": len(lat) / wall if wall > 0 else 0.0}


# ----------------------------------------------------------------------------- sections
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cfg = dict(PROFILES["quick" if args.quick else "full"])
        if args.sizes:
            self.cfg["sizes"] = [int(s) for s in args.sizes.split(",")]
        self.res = Results()
        self.data = load_data(Path(args.data))
        from lookalike.config import get_settings

        self.settings = get_settings()
        self.model_name = args.model or self.settings.model
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lookalike-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        shm = Path("/dev/shm")
        self.store_root = Path(args.store_dir) if args.store_dir else (
            Path(tempfile.mkdtemp(prefix="lookalike-bench-", dir=shm)) if shm.is_dir()
            and shutil.disk_usage(shm).free > 8 << 30 else self.workdir)
        self.model: Model | None = None
        self.b1_ms: float | None = None          # the run's bare batch-1 forward, ms/image
        self.search_p50: dict[int, float] = {}   # size -> 1-in-flight p50
        self.photo_bytes: list[bytes] = [p.read_bytes() for p, *_ in self.data.photos[:400]]

    # -- helpers
    def adjacent_b1(self, x1: np.ndarray) -> float:
        """Bare batch-1 forward measured now (next to the measurement it normalises)."""
        return float(np.median(self.model.time_forward(x1, self.cfg["adjacent_b1_calls"], warm=1)))

    def section(self, name: str, fn: Callable[[], None]) -> None:
        log(f"== {name}")
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            traceback.print_exc()
            self.res.skip(name, "section failed", f"{type(exc).__name__}: {exc}")
        self.res.details.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t, 1)
        write_json(self.res, self.args.out, partial=True)  # a crash later keeps what was measured

    # -- 1. the limit
    def forward(self) -> None:
        self.model = Model(self.model_name)
        m, cfg = self.model, self.cfg
        self.res.details["model"] = {"id": m.model_id, "dim": m.dim, "load_s": round(m.load_s, 2)}
        photos = [p for p, *_ in self.data.photos]
        self.x1 = m.inputs(photos, 1)
        self.x32 = m.inputs(photos, 32)
        b1 = m.time_forward(self.x1, cfg["b1_calls"], warm=3)
        b32 = m.time_forward(self.x32, cfg["b32_calls"], warm=1)
        self.b1_ms = float(np.median(b1))
        b32_ms = float(np.median(b32))
        self.res.baselines.update(forward_b1_ms=self.b1_ms, forward_b32_ms_per_image=b32_ms)
        self.res.details["forward"] = {"b1_ms": b1, "b32_ms_per_image": b32}
        src = "real photos" if photos else "random pixels (no photos found)"
        self.res.add(Row("limit", "bare forward, batch 1", self.b1_ms, "ms/img", 1.0,
                         "the baseline", n=len(b1),
                         note=f"{m.model_id}: the model's tf.function on 224x224 {src}; "
                              f"median, p99 {pct(b1, 99):.1f} ms"))
        self.res.add(Row("limit", "bare forward, batch 32", b32_ms, "ms/img", b32_ms / self.b1_ms,
                         "/ batch-1 forward", n=len(b32),
                         note=f"{1000 / b32_ms:.0f} images/s; median of {len(b32)} calls"))

    # -- 2. Search over gRPC
    def search(self) -> None:
        if not self.photo_bytes:
            for size in self.cfg["sizes"]:
                self.res.skip("search", f"{size:,} images", self.data.reason, "<= 1.25")
            return
        for size in self.cfg["sizes"]:
            self.search_at(size)

    def search_at(self, size: int) -> None:
        from lookalike.store import edge_options

        cfg, m = self.cfg, self.model
        data_dir = self.store_root / f"search-{size}"
        shutil.rmtree(data_dir, ignore_errors=True)
        log(f"  building a synthetic catalogue of {size:,} images in {data_dir}")
        build_s = build_store(data_dir, size, m)
        store_bytes = dir_bytes(data_dir)
        log(f"  built in {build_s:.1f} s ({store_bytes / 1e6:.0f} MB); starting the service")
        svc = Service(data_dir, self.workdir / f"service-search-{size}.log", self.model_name)
        detail = {"build_s": build_s, "store_bytes": store_bytes, "service_start_s": svc.start_s}
        self.res.details.setdefault("search", {})[size] = detail
        threshold = edge_options(self.settings).index_threshold(m.dim)
        try:
            log(f"  service ready in {svc.start_s:.1f} s at {svc.target}")
            if size >= threshold:
                log(f"  {size:,} images > {threshold:,}: searching while the service indexes")
                self.search_load(svc, size, 1, cfg["serial"], detail, "while the service indexes")
                index_s = svc.wait_for_index(threshold)
                detail["index_wait_s"] = index_s
                log(f"  index built {index_s:.0f} s after those searches")
            for in_flight, load in ((1, cfg["serial"]), (cfg["in_flight"], cfg["concurrent"])):
                self.search_load(svc, size, in_flight, load, detail)
        except Exception:
            print(svc.log_tail(), file=sys.stderr)
            raise
        finally:
            svc.stop()
        if not self.args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    def search_load(self, svc: Service, size: int, in_flight: int, load: dict, detail: dict,
                    during: str = "") -> None:
        """One load run and its rows; `during`: what the service does meanwhile (rows for
        information only)."""
        # One request in flight: a bare forward pass after each request, so that the baseline
        # sees the same moments of a noisy machine as the requests (runs of 15 a minute apart
        # differed by 20 %). Eight in flight leave no gap: runs before and after.
        interleaved: list[float] = []
        between = ((lambda: interleaved.append(self.model.time_forward(self.x1, 1, warm=0)[0]))
                   if in_flight == 1 else None)
        b_before = self.adjacent_b1(self.x1)
        before = scrape(svc.metrics_port)
        out = load_search(svc.target, self.photo_bytes, in_flight, **load, offset=size % 97,
                          between=between)
        stages = stage_means(before, scrape(svc.metrics_port))
        b_after = self.adjacent_b1(self.x1)
        base = float(np.median(interleaved)) if interleaved else (b_before + b_after) / 2
        lat = out["latency_ms"]
        name = f"Search {size:,} imgs, {in_flight} in flight" + (f", {during}" if during else "")
        detail[name] = {**out, "stages_ms": stages, "adjacent_b1_ms": [b_before, b_after],
                        "interleaved_b1_ms": interleaved}
        if not lat:
            self.res.skip("search", name, f"no successful request: {out['errors'][:2]}")
            return
        p50, p99 = pct(lat, 50), pct(lat, 99)
        serial = in_flight == 1 and not during
        if serial:
            self.search_p50[size] = p50
        stage_txt = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        note = ((f"{in_flight} requests share 2 cores, so p50 ~ {in_flight} x service time / "
                 "parallelism: see the throughput row; " if in_flight > 1 else "") +
                (f"{during}: the index is built by a niced child process; " if during else "") +
                f"server mean ms: {stage_txt}; bare b1 forward "
                f"{'interleaved' if interleaved else 'before/after'} {base:.1f} ms; "
                f"{out['qps']:.2f} req/s" + (f"; {len(out['errors'])} errors" if out["errors"] else ""))
        self.res.add(Row("search", f"{name}: p50", p50, "ms", p50 / base, "/ bare b1 forward",
                         "<= 1.25" if serial else "", n=len(lat), note=note))
        self.res.add(Row("search", f"{name}: p99", p99, "ms", p99 / p50, "/ p50",
                         "" if during else "<= 2", n=len(lat), note="" if len(lat) >= 100 else
                         f"only {len(lat)} samples: p99 is close to the maximum"))
        if in_flight > 1:
            # Throughput per node: what the scaling arithmetic uses.
            self.res.add(Row("search", f"{name}: throughput", out["qps"], "req/s",
                             out["qps"] * base / 1000, "/ (1000 / bare b1 forward)", ">= 0.8",
                             n=len(lat), note="requests/s vs images/s the bare batch-1 forward "
                                              "sustains (target is this harness's)"))

    # -- 3. ingest
    def ingest(self) -> None:
        from lookalike.client import Client
        from lookalike.imaging import decode
        from lookalike.model.preprocess import to_model_input
        from lookalike.tools.bulk import ingest
        from lookalike.tools.catalogue import Entry

        if not self.data.photos:
            self.res.skip("ingest", "ingest through queue + worker + store", self.data.reason, ">= 0.85")
            return
        items = self.data.gallery + self.data.photos[: self.cfg["ingest_photos"]]
        entries = [Entry(uri=str(p), product_id=f"{'g' if p.parent.name == 'gallery' else 'q'}-{p.stem}",
                         image_id=p.stem, category=cat, title=f"{prod} ({p.stem})")
                   for p, prod, cat in items]
        raw = [p.read_bytes() for p, *_ in items]
        m = self.model

        def bare() -> float:
            """images/s: decode + resize + forward in batches of the model's batch size."""
            t = time.perf_counter()
            for i in range(0, len(raw), m.batch_size):
                x = np.stack([to_model_input(decode(b, target_side=m.side), m.side)
                              for b in raw[i : i + m.batch_size]]).astype(np.float32)
                m.forward(x).numpy()
            return len(raw) / (time.perf_counter() - t)

        bare_before = [bare(), bare()]  # the first also warms the decode path
        data_dir = self.workdir / "ingest"  # on disk, as `lookalike serve` keeps it
        shutil.rmtree(data_dir, ignore_errors=True)
        svc = Service(data_dir, self.workdir / "service-ingest.log", self.model_name)
        try:
            with Client(svc.target, timeout_s=300) as client:
                # Warm the worker (Celery boots after the gRPC port is ready) and its model.
                warm = [Entry(uri=e.uri, product_id=f"warmup-{i}", image_id=f"warmup-{i}")
                        for i, e in enumerate(entries[:2])]
                ingest(client, warm, poll_s=0.1)
                log(f"  ingesting {len(entries)} images ({len(self.data.gallery)} gallery + "
                    f"{len(entries) - len(self.data.gallery)} store photos) through SubmitIngest")
                t = time.perf_counter()
                outcome = ingest(client, entries, poll_s=0.1)
                wall = time.perf_counter() - t
                done, failed = outcome.done, len(outcome.failures)
                points = client.stats().points
        except Exception:
            print(svc.log_tail(), file=sys.stderr)
            raise
        finally:
            svc.stop()
        bare_runs = [*bare_before, bare()]
        base = float(np.median(bare_runs))
        rate = done / wall
        self.res.details["ingest"] = {"images": len(entries), "done": done, "failed": failed,
                                      "wall_s": wall, "points": points,
                                      "bare_images_per_s": bare_runs,
                                      "chunk_size": self.settings.chunk_size,
                                      "service_start_s": svc.start_s}
        self.res.add(Row("ingest", f"SubmitIngest -> worker -> store, {len(entries)} real images",
                         rate, "img/s", rate / base, "/ bare decode+b32 forward", ">= 0.85",
                         n=done, note=f"bare decode + batch-{m.batch_size} forward of the same bytes: "
                                      f"median of {', '.join(f'{b:.1f}' for b in bare_runs)} img/s "
                                      "(2 before, 1 after); "
                                      f"worker chunk size {self.settings.chunk_size}; {failed} failed; "
                                      f"wall {wall:.1f} s incl. client upload and 0.1 s polling"))

    # -- 4. vector search alone
    def store_plan(self) -> list[tuple[list[int], list[str], int]]:
        """(sizes, configs, queries) for bench.vector_store.measure.

        1M is built and searched exactly only: the synthetic vectors are generated block by
        block, so memory stays at one 50k block, but an HNSW build of 1M takes far longer
        than the rest of the run together (100k: about a minute on 2 cores).
        """
        a = self.args
        if a.store_sizes or a.store_configs:
            return [([int(x) for x in (a.store_sizes or "100000").split(",")],
                     a.store_configs.split(",") if a.store_configs else list(vs.DEFAULT_CONFIGS), 100)]
        if a.quick:
            return [([5_000], ["edge-turbo8-exact", "edge-turbo4-exact", "edge-turbo8-hnsw"], 40)]
        return [([100_000], ["edge-float32-exact", "edge-turbo8-exact", "edge-turbo4-exact",
                             "edge-turbo8-hnsw"], 100),
                ([1_000_000], ["edge-turbo8-exact", "edge-turbo4-exact"], 100)]

    def vector_store(self) -> None:
        workdir = self.store_root / "vector-store"
        workdir.mkdir(parents=True, exist_ok=True)
        rows: list[dict] = []
        for sizes, configs, queries in self.store_plan():
            log(f"  bench/vector_store.py: sizes {sizes}, configs {configs}, {queries} queries")
            rows += vs.measure(sizes, configs, queries=queries, workdir=str(workdir), log=log)
        self.res.details["vector_store"] = rows
        seen: set = set()
        for r in rows:
            self.vector_rows(r, seen)
        if not self.args.quick and self.data.photos:
            log("  GroceryStoreDataset Recall@1 per vector datatype")
            grocery = vs.grocery_recall(("float32", "turbo8", "turbo4"), self.data.root, log=log)
            self.res.details["vector_store_grocery"] = grocery
            f32 = grocery[0]["recall@1"]
            for g in grocery[1:]:
                self.res.add(Row("vector store", f"GroceryStoreDataset Recall@1, {g['config'][13:]}",
                                 g["recall@1"], "", g["recall@1"] - f32, "- float32", ">= -0.01",
                                 n=g["queries"], note=f"float32 {f32:.4f}; {g['model']}"))

    def vector_rows(self, r: dict, reopen_seen: set) -> None:
        """A bench/vector_store.py row (config, size, hnsw_ef, p50_ms, ...) -> table rows."""
        vec_bytes = self.model.dim * VECTOR_BYTES_F32
        ef = r.get("hnsw_ef") or 0
        tag = f"{r['config']} {int(r['size']):,}" + (f" ef={ef}" if ef else "")
        n = r.get("queries")
        for label, suffix in (("no filter", ""), ("10% category filter", "_filter")):
            p50, p99, rec = r[f"p50_ms{suffix}"], r[f"p99_ms{suffix}"], r[f"recall@10{suffix}"]
            self.res.add(Row("vector store", f"{tag}, {label}: p50", p50, "ms", p50 / 10,
                             "/ 10 ms", "<= 1" if r["size"] <= 100_000 else "", n=n,
                             note=f"{p50 / self.b1_ms:.2f}x the bare b1 forward; p99 {p99} ms"))
            self.res.add(Row("vector store", f"{tag}, {label}: p99", p99, "ms", p99 / p50, "/ p50",
                             "<= 2", n=n))
            self.res.add(Row("vector store", f"{tag}, {label}: recall@10", rec, "", rec,
                             "/ exact float32 search", ">= 0.99", n=n))
        key = (r["config"], r["size"])
        if key in reopen_seen:
            return
        reopen_seen.add(key)
        size = f"{r['config']} {int(r['size']):,}"
        v = float(r["store_bytes_per_image"])
        self.res.add(Row("vector store", f"{size}: store bytes/image", v, "B", v / TARGET_BYTES,
                         "/ 1.5 KB", "<= 1", note=f"du of the store folder / images; a float32 "
                                                  f"{self.model.dim}-d vector is {vec_bytes} B"))
        v = float(r["rss_bytes_per_image"])
        self.res.add(Row("vector store", f"{size}: memory/image", v, "B", v / TARGET_BYTES,
                         "/ 1.5 KB", "", note="RSS growth of a fresh process opening the store and "
                                              "searching it / images"))
        v = float(r["reopen_s"])
        self.res.add(Row("vector store", f"{size}: reopen", v, "s", v, "/ 1 s",
                         "<= 1" if r["size"] <= 100_000 else "",
                         note=f"fresh process; build {r['ingest_s']} s, index {r['optimize_s']} s"))

    # -- 5. the seed article's way
    def seed(self) -> None:
        import keras  # noqa: F401 - model.predict is the point of this row

        from lookalike.imaging import decode
        from lookalike.model import backbone
        from lookalike.model.preprocess import to_model_input

        if not self.data.gallery or not self.data.photos:
            self.res.skip("seed way", "model.predict + re-embed per query",
                          self.data.reason or "no gallery images", ">= 1")
            return
        cat = [p for p, *_ in self.data.gallery[: self.cfg["seed_catalogue"]]]
        queries = [p for p, *_ in self.data.photos[-self.cfg["seed_queries"]:]]
        model = backbone.pretrained_lite0(include_top=False)  # same network, ImageNet head

        def embed(path: Path) -> np.ndarray:
            img = to_model_input(decode(path.read_bytes()), 224)[None].astype(np.float32)
            v = model.predict(img, verbose=0)[0]
            return v / np.linalg.norm(v)

        embed(queries[0])
        per_query = []
        for q in queries:
            t = time.perf_counter()
            gallery = np.stack([embed(p) for p in cat])  # the whole catalogue, every query
            scores = gallery @ embed(q)
            np.argsort(-scores)[:10]
            per_query.append(1000 * (time.perf_counter() - t))
        self.seed_ms = float(np.median(per_query))
        per_image = self.seed_ms / (len(cat) + 1)
        self.res.details["seed"] = {"catalogue": len(cat), "queries": len(queries),
                                    "per_query_ms": per_query}
        self.res.add(Row("seed way", f"model.predict per image ({len(cat)} catalogue + 1 query)",
                         per_image, "ms/img", per_image / self.b1_ms, "/ bare b1 forward",
                         n=len(per_query) * (len(cat) + 1),
                         note="Keras model.predict per image, decode included (info: the "
                              "overhead the tf.function path avoids)"))
        self._seed_rows = (len(cat), len(queries))

    def seed_ratio(self) -> None:
        """After the search rows: the seed way per query vs lookalike's Search p50."""
        if not hasattr(self, "seed_ms"):
            return
        n_cat, n_q = self._seed_rows
        if not self.search_p50:
            self.res.add(Row("seed way", f"per query, {n_cat}-image catalogue", self.seed_ms, "ms",
                             n=n_q, note="no lookalike Search p50 to compare with"))
            return
        size = min(self.search_p50)
        p50 = self.search_p50[size]
        per_image = self.seed_ms / (n_cat + 1)
        self.res.add(Row("seed way", f"per query, {n_cat}-image catalogue re-embedded", self.seed_ms,
                         "ms", self.seed_ms / p50, f"/ lookalike p50 at {size:,}", ">= 1", n=n_q,
                         note=f"lookalike searches {size:,} images in {p50:.0f} ms; the seed way "
                              f"would take ~{per_image * (size + 1) / 1000:,.0f} s per query at "
                              f"{size:,} (estimate: linear in catalogue size)"))

    # -- all
    def run(self) -> Results:
        a = self.args
        self.res.details["meta"] = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "profile": "quick" if a.quick else "full", "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "git": git_rev(), "data": str(self.data.root or a.data), "workdir": str(self.workdir),
            "store_root": str(self.store_root), "sizes": self.cfg["sizes"],
            "redis": self.settings.redis_url,
            "store": {k: getattr(self.settings, k) for k in ("vector_datatype", "hnsw_m", "hnsw_ef",
                      "indexing_threshold_kb") if hasattr(self.settings, k)},
        }
        log(f"profile {'quick' if a.quick else 'full'}: sizes {self.cfg['sizes']}, work dir "
            f"{self.workdir}, synthetic stores in {self.store_root}")
        if self.data.reason:
            log(f"  note: {self.data.reason}")
        if not redis_ok(self.settings.redis_url):
            raise SystemExit(f"no Redis answers at {self.settings.redis_url}: run `make redis` "
                             "(or set REDIS_URL)")
        try:
            self.section("limit", self.forward)
            if self.model is None:
                raise SystemExit("the model could not be loaded; nothing else can be measured")
            parts = [p.strip() for p in a.only.split(",")] if a.only else \
                ["seed", "search", "ingest", "store"]
            if "seed" in parts:
                self.section("seed way", self.seed)
            if "search" in parts:
                self.section("search", self.search)
            if "seed" in parts:
                self.seed_ratio()
            if "ingest" in parts:
                self.section("ingest", self.ingest)
            if "store" in parts:
                self.section("vector store", self.vector_store)
        finally:
            if not a.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
                if self.store_root != self.workdir:
                    shutil.rmtree(self.store_root, ignore_errors=True)
        self.res.details["meta"]["seconds"] = round(time.perf_counter() - T0, 1)
        return self.res


def write_json(res: Results, path: str, partial: bool = False) -> None:
    details = dict(res.details)
    out = {"meta": {**details.pop("meta", {}), "partial": partial}, "baselines": res.baselines,
           "rows": [asdict(r) for r in res.rows], "details": details}
    Path(path).write_text(json.dumps(out, indent=1, default=str))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run (< 3 min)")
    ap.add_argument("--out", default="bench-results.json", help="JSON results (default %(default)s)")
    ap.add_argument("--data", default=str(DEFAULT_DATA),
                    help="GroceryStoreDataset dev folder (default %(default)s)")
    ap.add_argument("--sizes", help="catalogue sizes for Search, comma-separated "
                                    "(default 10000,100000; quick 1000,20000)")
    ap.add_argument("--only", help="comma-separated subset of seed,search,ingest,store "
                                   "(the forward pass always runs: it is the baseline)")
    ap.add_argument("--store-sizes", help="sizes for the vector store rows (default 100000 "
                                          "and 1000000; quick 5000)")
    ap.add_argument("--store-configs", help="configs of bench/vector_store.py for those sizes "
                                            "(default: see Bench.store_plan)")
    ap.add_argument("--model", help="model name (default LOOKALIKE_MODEL / lite0-shelf)")
    ap.add_argument("--workdir", help="where service data dirs and logs go (default a temp dir)")
    ap.add_argument("--store-dir", help="where synthetic stores are built (default /dev/shm)")
    ap.add_argument("--keep", action="store_true", help="keep the work dirs and stores")
    args = ap.parse_args(argv)
    res = Bench(args).run()
    print_table(res)
    write_json(res, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

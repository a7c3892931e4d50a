#!/usr/bin/env python
"""lookalike performance harness: one run, one table, bench-results.json.

    make bench                                   # full run (about 15 min on 2 cores)
    .venv/bin/python bench/run.py --quick        # smoke run, small sizes (< 3 min)
    .venv/bin/python bench/run.py --help

Every figure is also printed as a ratio against a baseline measured in the same run,
next to the job (these machines are noisy: absolute times are for orientation only):

1. the limit: the default model's Keras tf.function on preprocessed 224x224 input,
   batch 1 and batch 32, ms per image; then the runtime that serves it (LiteRT) at batch 1
   per thread count;
2. Search over gRPC end to end (lookalike.client.Client -> a service started with
   lookalike.tools.local.start_service on a fresh data dir), 1 and 8 requests in flight,
   p50/p99, at each catalogue size. The catalogue is synthetic (random unit vectors,
   realistic payloads) written with lookalike.store.CatalogueStore, under the model id
   the service uses, before the service starts (an embedded store is one process's);
   the queries are real store photos. A catalogue past the indexing threshold is searched
   once while the service builds its HNSW index by itself, then measured once it is built.
   Ratios: p50 / bare batch-1 forward, p99 / p50. With one request in flight a bare forward
   pass runs after every request, so the baseline sees the same moments of the machine.
   The smallest size is searched again with the int8 network serving (LOOKALIKE_RUNTIME=
   litert-int8) when the run serves the float one;
3. ingest of real images (gallery + store photos used as catalogue images) through
   SubmitIngest -> Redis/Celery -> worker -> store (lookalike.tools.bulk.ingest), images/s,
   against bare decode + batch-32 forward of the same bytes;
4. vector search alone (bench/vector_store.py): p50/p99 with and without a filter,
   recall@10 against exact float32 search, bytes and memory per image and reopen time,
   per storage config at 100k and (exact only) 1M, plus GroceryStoreDataset Recall@1
   per vector datatype;
5. for reference, the "seed article's way": Keras model.predict per image, the whole
   catalogue re-embedded for every query.
6. two-stage search (lookalike/verify) on the ingest section's service and real catalogue
   (plus the SMVS DVD covers from ../shared/data/smvs_dvd_dev when present): real photos
   searched one in flight with verify="off" and verify="auto", server-side p50/p99; ratios
   p50 / bare batch-1 forward (interleaved as in 2), p99 / p50. And the packed catalogue
   local features per image (what the worker stores at ingest) against 32 KB.
8. (bench/web.py) Search by photo through the HTTP/JSON gateway against the same call over gRPC,
   alternately on one service: client wall p50 of each and their ratio.
9. (bench/runtime.py) Recall@1 of each serving runtime (Keras, LiteRT, LiteRT int8) on the dev sets.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` puts bench/ first, not the repo
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench import discovery, forward, ingest, runtime, search, seed, vectors, verify, web  # noqa: E402
from bench.common import DEFAULT_DATA, T0, git_rev, load_data, log  # noqa: E402
from bench.forward import Model  # noqa: E402
from bench.report import Results, print_table, write_json  # noqa: E402
from bench.service import redis_ok  # noqa: E402

# Sizes and sample counts. Latency rows stop issuing requests once both `min_n` requests
# were issued and `budget_s` passed (or at `max_n`): slow stores get few samples, fast
# ones many, and the run stays bounded either way.
PROFILES: dict[str, dict] = {
    "full": dict(
        sizes=[10_000, 100_000], b1_calls=40, b32_calls=6, adjacent_b1_calls=15,
        serial=dict(min_n=12, max_n=300, budget_s=40), concurrent=dict(min_n=24, max_n=600, budget_s=40),
        in_flight=8, ingest_photos=2600, seed_catalogue=40, seed_queries=20,
        store_queries=dict(min_n=12, max_n=200, budget_s=30),
        verify_queries=100, feature_images=500,
    ),
    "quick": dict(
        sizes=[1_000, 20_000], b1_calls=10, b32_calls=2, adjacent_b1_calls=8,
        serial=dict(min_n=8, max_n=100, budget_s=6), concurrent=dict(min_n=16, max_n=200, budget_s=6),
        in_flight=8, ingest_photos=40, seed_catalogue=10, seed_queries=3,
        store_queries=dict(min_n=8, max_n=50, budget_s=5),
        verify_queries=20, feature_images=None,
    ),
}


class Bench:
    """What the sections share: options, profile, results, photos, settings, work dirs, the
    model and the baselines measured so far. Each section is a function of it (bench/forward.py,
    search.py, ingest.py, vectors.py, seed.py)."""

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
        self.x1: np.ndarray | None = None        # one preprocessed photo, batch 1
        self.x32: np.ndarray | None = None       # 32 of them
        self.b1_ms: float | None = None          # the run's bare batch-1 forward, ms/image
        self.search_p50: dict[int, float] = {}   # size -> 1-in-flight p50
        self.seed_ms: float | None = None        # the seed way, ms per query
        self.seed_rows: tuple[int, int] = (0, 0)  # its catalogue images, queries
        self.photo_bytes: list[bytes] = [p.read_bytes() for p, *_ in self.data.photos[:400]]
        self.parts: list[str] = ([p.strip() for p in args.only.split(",")] if args.only else
                                 ["seed", "search", "ingest", "verify", "discovery", "web",
                                  "runtime", "store"])
        # The ingest section's catalogue (and its service, when left running) for verify.
        self.ingest_catalogue: verify.Catalogue | None = None

    def section(self, name: str, fn: Callable[[Bench], None]) -> None:
        log(f"== {name}")
        t = time.perf_counter()
        try:
            fn(self)
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            traceback.print_exc()
            self.res.skip(name, "section failed", f"{type(exc).__name__}: {exc}")
        self.res.details.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t, 1)
        write_json(self.res, self.args.out, partial=True)  # a crash later keeps what was measured

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
            self.section("limit", forward.run)
            if self.model is None:
                raise SystemExit("the model could not be loaded; nothing else can be measured")
            parts = self.parts
            if "seed" in parts:
                self.section("seed way", seed.run)
            if "search" in parts:
                self.section("search", search.run)
            if "seed" in parts:
                seed.ratio(self)
            if "ingest" in parts:
                self.section("ingest", ingest.run)
            if "verify" in parts:
                self.section("verify", verify.run)
            if "discovery" in parts:
                self.section("discovery", discovery.run)
            if "web" in parts:
                self.section("web", web.run)
            if "runtime" in parts:
                self.section("runtime", runtime.run)
            if "store" in parts:
                self.section("vector store", vectors.run)
        finally:
            if self.ingest_catalogue is not None and self.ingest_catalogue.svc is not None:
                self.ingest_catalogue.svc.stop()  # the verify section did not take it
            self.ingest_catalogue = None
            if not a.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
                if self.store_root != self.workdir:
                    shutil.rmtree(self.store_root, ignore_errors=True)
        self.res.details["meta"]["seconds"] = round(time.perf_counter() - T0, 1)
        return self.res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run (< 3 min)")
    ap.add_argument("--out", default="bench-results.json", help="JSON results (default %(default)s)")
    ap.add_argument("--data", default=str(DEFAULT_DATA),
                    help="GroceryStoreDataset dev folder (default %(default)s)")
    ap.add_argument("--sizes", help="catalogue sizes for Search, comma-separated "
                                    "(default 10000,100000; quick 1000,20000)")
    ap.add_argument("--only", help="comma-separated subset of seed,search,ingest,verify,"
                                   "discovery,web,runtime,store "
                                   "(the forward pass always runs: it is the baseline)")
    ap.add_argument("--store-sizes", help="sizes for the vector store rows (default 100000 "
                                          "and 1000000; quick 5000)")
    ap.add_argument("--store-configs", help="configs of bench/vector_store.py for those sizes "
                                            "(default: see plan in bench/vectors.py)")
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

"""Load test: N concurrent clients for a fixed time against a query service holding a large
synthetic catalogue, with real photos as queries. Loopback only, bounded in time and count.

    .venv/bin/python bench/load.py --catalogue 100000 --clients 16 --seconds 60

Reports requests, errors by status, latency p50/p99 and the server's RSS at start and end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np

from lookalike.client import Client
from lookalike.config import Settings
from lookalike.model import DEFAULT_MODEL, model_id
from lookalike.store import CatalogueImage, CatalogueStore
from lookalike.tools.local import start_service, stop
from lookalike.tools.sample import generate

SHARED_QUERIES = Path(__file__).resolve().parents[1].parent / "shared/data/grocerystore_dev/queries"
MAX_REQUESTS = 200_000


def populate(data_dir: Path, size: int, dim: int = 1280, batch: int = 2000) -> None:
    """Random unit vectors with realistic payloads, written before the service opens the store."""
    rng = np.random.default_rng(0)
    store = CatalogueStore.open(Settings(data_dir=data_dir, qdrant_url=""),
                                model_id(DEFAULT_MODEL), dim)
    for start in range(0, size, batch):
        n = min(batch, size - start)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        images = [CatalogueImage(f"sku-{i // 2}", f"img-{i % 2}", f"category-{i % 10}",
                                 f"Product {i // 2}", ("synthetic",)) for i in range(start, start + n)]
        store.upsert(images, vectors)
    store.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photos(limit: int = 64) -> list[bytes]:
    if SHARED_QUERIES.is_dir():
        return [p.read_bytes() for p in sorted(SHARED_QUERIES.glob("*.jpg"))[:limit]]
    sample = Path(tempfile.mkdtemp()) / "sample"
    generate(sample)
    return [p.read_bytes() for p in sorted((sample / "queries").glob("*.jpg"))]


def run(catalogue: int, clients: int, seconds: float, deadline_s: float) -> dict:
    queries = photos()
    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp:
        started = time.perf_counter()
        populate(Path(tmp), catalogue)
        print(f"catalogue of {catalogue:,} vectors written in {time.perf_counter() - started:.0f} s")
        proc, target = start_service(Path(tmp), ready_timeout_s=600)
        try:
            with Client(target, timeout_s=deadline_s) as warm:
                for image in queries[:4]:
                    warm.search(image)
            rss_start = rss_mib(proc.pid)
            latencies: list[float] = []
            codes: Counter[str] = Counter()
            lock, stop_at = threading.Lock(), time.monotonic() + seconds

            def client_loop(worker: int) -> None:
                with Client(target, timeout_s=deadline_s) as client:
                    i = worker
                    while time.monotonic() < stop_at and len(latencies) < MAX_REQUESTS:
                        t0 = time.perf_counter()
                        try:
                            client.search(queries[i % len(queries)], top_k=10)
                            code = "OK"
                        except grpc.RpcError as exc:
                            code = exc.code().name
                        with lock:
                            latencies.append(time.perf_counter() - t0)
                            codes[code] += 1
                        i += clients

            threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rss_end = rss_mib(proc.pid)
        finally:
            stop(proc)
    ms = np.array(latencies) * 1000
    return {"catalogue": catalogue, "clients": clients, "seconds": seconds,
            "requests": int(sum(codes.values())), "errors": int(sum(codes.values()) - codes["OK"]),
            "codes": dict(codes), "rps": sum(codes.values()) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "rss_start_mib": rss_start, "rss_end_mib": rss_end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--deadline", type=float, default=30, help="per-call deadline, s")
    parser.add_argument("--out", type=Path, default=Path("load-results.json"))
    args = parser.parse_args()
    result = run(args.catalogue, args.clients, args.seconds, args.deadline)
    for key, value in result.items():
        print(f"{key:>14}: {value:.1f}" if isinstance(value, float) else f"{key:>14}: {value}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

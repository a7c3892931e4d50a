"""Load test: N concurrent clients for a fixed time against a query service holding a large
synthetic catalogue, with real photos as queries. Loopback only, bounded in time and count.

    .venv/bin/python bench/load.py --catalogue 100000 --clients 16 --seconds 60

Reports requests, errors by status, latency p50/p99 and the server's RSS at start and end.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/load.py` puts bench/ first, not the repo
    sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_DATA, load_search, pct, rss_mib, write_catalogue  # noqa: E402
from lookalike.client import Client  # noqa: E402
from lookalike.model import DEFAULT_MODEL, model_id  # noqa: E402
from lookalike.tools.local import start_service, stop  # noqa: E402
from lookalike.tools.sample import generate  # noqa: E402

SHARED_QUERIES = DEFAULT_DATA / "queries"
MAX_REQUESTS = 200_000
DIM = 1280


def photos(limit: int = 64) -> list[bytes]:
    if SHARED_QUERIES.is_dir():
        return [p.read_bytes() for p in sorted(SHARED_QUERIES.glob("*.jpg"))[:limit]]
    sample = Path(tempfile.mkdtemp()) / "sample"
    generate(sample)
    return [p.read_bytes() for p in sorted((sample / "queries").glob("*.jpg"))]


def run(catalogue: int, clients: int, seconds: float, deadline_s: float) -> dict:
    queries = photos()
    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp:
        build_s = write_catalogue(Path(tmp), catalogue, model_id(DEFAULT_MODEL), DIM)
        print(f"catalogue of {catalogue:,} vectors written in {build_s:.0f} s")
        proc, target = start_service(Path(tmp), ready_timeout_s=600)
        try:
            with Client(target, timeout_s=deadline_s) as warm:
                for image in queries[:4]:
                    warm.search(image)
            rss_start = rss_mib(proc.pid)
            out = load_search(target, queries, clients, min_n=0, max_n=MAX_REQUESTS, budget_s=seconds,
                              warm=0, timeout_s=deadline_s, channel_per_worker=True)
            rss_end = rss_mib(proc.pid)
        finally:
            stop(proc)
    codes = out["codes"]
    ms = out["latency_ms"] + out["failed_ms"]
    return {"catalogue": catalogue, "clients": clients, "seconds": seconds,
            "requests": int(sum(codes.values())), "errors": int(sum(codes.values()) - codes.get("OK", 0)),
            "codes": codes, "rps": sum(codes.values()) / seconds,
            "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
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

"""A lookalike service under test: started on a data dir with a known metrics port, its
Prometheus figures scraped; and the Redis check the ingest path needs."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path


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
    """Sum/count of the service's stage and request histograms, and its full (generation 2)
    garbage collections so far (Prometheus text)."""
    text = metrics_text(port)
    out: dict[str, float] = {}
    for m in re.finditer(r'^(lookalike_stage_seconds|lookalike_grpc_request_seconds)_(sum|count)'
                         r'\{(?:stage|method)="([A-Za-z]+)"\} ([0-9.e+-]+)$', text, re.M):
        out[f"{m.group(3)}_{m.group(2)}"] = float(m.group(4))
    full = re.search(r'^python_gc_collections_total\{generation="2"\} ([0-9.e+-]+)$', text, re.M)
    if full:
        out["gc_full"] = float(full.group(1))
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


class Service:
    """lookalike.tools.local.start_service on a data dir, with a known metrics port."""

    def __init__(self, data_dir: Path, log_path: Path, model_name: str, runtime: str = "") -> None:
        """`runtime`: LOOKALIKE_RUNTIME for the service (default: the bench's own setting)."""
        from lookalike.tools.local import free_port, start_service

        self.metrics_port = free_port()
        env = {"LOOKALIKE_METRICS_PORT": str(self.metrics_port), "LOOKALIKE_MODEL": model_name,
               "LOOKALIKE_INDEX_CHECK_S": "1", **({"LOOKALIKE_RUNTIME": runtime} if runtime else {})}
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


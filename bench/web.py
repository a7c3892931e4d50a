"""8. The HTTP/JSON gateway (lookalike/web) beside gRPC: the same Search by photo (verify off)
through `POST /v1/search` (raw image body, httpx, one keep-alive connection) and through the
gRPC client, alternately, on one all-in-one service started with LOOKALIKE_HTTP_LISTEN,
holding the generated sample catalogue. Client wall time, so the gateway's cost (HTTP
parsing, a second gRPC hop over loopback, JSON) is the difference of the two p50s.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bench.common import log, pct
from bench.report import Row

if TYPE_CHECKING:
    from bench.run import Bench

SECTION = "web"


def run(b: Bench) -> None:
    import httpx

    from lookalike.client import Client
    from lookalike.tools.bulk import ingest
    from lookalike.tools.catalogue import read_catalogue
    from lookalike.tools.local import free_port, start_service, stop
    from lookalike.tools.sample import generate

    root = b.workdir / "web-sample"
    generate(root)
    photos = sorted((root / "queries").glob("*.jpg"))
    photos = [p.read_bytes() for p in photos] or [(root / "catalogue" / "coffee-cup.png").read_bytes()]
    http = f"127.0.0.1:{free_port()}"
    proc, target = start_service(b.workdir / "web", env={
        "LOOKALIKE_HTTP_LISTEN": http, "LOOKALIKE_MODEL": b.model_name,
        "LOOKALIKE_METRICS_PORT": str(free_port())}, log_path=b.workdir / "service-web.log",
        ready_timeout_s=900)
    n = b.cfg["verify_queries"]
    times: dict[str, list[float]] = {"gRPC": [], "HTTP": []}
    try:
        with Client(target, timeout_s=300) as client, \
                httpx.Client(base_url=f"http://{http}", timeout=300) as web:
            ingest(client, list(read_catalogue(root / "catalogue.csv")), poll_s=0.1)
            calls = {
                "gRPC": lambda photo: client.search(photo, verify="off").matches[0].product_id,
                "HTTP": lambda photo: web.post("/v1/search?verify=off", content=photo, headers={
                    "content-type": "image/jpeg"}).raise_for_status().json()["matches"][0]["product_id"],
            }
            for i in range(n + 2):
                photo = photos[i % len(photos)]
                answers = set()
                for name, call in calls.items():
                    t = time.perf_counter()
                    answers.add(call(photo))
                    if i >= 2:  # warm-up calls left out
                        times[name].append(1000 * (time.perf_counter() - t))
                assert len(answers) == 1, f"gRPC and HTTP disagree: {answers}"
    finally:
        stop(proc)
    b.res.details[SECTION] = {"times_ms": times}
    grpc_p50, http_p50 = pct(times["gRPC"], 50), pct(times["HTTP"], 50)
    log(f"  {len(photos)} photos, {n} calls each: gRPC p50 {grpc_p50:.1f} ms, HTTP p50 {http_p50:.1f} ms")
    b.res.add(Row(SECTION, "Search by photo over gRPC (verify off): p50", grpc_p50, "ms",
                  n=n, note="client wall time, the generated sample"))
    b.res.add(Row(SECTION, "Search by photo over HTTP/JSON (POST /v1/search): p50", http_p50, "ms",
                  http_p50 / grpc_p50, "/ gRPC p50 of the same run", n=n,
                  note=f"the gateway adds {http_p50 - grpc_p50:+.1f} ms at p50; p95 HTTP "
                  f"{pct(times['HTTP'], 95):.1f} ms vs gRPC {pct(times['gRPC'], 95):.1f} ms"))

"""2. Search over gRPC end to end, at each catalogue size: a synthetic catalogue written into a
fresh data dir, a service started on it, real store photos as queries; 1 and 8 requests in
flight. Ratios: p50 / bare batch-1 forward, p99 / p50. Then the smallest size again with the
int8 network serving (LOOKALIKE_RUNTIME=litert-int8), when the run serves the float one."""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING

import numpy as np

from bench.common import dir_bytes, load_search, log, pct, write_catalogue
from bench.forward import adjacent_b1
from bench.report import Row
from bench.service import Service, scrape, stage_means
from lookalike.model.registry import INT8

if TYPE_CHECKING:
    from bench.run import Bench


def run(b: Bench) -> None:
    if not b.photo_bytes:
        for size in b.cfg["sizes"]:
            b.res.skip("search", f"{size:,} images", b.data.reason, "<= 1.25")
        return
    for size in b.cfg["sizes"]:
        search_at(b, size)
    if b.model.runtime == "litert" and int8_model_id(b) is not None:
        search_at(b, min(b.cfg["sizes"]), INT8)


def int8_model_id(b: Bench) -> str | None:
    from lookalike.config import ConfigError
    from lookalike.model import model_id

    try:
        return model_id(b.model_name, INT8)
    except ConfigError:
        return None  # this model has no int8 network


def search_at(b: Bench, size: int, runtime: str = "") -> None:
    """`runtime`: the service's LOOKALIKE_RUNTIME when not the run's own."""
    from lookalike.store import edge_options

    cfg, m = b.cfg, b.model
    data_dir = b.store_root / f"search-{size}{runtime}"
    shutil.rmtree(data_dir, ignore_errors=True)
    log(f"  building a synthetic catalogue of {size:,} images in {data_dir}")
    build_s = write_catalogue(data_dir, size, int8_model_id(b) if runtime else m.model_id, m.dim,
                              progress=log)
    store_bytes = dir_bytes(data_dir)
    log(f"  built in {build_s:.1f} s ({store_bytes / 1e6:.0f} MB); starting the service"
        + (f" with {runtime}" if runtime else ""))
    svc = Service(data_dir, b.workdir / f"service-search-{size}{runtime}.log", b.model_name, runtime)
    detail = {"build_s": build_s, "store_bytes": store_bytes, "service_start_s": svc.start_s}
    b.res.details.setdefault("search", {})[f"{size}{runtime}"] = detail
    threshold = edge_options(b.settings).index_threshold(m.dim)
    try:
        log(f"  service ready in {svc.start_s:.1f} s at {svc.target}")
        if size >= threshold:
            log(f"  {size:,} images > {threshold:,}: searching while the service indexes")
            search_load(b, svc, size, 1, cfg["serial"], detail, "while the service indexes", runtime)
            index_s = svc.wait_for_index(threshold)
            detail["index_wait_s"] = index_s
            log(f"  index built {index_s:.0f} s after those searches")
        for in_flight, load in ((1, cfg["serial"]), (cfg["in_flight"], cfg["concurrent"])):
            search_load(b, svc, size, in_flight, load, detail, runtime=runtime)
    except Exception:
        print(svc.log_tail(), file=sys.stderr)
        raise
    finally:
        svc.stop()
    if not b.args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)


def search_load(b: Bench, svc: Service, size: int, in_flight: int, load: dict, detail: dict,
                during: str = "", runtime: str = "") -> None:
    """One load run and its rows; `during`: what the service does meanwhile (rows for
    information only); `runtime`: the service's, when not the run's own."""
    # One request in flight: a bare forward pass after each request, so that the baseline
    # sees the same moments of a noisy machine as the requests (runs of 15 a minute apart
    # differed by 20 %). Eight in flight leave no gap: runs before and after.
    interleaved: list[float] = []
    between = ((lambda: interleaved.append(b.model.time_forward(b.x1, 1, warm=0)[0]))
               if in_flight == 1 else None)
    b_before = adjacent_b1(b)
    before = scrape(svc.metrics_port)
    # Stage 1 alone (the synthetic catalogue has no local features): the verify section
    # measures stage 2 on real images.
    run = load_search(svc.target, b.photo_bytes, in_flight, **load, offset=size % 97, between=between,
                      verify="off")
    out = {k: run[k] for k in ("latency_ms", "server_ms", "errors", "wall_s", "qps")}
    after = scrape(svc.metrics_port)
    stages = stage_means(before, after)
    full_gcs = int(after.get("gc_full", 0) - before.get("gc_full", 0))
    b_after = adjacent_b1(b)
    base = float(np.median(interleaved)) if interleaved else (b_before + b_after) / 2
    lat = out["latency_ms"]
    name = (f"Search {size:,} imgs, verify=off, {in_flight} in flight"
            + (f", {during}" if during else "") + (f", served by {runtime}" if runtime else ""))
    detail[name] = {**out, "stages_ms": stages, "full_gcs": full_gcs,
                    "adjacent_b1_ms": [b_before, b_after],
                    "interleaved_b1_ms": interleaved}
    if not lat:
        b.res.skip("search", name, f"no successful request: {out['errors'][:2]}")
        return
    p50, p99 = pct(lat, 50), pct(lat, 99)
    serial = in_flight == 1 and not during
    if serial and not runtime:
        b.search_p50[size] = p50
    stage_txt = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
    note = ((f"{in_flight} requests share 2 cores, so p50 ~ {in_flight} x service time / "
             "parallelism: see the throughput row; " if in_flight > 1 else "") +
            (f"{during}: the index is built by a niced child process; " if during else "") +
            f"server mean ms: {stage_txt}; bare b1 forward "
            f"{'interleaved' if interleaved else 'before/after'} {base:.1f} ms; "
            f"{out['qps']:.2f} req/s; {full_gcs} full garbage collections in the service"
            + (f"; {len(out['errors'])} errors" if out["errors"] else ""))
    # Targets: faster end to end than the bare Keras forward (the served runtime makes room
    # for decode, search and the round trip); a tail within 1.5x (1 in flight) or 2x (8).
    b.res.add(Row("search", f"{name}: p50", p50, "ms", p50 / base, "/ bare Keras b1 forward",
                  "<= 0.75" if serial else "", n=len(lat), note=note))
    b.res.add(Row("search", f"{name}: p99", p99, "ms", p99 / p50, "/ p50",
                  "" if during else "<= 1.5" if in_flight == 1 else "<= 2", n=len(lat),
                  note="" if len(lat) >= 100 else
                  f"only {len(lat)} samples: p99 is close to the maximum"))
    if in_flight > 1:
        # Throughput per node: what the scaling arithmetic uses.
        b.res.add(Row("search", f"{name}: throughput", out["qps"], "req/s",
                      out["qps"] * base / 1000, "/ (1000 / bare Keras b1 forward)", ">= 1.6",
                      n=len(lat), note="requests/s vs images/s the bare Keras batch-1 "
                                       "forward sustains"))

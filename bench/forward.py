"""1. The limit: the default model's Keras tf.function on preprocessed 224x224 input, batch 1
and batch 32, ms per image. Its batch-1 figure is the baseline the other sections divide by.
Then the runtime that serves it (LOOKALIKE_RUNTIME, lookalike/model/runtime.py) on the same
input, at each thread count up to the machine's cores."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import pct
from bench.report import Row

if TYPE_CHECKING:
    from bench.run import Bench


class Model:
    """The default model and the bare forward function behind it."""

    def __init__(self, name: str) -> None:
        from lookalike.model import load_model

        t = time.perf_counter()
        self.embedder = load_model(name)
        self.load_s = time.perf_counter() - t
        # The Keras tf.function (input: preprocessed 224x224 float32 RGB): the reference.
        self.keras = self.embedder.network
        # What the service runs it with (numpy in, numpy out).
        self.served, self.runtime = self.embedder.forward, self.embedder.runtime
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
        """ms per image of each call of the Keras function (the whole batch in one call)."""
        return time_calls(lambda: self.keras(x).numpy(), len(x), calls, warm)


def time_calls(fn: Callable[[], object], n: int, calls: int, warm: int = 2) -> list[float]:
    """ms per image of each of `calls` calls of fn (n images a call), after `warm` calls."""
    for _ in range(warm):
        fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t) / n)
    return out



def run(b: Bench) -> None:
    b.model = Model(b.model_name)
    m, cfg = b.model, b.cfg
    b.res.details["model"] = {"id": m.model_id, "dim": m.dim, "load_s": round(m.load_s, 2)}
    photos = [p for p, *_ in b.data.photos]
    b.x1 = m.inputs(photos, 1)
    b.x32 = m.inputs(photos, 32)
    b1 = m.time_forward(b.x1, cfg["b1_calls"], warm=3)
    b32 = m.time_forward(b.x32, cfg["b32_calls"], warm=1)
    b.b1_ms = float(np.median(b1))
    b32_ms = float(np.median(b32))
    b.res.baselines.update(forward_b1_ms=b.b1_ms, forward_b32_ms_per_image=b32_ms)
    b.res.details["forward"] = {"b1_ms": b1, "b32_ms_per_image": b32}
    src = "real photos" if photos else "random pixels (no photos found)"
    b.res.add(Row("limit", "bare forward, batch 1", b.b1_ms, "ms/img", 1.0,
                  "the baseline", n=len(b1),
                  note=f"{m.model_id}: the model's tf.function on 224x224 {src}; "
                       f"median, p99 {pct(b1, 99):.1f} ms"))
    b.res.add(Row("limit", "bare forward, batch 32", b32_ms, "ms/img", b32_ms / b.b1_ms,
                  "/ batch-1 forward", n=len(b32),
                  note=f"{1000 / b32_ms:.0f} images/s; median of {len(b32)} calls"))
    served_rows(b)


def served_rows(b: Bench) -> None:
    """The serving runtime's batch-1 forward at each thread count (1, 2, 4 ... the cores),
    each next to a Keras batch-1 run, and at its default count (what the service uses); then
    the same for the other LiteRT runtime when the model has it (float / int8)."""
    from lookalike.model.registry import INT8

    m, cfg = b.model, b.cfg
    cores = len(os.sched_getaffinity(0))
    counts = sorted({1, cores, *(t for t in (2, 4, 8, 16) if t <= cores)})
    by_runtime: dict[str, dict[int, float]] = {}
    for runtime in [m.runtime, *(r for r in ("litert", INT8) if r != m.runtime)]:
        served = by_runtime[runtime] = forward_by_threads(b, runtime, counts)
        if not served:
            b.res.skip("limit", f"forward ({runtime})", f"{b.model_name} has no {runtime} network")
    # Several images at once (concurrent searches, an ingest chunk): dealt to one
    # single-thread interpreter per core.
    batch = b.x32[:8]
    ms8 = time_calls(lambda: m.served(batch), len(batch), cfg["b32_calls"] * 3, warm=1)
    default = getattr(m.served, "threads", None)
    b.res.add(Row("limit", f"served forward ({m.runtime}), 8 images a call", float(np.median(ms8)),
                  "ms/img", float(np.median(ms8)) / by_runtime[m.runtime].get(default, b.b1_ms),
                  "/ its batch 1 at the default threads", n=len(ms8),
                  note=f"{1000 / float(np.median(ms8)):.0f} images/s"))
    b.res.details["served_forward"] = {"runtime": m.runtime, "ms_by_threads": by_runtime[m.runtime],
                                       "b8_ms": ms8, "default_threads": default,
                                       "ms_by_runtime_and_threads": by_runtime}


def forward_by_threads(b: Bench, runtime: str, counts: list[int]) -> dict[int, float]:
    """ms per image of `runtime` at batch 1 per thread count, a row each; {} when the model
    has no such network."""
    from lookalike.config import ConfigError
    from lookalike.model import load_model

    m, cfg = b.model, b.cfg
    served: dict[int, float] = {}
    for threads in counts:
        try:
            model = m.embedder if (runtime == m.runtime and threads == getattr(m.served, "threads", None)
                                   ) else load_model(b.model_name, runtime=runtime, threads=threads)
        except ConfigError:
            return served
        ms = time_calls(lambda: model.forward(b.x1), 1, cfg["b1_calls"], warm=3)  # noqa: B023
        keras_ms = float(np.median(m.time_forward(b.x1, cfg["adjacent_b1_calls"], warm=1)))
        served[threads] = float(np.median(ms))
        default = " (the default)" if model is m.embedder else ""
        what = "served forward" if runtime == m.runtime else "forward"
        b.res.add(Row("limit", f"{what} ({runtime}), batch 1, {threads} thread(s){default}",
                      served[threads], "ms/img", served[threads] / keras_ms,
                      "/ Keras batch-1 forward run next to it", "<= 0.6", n=len(ms),
                      note=f"{model.model_id}; Keras batch 1 next to it {keras_ms:.1f} ms; "
                           f"median of {len(ms)}"))
    return served


def adjacent_b1(b: Bench) -> float:
    """Bare batch-1 forward measured now (next to the measurement it normalises)."""
    return float(np.median(b.model.time_forward(b.x1, b.cfg["adjacent_b1_calls"], warm=1)))

"""Where a model's network runs: LiteRT (XNNPACK) to serve, Keras as the reference.

The Keras graph stays what training fits and what defines the vectors. LiteRT runs the same
graph converted once (cached next to the ImageNet weights) and is 0.25x the Keras forward
pass per image on 2 cores (bench/forward.py). A conversion is kept only after it gives the
Keras vectors back on fixed probe images (cosine >= 0.99999), so a LiteRT and a Keras
process under one model id never write vectors that differ by more than float rounding.

`litert-int8` runs a full-integer network shipped beside the model's artifact
(lookalike/training/quantize.py: calibrated once, so every process has the same one). Its
vectors are not the float ones, so its model id differs (registry.py): never mixed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf

from lookalike.model.backbone import default_cache_dir
from lookalike.model.base import unit
from lookalike.model.registry import INT8, RUNTIMES
from lookalike.model.tail import forward_batched

log = logging.getLogger(__name__)

# Bump when the conversion changes, so stale files are not loaded.
_CONVERSION_VERSION = 1
_MIN_PROBE_COSINE = 0.99999

Forward = Callable[[np.ndarray], np.ndarray]  # (n, side, side, 3) float32 0..255 -> (n, d)


def keras_forward(fn: tf.types.experimental.PolymorphicFunction, batch_size: int) -> Forward:
    """The tf.function itself, `batch_size` images a call."""
    return lambda x: forward_batched(fn, x, batch_size)


def probe_images(side: int, n: int = 4) -> np.ndarray:
    """Fixed inputs a conversion must reproduce: smooth gradients with noise, like photos
    enough to exercise every channel, identical on every machine."""
    rng = np.random.default_rng(20261202)
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    base = np.stack([ramp[None, :].repeat(side, 0), ramp[:, None].repeat(side, 1),
                     np.full((side, side), 128, np.float32)], -1)
    noise = rng.normal(0, 40, (n, side, side, 3)).astype(np.float32)
    return np.clip(base[None] + noise, 0, 255)


class _Lane:
    """One LiteRT interpreter at batch 1 (a fixed input shape never re-plans its tensors)."""

    def __init__(self, path: Path, side: int, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter  # only where LiteRT serves

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._interpreter.resize_tensor_input(self._input, [1, side, side, 3], strict=False)
        self._interpreter.allocate_tensors()

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        rows = []
        for image in images:
            self._interpreter.set_tensor(self._input, image[None])
            self._interpreter.invoke()  # without the GIL: lanes run side by side
            rows.append(self._interpreter.get_tensor(self._output)[0].copy())
        return rows


class LiteRTForward:
    """LiteRT interpreters of one .tflite network fed one image a call: XNNPACK at batch 1
    already runs at its batched cost per image (3.3 vs 3.7 ms at batch 8, 2 threads). A lone
    image gets every thread; several are dealt to one single-thread interpreter per core,
    which spends no time synchronising threads inside each layer (bench/forward.py measures
    both). Calls are serialised: an interpreter is not thread-safe."""

    def __init__(self, path: Path, side: int, threads: int = 0) -> None:
        self.threads = threads or min(len(os.sched_getaffinity(0)), 4)
        self._whole = _Lane(path, side, self.threads)
        self._lanes = [_Lane(path, side, 1) for _ in range(self.threads)] if self.threads > 1 else []
        self._pool = ThreadPoolExecutor(len(self._lanes), "lookalike-litert") if self._lanes else None
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        with self._lock:
            if len(x) < 2 or self._pool is None:
                rows = self._whole.run(x)
            else:
                shares = np.array_split(np.arange(len(x)), min(len(x), len(self._lanes)))
                rows = [row for done in [self._pool.submit(lane.run, x[share])
                                         for lane, share in zip(self._lanes, shares)]
                        for row in done.result()]
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def converted(fn: tf.types.experimental.PolymorphicFunction, key: str, side: int,
              threads: int = 0, cache_dir: Path | None = None) -> LiteRTForward:
    """The float network of `fn` in LiteRT, converted and checked once per model id `key`."""
    return LiteRTForward(_cached_conversion(fn, key, side, cache_dir or default_cache_dir()),
                         side, threads)


def _cached_conversion(fn: tf.types.experimental.PolymorphicFunction, key: str, side: int,
                       cache_dir: Path) -> Path:
    safe = key.replace("@", "-").replace("/", "_")
    path = cache_dir / f"{safe}-{side}-tf{tf.__version__}-c{_CONVERSION_VERSION}.tflite"
    if path.is_file():
        return path
    concrete = fn.get_concrete_function()
    blob = tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".tflite")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        _check_conversion(fn, Path(tmp), side)
        os.replace(tmp, path)  # atomic publish: concurrent loaders never see half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("converted %s for LiteRT: %s (%d bytes)", key, path, len(blob))
    return path


def _check_conversion(fn: tf.types.experimental.PolymorphicFunction, path: Path, side: int) -> None:
    probes = probe_images(side)
    reference = fn(tf.constant(probes)).numpy()
    converted = np.stack(_Lane(path, side, 1).run(probes))
    worst = float((unit(reference) * unit(converted)).sum(axis=1).min())
    if worst < _MIN_PROBE_COSINE:
        raise RuntimeError(f"the LiteRT conversion does not reproduce the Keras vectors (cosine "
                           f"{worst:.6f} < {_MIN_PROBE_COSINE}); set LOOKALIKE_RUNTIME=keras")


def make_forward(runtime: str, fn: tf.types.experimental.PolymorphicFunction, key: str,
                 side: int, batch_size: int, threads: int = 0, int8: Path | None = None) -> Forward:
    """`int8`: the model's full-integer network, which `litert-int8` runs (checked by the model)."""
    if runtime == "keras":
        return keras_forward(fn, batch_size)
    if runtime == "litert":
        return converted(fn, key, side, threads)
    if runtime == INT8:
        if int8 is None:
            raise ValueError(f"{key}: no int8 network to run; LOOKALIKE_RUNTIME=litert runs the float one")
        return LiteRTForward(int8, side, threads)
    raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")

"""Models by name (LOOKALIKE_MODEL): versioned, each a class that owns its preprocessing.

- `lite0-shelf` (default): EfficientNet-Lite0 with its last block and head conv fine-tuned
  (normalised softmax) on shop-shelf photos; shipped in lookalike/model/artifacts/ and
  rebuilt by `make model`.
- `lite0-shelf-640`: the same network, its vector projected to 640 dimensions (the top
  directions of its training vectors, `lookalike shrink-model`): half the bytes a stored
  vector costs, for catalogues of millions.
- `efficientnet-lite0`: the ImageNet network as is, global average pooled.

A model's id (`name@version`) is known without loading it: collections and payloads
record it, and vectors of two versions are never compared. The runtime `litert-int8` runs a
full-integer network whose vectors differ from the float ones: its version says so
(`1.<artifact hash>.int8-<int8 network hash>`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.config import ConfigError, get_settings

if TYPE_CHECKING:
    from lookalike.model.base import EmbeddingModel

ARTIFACTS = Path(__file__).parent / "artifacts"
DEFAULT_MODEL = "lite0-shelf"
INT8 = "litert-int8"
RUNTIMES = ("litert", INT8, "keras")  # what runs the network (model/runtime.py)


@functools.cache
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.is_file() else "missing"


@dataclass(frozen=True)
class ModelSpec:
    version: str
    load: Callable[[str, int, str, int], EmbeddingModel]  # (name, batch, runtime, threads)
    artifact: Path | None = None
    int8: Path | None = None  # its full-integer network (lookalike quantize-model)

    def version_for(self, name: str, runtime: str) -> str:
        """The version of the vectors this model gives when `runtime` runs it."""
        if runtime != INT8:
            return self.version
        if self.int8 is None or not self.int8.is_file():
            where = f" ({self.int8.name} is missing; `make model` rebuilds it)" if self.int8 else ""
            raise ConfigError(f"LOOKALIKE_RUNTIME={INT8}: model {name!r} has no int8 network{where}; "
                              "LOOKALIKE_RUNTIME=litert runs its float network")
        return f"{self.version}.int8-{_digest(self.int8)}"


def _imagenet(name: str, batch_size: int, runtime: str, threads: int) -> EmbeddingModel:
    from lookalike.model.imagenet import ImageNetLite0  # TensorFlow: only where models run

    return ImageNetLite0(name, MODELS[name].version_for(name, runtime), batch_size, runtime, threads)


def _shelf(name: str, batch_size: int, runtime: str, threads: int) -> EmbeddingModel:
    from lookalike.model.shelf import ShelfModel

    spec = MODELS[name]
    if spec.artifact is None or not spec.artifact.is_file():
        raise FileNotFoundError(f"model {name!r}: {spec.artifact} is missing; `make model` rebuilds it")
    return ShelfModel(name, spec.version_for(name, runtime), spec.artifact, batch_size, runtime,
                      threads, int8=spec.int8 if runtime == INT8 else None)


def _artifact_spec(name: str, network: str) -> ModelSpec:
    """`network`: the artifact whose int8 network this one runs (a projected model keeps the
    network of the one it was projected from; the model checks they match when it loads)."""
    npz = ARTIFACTS / f"{name}.npz"
    return ModelSpec(f"1.{_digest(npz)}", _shelf, npz, ARTIFACTS / f"{network}.int8.tflite")


MODELS: dict[str, ModelSpec] = {
    "efficientnet-lite0": ModelSpec("imagenet-57934424.gap224", _imagenet),
    DEFAULT_MODEL: _artifact_spec(DEFAULT_MODEL, DEFAULT_MODEL),
    "lite0-shelf-640": _artifact_spec("lite0-shelf-640", DEFAULT_MODEL),
}


def model_id(name: str, runtime: str | None = None) -> str:
    """`name@version` of the vectors `runtime` (default LOOKALIKE_RUNTIME) gives, without
    loading the model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return f"{name}@{MODELS[name].version_for(name, runtime or get_settings().runtime)}"


def load_model(name: str = DEFAULT_MODEL, batch_size: int = 32, runtime: str | None = None,
               threads: int | None = None) -> EmbeddingModel:
    """The model, its network run by `runtime` (default LOOKALIKE_RUNTIME: litert) on
    `threads` cores (default LOOKALIKE_MODEL_THREADS; 0: one per core, at most 4)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    settings = get_settings()
    runtime = runtime or settings.runtime
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    return MODELS[name].load(name, batch_size, runtime,
                             settings.model_threads if threads is None else threads)

"""Models by name (LOOKALIKE_MODEL): versioned, each a class that owns its preprocessing.

- `lite0-shelf` (default): EfficientNet-Lite0 with its last block and head conv fine-tuned
  (normalised softmax) on shop-shelf photos; shipped in lookalike/model/artifacts/ and
  rebuilt by `make model`.
- `lite0-shelf-640`: the same network, its vector projected to 640 dimensions (the top
  directions of its training vectors, `lookalike shrink-model`): half the bytes a stored
  vector costs, for catalogues of millions.
- `efficientnet-lite0`: the ImageNet network as is, global average pooled.

A model's id (`name@version`) is known without loading it: collections and payloads
record it, and vectors of two versions are never compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.config import get_settings

if TYPE_CHECKING:
    from lookalike.model.base import EmbeddingModel

ARTIFACTS = Path(__file__).parent / "artifacts"
DEFAULT_MODEL = "lite0-shelf"
RUNTIMES = ("litert", "keras")  # what runs the network (model/runtime.py)


@dataclass(frozen=True)
class ModelSpec:
    version: str
    load: Callable[[str, int, str, int], EmbeddingModel]  # (name, batch, runtime, threads)
    artifact: Path | None = None


def _imagenet(name: str, batch_size: int, runtime: str, threads: int) -> EmbeddingModel:
    from lookalike.model.imagenet import ImageNetLite0  # TensorFlow: only where models run

    return ImageNetLite0(name, MODELS[name].version, batch_size, runtime, threads)


def _shelf(name: str, batch_size: int, runtime: str, threads: int) -> EmbeddingModel:
    from lookalike.model.shelf import ShelfModel

    spec = MODELS[name]
    if spec.artifact is None or not spec.artifact.is_file():
        raise FileNotFoundError(f"model {name!r}: {spec.artifact} is missing; `make model` rebuilds it")
    return ShelfModel(name, spec.version, spec.artifact, batch_size, runtime, threads)


def _artifact_spec(name: str) -> ModelSpec:
    npz = ARTIFACTS / f"{name}.npz"
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()[:10] if npz.is_file() else "missing"
    return ModelSpec(f"1.{digest}", _shelf, npz)


MODELS: dict[str, ModelSpec] = {
    "efficientnet-lite0": ModelSpec("imagenet-57934424.gap224", _imagenet),
    DEFAULT_MODEL: _artifact_spec(DEFAULT_MODEL),
    "lite0-shelf-640": _artifact_spec("lite0-shelf-640"),
}


def model_id(name: str) -> str:
    """`name@version`, without loading the model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return f"{name}@{MODELS[name].version}"


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

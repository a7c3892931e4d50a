"""Images in, L2-normalised vectors out: the CNN behind both ingest and search.

Models are versioned artifacts, loaded by name (LOOKALIKE_MODEL):
- `lite0-shelf` (default): EfficientNet-Lite0 with its last block and head conv fine-tuned
  (normalised softmax) on shop-shelf photos; shipped in lookalike/models/ and rebuilt by
  `make model`. Its version is the hash of the artifact, so retraining changes it.
- `efficientnet-lite0`: the ImageNet network as is, global average pooled.
The Keras model is called directly inside a tf.function with a fixed input signature;
`model.predict` costs 45-120 ms of overhead per call. Concurrent searches share forward
passes through a QueryBatcher.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lookalike import backbone  # noqa: E402
from lookalike.imaging import to_model_input  # noqa: E402

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "lite0-shelf"


@dataclass(frozen=True)
class ModelSpec:
    # Names the weights and the pooling: vectors of two versions are never compared.
    version: str
    artifact: Path | None = None  # trained layers (lookalike.train); None: ImageNet as is


def _artifact(name: str) -> ModelSpec:
    npz = MODELS_DIR / f"{name}.npz"
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()[:10] if npz.is_file() else "missing"
    return ModelSpec(f"1.{digest}", npz)


MODELS: dict[str, ModelSpec] = {
    "efficientnet-lite0": ModelSpec("imagenet-57934424.gap224"),
    DEFAULT_MODEL: _artifact(DEFAULT_MODEL),
}


def model_id(name: str) -> str:
    """`name@version`: what collections and payloads record, known without loading the model."""
    return f"{name}@{MODELS[name].version}"


class Embedder:
    side = 224

    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        spec = MODELS[name]
        self.name, self.version, self.batch_size = name, spec.version, batch_size
        self._trained = None
        if spec.artifact is not None:
            if not spec.artifact.is_file():
                raise FileNotFoundError(f"model {name!r}: {spec.artifact} is missing; "
                                        "`make model` rebuilds it")
            from lookalike.train import TrainedEmbedder

            self._trained = TrainedEmbedder(spec.artifact, batch_size)
            self.dim, self.side = self._trained.dim, self._trained.side
            return
        self.dim = backbone.FEATURE_DIM
        model = backbone.pretrained_lite0(include_top=False)
        spec_in = tf.TensorSpec([None, self.side, self.side, 3], tf.float32)
        self._forward = tf.function(lambda x: model(x, training=False), input_signature=[spec_in])

    @property
    def model_id(self) -> str:
        return model_id(self.name)

    def _imagenet(self, images: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([to_model_input(img, self.side) for img in images]).astype(np.float32)
        parts = [self._forward(batch[i : i + self.batch_size]).numpy()
                 for i in range(0, len(batch), self.batch_size)]
        vectors = np.concatenate(parts)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_query(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 arrays of any size -> (n, dim) float32, unit length: one per photo."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self._trained.embed_query(images) if self._trained else self._imagenet(images)

    def embed_catalogue(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One (views, dim) array per catalogue image; each view is stored as a point."""
        if not images:
            return []
        if self._trained is None:
            return [vector[None] for vector in self._imagenet(images)]
        rows = self._trained.embed_catalogue(images)
        return list(rows.reshape(len(images), self._trained.n_views, self.dim))

    def warmup(self) -> None:
        """Trace the graph once so the first request does not pay for it."""
        self.embed_query([np.zeros((self.side, self.side, 3), np.uint8)])


class QueryBatcher:
    """Concurrent searches share forward passes: the queries waiting when the model becomes
    free go through it as one batch, because per image a batch costs much less than single
    passes (measured on 2 cores: batch 32 at 0.6x of batch 1 per image), and one thread
    running the model at a time keeps latency even instead of 8 passes fighting over the
    cores. A lone query goes at once: there is no waiting window.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 8) -> None:
        self.embedder, self.max_batch = embedder, max(1, max_batch)
        self._waiting: queue.SimpleQueue[tuple[np.ndarray, Future]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="lookalike-embed", daemon=True).start()

    def embed_query(self, image: np.ndarray) -> np.ndarray:
        """One photo (RGB uint8, any size) -> its unit vector; raises what the model raised."""
        done: Future = Future()
        # Resized here, in the caller's thread: only the forward pass is serialised.
        self._waiting.put((to_model_input(image, self.embedder.side), done))
        return done.result()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self.embedder.embed_query([image for image, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for (_, done), vector in zip(batch, vectors):
                done.set_result(vector)

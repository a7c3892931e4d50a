"""`lite0-shelf`: EfficientNet-Lite0 with its tail fine-tuned on shop-shelf photos.

The artifact (`<name>.npz` + `<name>.json`, written by lookalike.training) holds only
the trained layers and the constants; the rest is the ImageNet network. Its version is
the artifact's hash, so retraining changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from lookalike.model import backbone
from lookalike.model.base import EmbeddingModel, unit
from lookalike.model.runtime import make_forward
from lookalike.model.tail import gem, split_model
from lookalike.model.views import ingest_views


def artifact_stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".npz", ".json") else p


def apply_artifact(tail: tf.keras.Model, arrays) -> None:
    """Load the trained layers (`layer/<name>/<j>` arrays) into the tail."""
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for k in arrays.files if hasattr(arrays, "files") else arrays:
        if k.startswith("layer/"):
            _, nm, j = k.split("/")
            by_layer.setdefault(nm, {})[int(j)] = np.asarray(arrays[k], np.float32)
    for nm, ws in by_layer.items():
        tail.get_layer(nm).set_weights([ws[j] for j in range(len(ws))])


def network_digest(arrays, config: dict) -> str:
    """Names the network an artifact defines: its trained layers and the settings that shape
    the graph, not what comes after it (projection, means). An int8 network records the
    digest it was quantized from, so a retrained model never runs a stale one."""
    h = hashlib.sha256(json.dumps({k: config.get(k) for k in ("split", "side", "gem_p")},
                                  sort_keys=True).encode())
    for key in sorted(k for k in arrays.files if k.startswith("layer/")):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()[:16]


def int8_meta_path(network: Path) -> Path:
    return network.with_suffix(".json")  # lite0-shelf.int8.tflite -> lite0-shelf.int8.json


class ShelfModel(EmbeddingModel):
    def __init__(self, name: str, version: str, artifact: str | Path, batch_size: int = 32,
                 runtime: str = "keras", threads: int = 0, int8: Path | None = None) -> None:
        self.name, self.version, self.batch_size, self.runtime = name, version, batch_size, runtime
        stem = artifact_stem(artifact)
        self.meta = json.loads(Path(f"{stem}.json").read_text())
        config = self.meta["config"]
        arrays = np.load(f"{stem}.npz")
        trunk, tail = split_model(config.get("split", 13))
        apply_artifact(tail, arrays)
        self.proj = np.asarray(arrays["proj"], np.float32) if "proj" in arrays.files else None
        self.cat_mean = arrays["cat_mean"] if "cat_mean" in arrays.files else None
        self.query_mean = arrays["query_mean"] if "query_mean" in arrays.files else None
        self.side, self.n_views = config.get("side", 224), config.get("n_views", 1)
        self.seed, self.view_kind = config.get("seed", 0), config.get("view_kind", "clutter")
        self.dim = self.proj.shape[1] if self.proj is not None else backbone.FEATURE_DIM
        p = config.get("gem_p", 1.0)
        spec = tf.TensorSpec([None, self.side, self.side, 3], tf.float32)
        self.network = tf.function(lambda x: gem(tail(trunk(x, training=False), training=False), p),
                                   input_signature=[spec])
        if int8 is not None:
            self._check_int8(int8, network_digest(arrays, config))
        self.forward = make_forward(runtime, self.network, self.model_id, self.side, batch_size,
                                    threads, int8)

    def _check_int8(self, network: Path, digest: str) -> None:
        try:
            made_from = json.loads(int8_meta_path(network).read_text()).get("network")
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"{network}: its metadata is unreadable ({exc}); "
                                    "`make model` rebuilds it") from None
        if made_from != digest:
            raise ValueError(f"{network.name} was quantized from another network than model "
                             f"{self.name!r}'s (retrained since?); `make model` rebuilds it")

    def _embed(self, batch: Sequence[np.ndarray], mean: np.ndarray | None) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        v = self.forward(np.stack(batch).astype(np.float32))
        v = unit(v @ self.proj if self.proj is not None else v)
        return (unit(v - mean) if mean is not None else v).astype(np.float32)

    def embed_prepared(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return self._embed(batch, self.query_mean)

    def embed_catalogue(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        # Views are seeded from the image's pixels: the same image always gives the same rows.
        views = [v for img in images
                 for v in ingest_views(img, self.n_views, self.seed, self.side, self.view_kind)]
        rows = self._embed(views, self.cat_mean)
        return list(rows.reshape(len(images), self.n_views, self.dim))

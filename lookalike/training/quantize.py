"""A trained model's full-integer (int8) LiteRT network, calibrated on its training images.

Full-integer quantisation needs the range of every activation, measured on inputs like the
ones it will see: the model's own training photos (as searched: their middle) and catalogue
images (whole). The network is made once, here, and shipped beside the artifact
(`<stem>.int8.tflite` + `.int8.json`), so the query service and every worker run the same
one and write comparable vectors; the registry names its hash in the model id. On 2 cores
XNNPACK runs it in 0.57-0.66x the float network's time (bench/forward.py).

    lookalike quantize-model lookalike/model/artifacts/lite0-shelf ../shared/data/grocerystore_dev
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from lookalike.model.base import unit
from lookalike.model.runtime import LiteRTForward
from lookalike.model.shelf import ShelfModel, artifact_stem, int8_meta_path, network_digest
from lookalike.training.data import Dataset

CALIBRATION_IMAGES = 256  # activation ranges settle well before (200-300 is the usual advice)


def calibration_inputs(model: ShelfModel, ds: Dataset, n: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """Every catalogue image and evenly spaced photos, `n` in all, prepared as the service
    prepares them."""
    photos = max(0, n - len(ds.catalogue))
    step = max(1, len(ds.photos) // max(1, photos))
    picked = ds.photos[::step][:photos]
    return ([model.prepare(image) for image in ds.catalogue[:n]]
            + [model.prepare(model.query_views(photo)[0]) for photo in picked])


def quantize(source: str | Path, ds: Dataset, log=print) -> Path:
    """Writes `<source>.int8.tflite` and `.int8.json`; returns the .tflite path."""
    started = time.time()
    stem = artifact_stem(source)
    model = ShelfModel(stem.name, "source", stem, runtime="keras")
    inputs = calibration_inputs(model, ds)
    if len(inputs) < 32:
        raise ValueError(f"{len(inputs)} calibration images are too few to measure activation "
                         "ranges; give at least 32")

    def representative() -> Iterator[list[np.ndarray]]:
        for x in inputs:
            yield [x[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [model.network.get_concrete_function()], model.network)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # no float op left
    blob = converter.convert()
    out = Path(f"{stem}.int8.tflite")
    out.write_bytes(blob)
    # How far its vectors are from the float network's, on the calibration images: a record
    # for whoever compares two builds (the bench measures Recall@1 on the dev sets).
    x = np.stack(inputs).astype(np.float32)
    reference = unit(model.forward(x))
    cosine = np.sum(unit(LiteRTForward(out, model.side, 1)(x)) * reference, axis=1)
    arrays = np.load(f"{stem}.npz")
    meta = {"format": 1, "network": network_digest(arrays, model.meta["config"]),
            "quantized_from": stem.name, "tensorflow": tf.__version__,
            "calibration": {"catalogue_images": min(len(ds.catalogue), len(inputs)),
                            "photos": len(inputs) - min(len(ds.catalogue), len(inputs))},
            "cosine_to_float": {"mean": round(float(cosine.mean()), 4),
                                "min": round(float(cosine.min()), 4)}}
    int8_meta_path(out).write_text(json.dumps(meta, indent=2) + "\n")
    log(f"saved {out} ({len(blob) / 1e6:.1f} MB): calibrated on {len(inputs)} images, cosine to "
        f"the float vectors mean {cosine.mean():.4f}, min {cosine.min():.4f} "
        f"({time.time() - started:.0f} s)")
    return out

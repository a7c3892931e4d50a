"""The frozen trunk's output on augmented views of every labelled image, computed once.

Training then runs only on the tail, so a run fits a 2-core CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lookalike.model.tail import forward_batched
from lookalike.model.views import augment_photo, catalogue_to_store, foreground_mask
from lookalike.training.config import TrainConfig
from lookalike.training.data import Dataset


@dataclass
class TrainingSet:
    features: np.ndarray          # [n, h, w, c] float16: trunk output on augmented images
    labels: np.ndarray            # [n] int
    domain: np.ndarray            # [n] 0 = catalogue-derived, 1 = photo
    classes: list[str] = field(default_factory=list)


CATALOGUE, PHOTO = 0, 1  # TrainingSet.domain


def build_training_set(ds: Dataset, trunk_fn, cfg: TrainConfig,
                       clutter_for: dict[str, list[np.ndarray]] | None = None, log=print) -> TrainingSet:
    """Frozen-trunk features of n_aug_photo views per photo and n_aug_catalogue per catalogue image.

    clutter_for: product -> store photos its composites may use as background
    (default: the photos of every other product in ds)."""
    classes = sorted(set(ds.catalogue_labels) | set(ds.photo_labels))
    class_index = {c: i for i, c in enumerate(classes)}
    rng = np.random.default_rng(cfg.seed)
    features, labels, domain = [], [], []

    def add_views(views, view_labels, view_domain):
        x = np.stack(views).astype(np.float32)
        features.append(forward_batched(trunk_fn, x).astype(np.float16))
        labels.extend(view_labels)
        domain.extend(view_domain)

    started = time.time()
    for img, lab in zip(ds.catalogue, ds.catalogue_labels):
        clutter = clutter_for[lab] if clutter_for is not None else \
            [p for p, label in zip(ds.photos, ds.photo_labels) if label != lab]
        alpha = foreground_mask(img)
        views = [catalogue_to_store(img, rng, clutter, cfg.side, alpha) for _ in range(cfg.n_aug_catalogue)]
        add_views(views, [class_index[lab]] * len(views), [CATALOGUE] * len(views))
    pending, pending_labels = [], []
    for img, lab in zip(ds.photos, ds.photo_labels):
        for _ in range(cfg.n_aug_photo):
            pending.append(augment_photo(img, rng, cfg.side))
            pending_labels.append(class_index[lab])
        if len(pending) >= 256:
            add_views(pending, pending_labels, [PHOTO] * len(pending))
            pending, pending_labels = [], []
    if pending:
        add_views(pending, pending_labels, [PHOTO] * len(pending))
    log(f"training set: {sum(len(f) for f in features)} views of {len(classes)} products "
        f"in {time.time() - started:.0f}s")
    return TrainingSet(np.concatenate(features), np.asarray(labels), np.asarray(domain), classes)

"""Fine-tune the embedder on labelled product photos and save a small model artifact.

Pipeline (everything deterministic for a given ``seed``):

1. Data (``data``): ``load_benchmark(root, products)`` reads the benchmark layout
   (gallery/ + gallery.csv, queries/ + ground_truth.csv) or ``load_folders(root)`` a
   folder per product holding ``catalogue/`` and ``photos/`` images. Both give a
   ``Dataset``.
2. Augmentation (``lookalike.model.views``: ``augment_photo``, ``catalogue_to_store``):
   photos get rotation, scale/aspect crop, flip, colour; catalogue images are cut out of
   their white background and composited onto clutter (crops of *other* products' store
   photos, or synthetic shelves) with perspective, piles of several instances, lighting
   gradients, blur and noise.
3. The ImageNet EfficientNet-Lite0 trunk is frozen up to block ``split`` - 1; its
   output on ``n_aug_*`` augmented views per image is computed once
   (``training_set.build_training_set``) and training runs only on the tail (blocks
   ``split``..15 + head conv, 7x7 at 224 px), so it fits a 2-core CPU.
4. ``fit.fit``: ``mode="head"`` trains a linear projection on the frozen pooled feature;
   ``mode="unfreeze"`` trains the last ``unfreeze`` MBConv blocks + head conv (BN
   statistics frozen) and keeps the 1280-d pooled feature as the embedding.
   ``loss="ce"`` is softmax cross-entropy on a linear classifier, ``loss="cosine"``
   the normalised softmax (cosine classifier, temperature 0.05) - proxies are thrown
   away after training.
5. Product-agnostic constants learnt on the training data (``fit.fit_domain_means``, with
   ``domain_means``): the mean embedding of each domain (catalogue ingest views, store
   photos), subtracted before L2 normalisation.
6. ``artifact.save_artifact`` writes ``<path>.npz`` (trained layers only, float16, +
   float32 constants) and ``<path>.json`` (config and metrics).

``train(ds, out, cfg)`` runs steps 2-6 in one call; ``lookalike train --help`` or
``python -m lookalike.training --help`` from the command line.

Serving loads the artifact with ``lookalike.model.shelf.ShelfModel`` (the shipped one by
name: ``lookalike.model.load_model("lite0-shelf")``)::

    model = ShelfModel("lite0-shelf", version, "/path/model")   # or the .npz / .json path
    G = model.embed_catalogue(images)   # one [model.n_views, model.dim] array per image
    Q = model.embed_query(images)       # [n, model.dim]
    # a product's score for a query = max over its catalogue rows of Q @ G.T

All rows are float32 and unit length. Catalogue views are seeded from the image's
pixels, so the same image always gives the same rows wherever it sits in a batch.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from lookalike.training.artifact import save_artifact  # noqa: E402
from lookalike.training.cli import train  # noqa: E402
from lookalike.training.config import TrainConfig  # noqa: E402
from lookalike.training.data import Dataset, load_benchmark, load_dataset, load_folders  # noqa: E402
from lookalike.training.fit import CosineClassifier, TrainedTail, fit, fit_domain_means  # noqa: E402
from lookalike.training.training_set import TrainingSet, build_training_set  # noqa: E402

__all__ = [
    "CosineClassifier", "Dataset", "TrainConfig", "TrainedTail", "TrainingSet", "build_training_set", "fit",
    "fit_domain_means", "load_benchmark", "load_dataset", "load_folders", "save_artifact", "train",
]

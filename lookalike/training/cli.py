"""`train()`: data in, artifact out, in one call; `main()`: its command line.

    lookalike train DATA OUT [--products a,b] [--mode unfreeze] [--steps 200] ...
    python -m lookalike.training --help
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import tensorflow as tf

from lookalike.model import backbone
from lookalike.model.shelf import artifact_stem
from lookalike.model.tail import split_model
from lookalike.training.artifact import save_artifact
from lookalike.training.config import TrainConfig
from lookalike.training.data import Dataset, load_dataset
from lookalike.training.fit import TrainedTail, fit, fit_domain_means
from lookalike.training.training_set import build_training_set

DESCRIPTION = "Train the embedder on labelled product photos and save a small model artifact."


def train(ds: Dataset, out: str | Path, cfg: TrainConfig = TrainConfig(), log=print) -> TrainedTail:
    """Training set, fit, domain means if cfg asks, then OUT.npz + OUT.json."""
    started = time.time()
    full = backbone.pretrained_lite0(include_top=False)
    trunk, _ = split_model(cfg.split, full)
    trunk_fn = tf.function(lambda x: trunk(x, training=False), reduce_retracing=True)
    ts = build_training_set(ds, trunk_fn, cfg, log=log)
    tr = fit(ts, cfg, full, log=log)
    if cfg.domain_means:
        fit_domain_means(tr, trunk_fn, ds)
    tr.seconds = time.time() - started
    save_artifact(tr, out, {"data": {"products": ts.classes, "photos": len(ds.photos),
                                     "catalogue_images": len(ds.catalogue)}})
    npz = f"{artifact_stem(out)}.npz"
    log(f"saved {npz} ({os.path.getsize(npz) / 1e6:.1f} MB) in {tr.seconds:.0f}s")
    return tr


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> None:
    ap = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    ap.add_argument("data", help="benchmark folder (gallery.csv...) or a folder per product")
    ap.add_argument("out", help="artifact path stem: writes OUT.npz and OUT.json")
    ap.add_argument("--products", help="comma-separated subset")
    for k, v in asdict(TrainConfig()).items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v) if not isinstance(v, bool) else int, default=v)
    a = ap.parse_args(argv)
    cfg = TrainConfig(**{k: (bool(getattr(a, k)) if isinstance(v, bool) else getattr(a, k))
                         for k, v in asdict(TrainConfig()).items()})
    products = a.products.split(",") if a.products else None
    train(load_dataset(a.data, products), a.out, cfg)

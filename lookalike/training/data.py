"""Labelled product images: the benchmark layout or a folder per product, as a `Dataset`."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.imaging import decode

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass
class Dataset:
    """Decoded RGB images with their product ids; catalogue (packshot) and photo sides."""

    catalogue: list[np.ndarray]
    catalogue_labels: list[str]
    photos: list[np.ndarray]
    photo_labels: list[str]


def _read_image(path: Path) -> np.ndarray:
    return decode(path.read_bytes())


def load_benchmark(root: str | Path, products: Sequence[str] | None = None,
                   with_photos: bool = True) -> Dataset:
    """root/gallery.csv + gallery/ (catalogue) and root/ground_truth.csv + queries/ (photos)."""
    root, keep = Path(root), set(products) if products is not None else None
    ds = Dataset([], [], [], [])
    with (root / "gallery.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            if keep is None or r["product_id"] in keep:
                ds.catalogue.append(_read_image(root / "gallery" / r["gallery_file"]))
                ds.catalogue_labels.append(r["product_id"])
    if with_photos:
        with (root / "ground_truth.csv").open(newline="") as f:
            for r in csv.DictReader(f):
                if keep is None or r["product_id"] in keep:
                    ds.photos.append(_read_image(root / "queries" / r["query_file"]))
                    ds.photo_labels.append(r["product_id"])
    return ds


def load_folders(root: str | Path, products: Sequence[str] | None = None) -> Dataset:
    """root/<product>/catalogue/*.jpg and root/<product>/photos/*.jpg."""
    ds = Dataset([], [], [], [])
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if products is not None and d.name not in products:
            continue
        for sub, imgs, labels in (("catalogue", ds.catalogue, ds.catalogue_labels),
                                  ("photos", ds.photos, ds.photo_labels)):
            for f in sorted((d / sub).glob("*")) if (d / sub).is_dir() else []:
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    imgs.append(_read_image(f))
                    labels.append(d.name)
    return ds


def load_dataset(root: str | Path, products: Sequence[str] | None = None) -> Dataset:
    """The benchmark layout where root holds gallery.csv, else a folder per product."""
    root = Path(root)
    return load_benchmark(root, products) if (root / "gallery.csv").is_file() else load_folders(root, products)

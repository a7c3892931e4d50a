"""Where the FindDuplicates threshold comes from: cosine similarity (of the shipped model's
catalogue vectors) between a catalogue image and edited copies of it, against the closest
pair of *different* products' catalogue images and photos of the same product.

    .venv/bin/python scripts/duplicate_threshold.py ../shared/data/grocerystore_dev \
        ../shared/data/smvs_dvd_dev
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from lookalike.imaging import decode
from lookalike.model import DEFAULT_MODEL, load_model

EDITS = {
    "jpeg q40": lambda im: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 40])[1],
                                        cv2.IMREAD_UNCHANGED),
    "half size": lambda im: cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
    "crop 80 %": lambda im: im[im.shape[0] // 10: -im.shape[0] // 10,
                               im.shape[1] // 10: -im.shape[1] // 10],
    "brighter": lambda im: cv2.convertScaleAbs(im, alpha=1.2, beta=20),
    "flip": lambda im: im[:, ::-1].copy(),
    "rotate 10": lambda im: cv2.warpAffine(im, cv2.getRotationMatrix2D(
        (im.shape[1] / 2, im.shape[0] / 2), 10, 1.0), (im.shape[1], im.shape[0]),
        borderMode=cv2.BORDER_REFLECT),
    "text overlay": lambda im: cv2.putText(im.copy(), "SALE -30%", (im.shape[1] // 10,
                                           im.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX,
                                           im.shape[1] / 300, (255, 255, 255), 3),
}


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def measure(root: Path, model, photos: int, threshold: float) -> dict:
    gallery = rows(root / "gallery.csv")
    images = [decode((root / "gallery" / r["gallery_file"]).read_bytes()) for r in gallery]
    products = [r["product_id"] for r in gallery]
    vectors = np.concatenate(model.embed_catalogue(images))
    cos = vectors @ vectors.T
    different = np.array([[a != b for b in products] for a in products])
    closest = float(cos[different].max())
    edited = {name: [float(model.embed_catalogue([edit(im)])[0][0] @ v)
                     for im, v in zip(images, vectors)] for name, edit in EDITS.items()}
    truth = rows(root / "ground_truth.csv")[:photos]
    shots = [decode((root / "queries" / r["query_file"]).read_bytes()) for r in truth]
    index = {p: i for i, p in enumerate(products)}
    shot_vectors = np.concatenate(model.embed_catalogue(shots))
    same_shot = [float(v @ vectors[index[r["product_id"]]]) for v, r in zip(shot_vectors, truth)]
    return {"images": len(images), "closest_different_products": round(closest, 4),
            "edits_min": {k: round(min(v), 4) for k, v in edited.items()},
            "edits_p05": {k: round(float(np.percentile(v, 5)), 4) for k, v in edited.items()},
            f"edits_found_at_{threshold}": {k: round(float(np.mean(np.array(v) >= threshold)), 3)
                                            for k, v in edited.items()},
            f"different_pairs_at_{threshold}": int(np.triu(cos * different >= threshold).sum()),
            "same_product_photo_p50": round(float(np.median(same_shot)), 4),
            "same_product_photo_p95": round(float(np.percentile(same_shot, 95)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--photos", type=int, default=200, help="same-product photos per set")
    parser.add_argument("--threshold", type=float, default=0.93)
    args = parser.parse_args()
    model = load_model(DEFAULT_MODEL)
    print(json.dumps({str(d): measure(d, model, args.photos, args.threshold) for d in args.datasets}, indent=1))


if __name__ == "__main__":
    main()

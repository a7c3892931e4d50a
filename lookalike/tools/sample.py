"""A small sample catalogue, generated from the photos that scikit-image ships (BSD).

Each picture is a "product" with one clean catalogue image; "store photos" of it are
made by cropping, rotating, relighting and blurring it over a cluttered background,
so `make run` shows retrieval working without any third-party catalogue.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from skimage import data

PRODUCTS = {
    # product_id: (skimage loader, category, title)
    "coffee-cup": ("coffee", "kitchen", "Espresso cup and saucer"),
    "cat-poster": ("chelsea", "posters", "Tabby cat poster"),
    "astronaut-print": ("astronaut", "posters", "Astronaut art print"),
    "rocket-model": ("rocket", "toys", "Rocket launch model"),
    "motorbike": ("stereo_motorcycle", "toys", "Motorbike model kit"),
    "galaxy-puzzle": ("hubble_deep_field", "puzzles", "Deep field galaxy puzzle"),
    "coin-set": ("coins", "collectibles", "Greek coin set"),
    "camera-print": ("camera", "posters", "Cameraman print"),
    "brick-tile": ("brick", "home", "Brick wall tile"),
    "lawn-seed": ("grass", "garden", "Lawn seed mix"),
    "gravel-bag": ("gravel", "garden", "Decorative gravel bag"),
    "moon-lamp": ("moon", "home", "Moon surface lamp"),
    "stain-kit": ("immunohistochemistry", "lab", "Tissue stain kit"),
    "retina-chart": ("retina", "lab", "Retina anatomy chart"),
}


def _rgb(name: str) -> np.ndarray:
    img = getattr(data, name)()
    img = img[0] if isinstance(img, tuple) else img  # stereo pairs: the left view
    return np.dstack([img] * 3) if img.ndim == 2 else img[..., :3]


def store_photo(product: np.ndarray, rng: np.random.Generator, side: int = 480) -> np.ndarray:
    """The product, cropped and turned, on a busy shelf-like background, under other light."""
    background = np.full((side, side, 3), rng.integers(60, 200, 3), np.uint8)
    for _ in range(40):  # boxes of other colours, like packs on a shelf
        x, y = (int(v) for v in rng.integers(0, side, 2))
        w, h = (int(v) for v in rng.integers(20, side // 3, 2))
        cv2.rectangle(background, (x, y), (x + w, y + h), rng.integers(0, 255, 3).tolist(), -1)
    h, w = product.shape[:2]
    crop = rng.uniform(0.75, 0.95)
    ch, cw = int(h * crop), int(w * crop)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    item = product[y0 : y0 + ch, x0 : x0 + cw]
    scale = rng.uniform(0.6, 0.9) * side / max(ch, cw)
    item = cv2.resize(item, (int(cw * scale), int(ch * scale)), interpolation=cv2.INTER_AREA)
    angle = rng.uniform(-15, 15)
    ih, iw = item.shape[:2]
    turn = cv2.getRotationMatrix2D((iw / 2, ih / 2), angle, 1.0)
    mask = cv2.warpAffine(np.full((ih, iw), 255, np.uint8), turn, (iw, ih))
    item = cv2.warpAffine(item, turn, (iw, ih))
    y, x = int(rng.integers(0, side - ih + 1)), int(rng.integers(0, side - iw + 1))
    region = background[y : y + ih, x : x + iw]
    region[mask > 0] = item[mask > 0]
    photo = background.astype(np.float32) * rng.uniform(0.7, 1.2) + rng.uniform(-20, 20)
    photo = cv2.GaussianBlur(np.clip(photo, 0, 255).astype(np.uint8), (0, 0), rng.uniform(0.5, 1.5))
    return photo


def generate(root: Path, photos_per_product: int = 2, seed: int = 7) -> tuple[Path, Path]:
    """Write root/catalogue.csv + root/catalogue/*.png and root/queries/*.jpg (+ labels CSV)."""
    rng = np.random.default_rng(seed)
    images = {pid: _rgb(loader) for pid, (loader, _, _) in PRODUCTS.items()}
    (root / "catalogue").mkdir(parents=True, exist_ok=True)
    (root / "queries").mkdir(parents=True, exist_ok=True)
    catalogue_csv, truth_csv = root / "catalogue.csv", root / "queries.csv"
    with catalogue_csv.open("w", newline="") as cat, truth_csv.open("w", newline="") as truth:
        cat_rows, truth_rows = csv.writer(cat), csv.writer(truth)
        cat_rows.writerow(["image_uri", "image_id", "product_id", "category", "title", "labels"])
        truth_rows.writerow(["query_file", "product_id"])
        for pid, (_, category, title) in PRODUCTS.items():
            path = root / "catalogue" / f"{pid}.png"
            cv2.imwrite(str(path), cv2.cvtColor(images[pid], cv2.COLOR_RGB2BGR))
            cat_rows.writerow([f"catalogue/{pid}.png", "front", pid, category, title, "sample"])
            for n in range(photos_per_product):
                photo = store_photo(images[pid], rng)
                name = f"{pid}-{n + 1}.jpg"
                cv2.imwrite(str(root / "queries" / name), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 88])
                truth_rows.writerow([name, pid])
    return catalogue_csv, truth_csv

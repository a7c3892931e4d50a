"""Synthetic views of a product image: a photo's augmentations and a catalogue image
composited onto a shelf.

Training learns from them; a model trained with several catalogue views per image stores
the same deterministic views at ingest (`ingest_views`), so they are part of its
preprocessing.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from lookalike.model.preprocess import to_model_input


def _colour(img: np.ndarray, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    x = img.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(1 - strength, 1 + strength)  # saturation
    m = x.mean()
    x = m + (x - m) * rng.uniform(1 - strength, 1 + strength)  # contrast
    x = x * rng.uniform(1 - strength, 1 + strength) * rng.uniform(0.9, 1.1, 3)  # brightness, cast
    return np.clip(x, 0, 255).astype(np.uint8)


def _blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random()
    if u < 0.35:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    if u < 0.5:  # motion blur
        k = int(rng.integers(3, 9))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2] = 1 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1)
        kern = cv2.warpAffine(kern, rot, (k, k))
        return cv2.filter2D(img, -1, kern / max(kern.sum(), 1e-6))
    return img


def augment_photo(img: np.ndarray, rng: np.random.Generator, side: int = 224) -> np.ndarray:
    """Rotation +-15 deg, crop of 45-100 % of the area (aspect 3/4..4/3), flip, colour, blur."""
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), 1.0)
    img = cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    area, aspect = rng.uniform(0.45, 1.0), np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, round(w * np.sqrt(area * aspect))))
    ch = int(min(h, round(h * np.sqrt(area / aspect))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = to_model_input(img[y0:y0 + ch, x0:x0 + cw], side)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return _blur(_colour(np.ascontiguousarray(img), rng), rng)


def foreground_mask(cat: np.ndarray) -> np.ndarray:
    """Float 0..1 alpha of a product on a (near-)white background."""
    diff = 255 - cat.astype(np.int16).min(axis=2)
    mask = (diff > 20).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n > 1:  # drop specks
        keep = np.zeros(n, np.uint8)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.01 * mask.size
        mask = keep[lab]
    # fill holes: background = what is connected to the border
    inv = (1 - mask).astype(np.uint8)
    ff = inv.copy()
    cv2.floodFill(ff, np.zeros((ff.shape[0] + 2, ff.shape[1] + 2), np.uint8), (0, 0), 2)
    mask = np.where(ff == 2, 0, 1).astype(np.uint8) if inv[0, 0] else mask
    if mask.mean() < 0.05 or mask.mean() > 0.97:  # not a white-background image
        return np.ones(cat.shape[:2], np.float32)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)


def synthetic_clutter(rng: np.random.Generator, side: int) -> np.ndarray:
    """Boxes and blobs of other colours, like packs on a shelf, slightly blurred."""
    bg = np.empty((side, side, 3), np.uint8)
    bg[:] = rng.integers(40, 220, 3)
    for _ in range(int(rng.integers(15, 40))):
        x, y = (int(v) for v in rng.integers(-side // 4, side, 2))
        w, h = (int(v) for v in rng.integers(side // 12, side // 2, 2))
        col = rng.integers(0, 256, 3).tolist()
        if rng.random() < 0.5:
            cv2.rectangle(bg, (x, y), (x + w, y + h), col, -1)
        else:
            cv2.ellipse(bg, (x, y), (w // 2, h // 2), 0, 0, 360, col, -1)
    return cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.5, 2.5))


def _clutter_crop(clutter: Sequence[np.ndarray], rng: np.random.Generator, side: int) -> np.ndarray:
    if not len(clutter):
        return synthetic_clutter(rng, side)
    src = clutter[int(rng.integers(len(clutter)))]
    h, w = src.shape[:2]
    s = int(min(h, w) * rng.uniform(0.4, 1.0))
    y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    bg = to_model_input(src[y0:y0 + s, x0:x0 + s], side)
    return bg[:, ::-1].copy() if rng.random() < 0.5 else bg


def _paste(canvas: np.ndarray, obj: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
           scale: float, centre: tuple[float, float]) -> None:
    side = canvas.shape[0]
    h, w = obj.shape[:2]
    f = scale * side / max(h, w)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src - [w / 2, h / 2]) * f
    ang = np.deg2rad(rng.uniform(-25, 25))
    dst = dst @ np.float32([[np.cos(ang), np.sin(ang)], [-np.sin(ang), np.cos(ang)]])
    dst = dst + rng.uniform(-0.12, 0.12, (4, 2)) * scale * side + centre  # perspective
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    o = cv2.warpPerspective(obj, m, (side, side), flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(alpha, m, (side, side), flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = canvas * (1 - a) + o.astype(np.float32) * a


def catalogue_to_store(cat: np.ndarray, rng: np.random.Generator, clutter: Sequence[np.ndarray] = (),
                       side: int = 224, alpha: np.ndarray | None = None) -> np.ndarray:
    """The catalogue product cut out and composited as on a shelf or in a pile."""
    alpha = foreground_mask(cat) if alpha is None else alpha
    canvas = _clutter_crop(clutter, rng, side).astype(np.float32)
    if rng.random() < 0.4:  # a pile: several instances behind the main one
        for _ in range(int(rng.integers(1, 5))):
            _paste(canvas, cat, alpha, rng, rng.uniform(0.3, 0.6), tuple(rng.uniform(0.1, 0.9, 2) * side))
        scale = rng.uniform(0.4, 0.75)
    else:
        scale = rng.uniform(0.45, 1.0)
    _paste(canvas, cat, alpha, rng, scale, tuple(side / 2 + rng.uniform(-0.15, 0.15, 2) * side))
    # lighting: global gain, colour cast, linear gradient
    gy, gx = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    d = rng.normal(size=2)
    grad = 1 + rng.uniform(0, 0.5) * (gx * d[0] + gy * d[1]) / max(np.linalg.norm(d), 1e-6)
    canvas *= grad[..., None] * rng.uniform(0.65, 1.25) * rng.uniform(0.88, 1.12, 3)
    canvas += rng.normal(0, rng.uniform(0, 5), canvas.shape)
    img = np.clip(canvas, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
    return _blur(_colour(img, rng, 0.2), rng)


def _image_seed(img: np.ndarray, seed: int) -> int:
    return zlib.crc32(np.ascontiguousarray(img).tobytes()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)


def ingest_views(cat: np.ndarray, n_views: int, seed: int = 0, side: int = 224,
                 kind: str = "clutter") -> list[np.ndarray]:
    """View 0 is the image itself; the rest are deterministic augmentations of it:
    'clutter' = composited onto synthetic shelves, 'photo' = crop/rotate/colour on white."""
    views = [to_model_input(cat, side)]
    if n_views == 1:  # the shipped model: no mask, no hash (they cost more than the decode)
        return views
    rng = np.random.default_rng(_image_seed(cat, seed))
    alpha = foreground_mask(cat) if kind == "clutter" else None
    for _ in range(n_views - 1):
        views.append(catalogue_to_store(cat, rng, (), side, alpha) if kind == "clutter"
                     else augment_photo(cat, rng, side))
    return views

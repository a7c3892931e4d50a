"""Multi-product scenes for the per-object benchmark, generated from benchmark catalogues.

Each scene shows 2-6 catalogue products placed with perspective, rotation, scale, partial
occlusion (later products cover earlier ones), lighting gradients, a colour cast, noise, blur
and JPEG compression, on synthetic shelf clutter. The ground truth of each product is its
catalogue image's outline in the scene (the four warped corners), which is what spatial
verification reports. Products come in two kinds, scored apart:
- `printed`: flat printed products and packaging (covers, cartons, packs);
- `produce`: loose fruit and vegetables (no target: they have no stable texture to match).

Fixed seed, so the same catalogues always give the same scenes. Written to a folder:
`scenes/*.jpg`, `scenes.json` (the ground truth) and `catalogue.csv` (what to ingest).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from lookalike.model.views import foreground_mask, synthetic_clutter
from lookalike.tools.catalogue import read_catalogue

PRODUCE = {"Fruit", "Vegetables"}  # GroceryStoreDataset top categories of loose produce
SCENE_SIZE = (1280, 960)


@dataclass(frozen=True)
class CatalogueImage:
    path: Path
    product_id: str
    image_id: str
    category: str
    kind: str  # "printed" | "produce"


@dataclass
class Placed:
    product_id: str
    kind: str
    polygon: list[list[float]]  # the catalogue image's corners in the scene, clockwise from top-left


def catalogue_images(source: Path) -> list[CatalogueImage]:
    """A catalogue's local images (any layout `lookalike ingest` reads). A benchmark folder's
    products.csv tells loose produce (top_category Fruit or Vegetables) from the rest."""
    tops: dict[str, str] = {}
    if (source / "products.csv").is_file():
        with (source / "products.csv").open(newline="") as f:
            tops = {r["product_id"]: r.get("top_category", "") for r in csv.DictReader(f)}
    prefix = source.stem if source.is_file() else source.name
    return [CatalogueImage(Path(e.uri), e.product_id, f"{prefix}-{e.image_id or Path(e.uri).stem}",
                           e.category, "produce" if tops.get(e.product_id) in PRODUCE else "printed")
            for e in read_catalogue(source) if not e.is_remote and Path(e.uri).is_file()]


def _load(image: CatalogueImage) -> np.ndarray:
    bgr = cv2.imread(str(image.path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{image.path}: not an image OpenCV can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _quad(rng: np.random.Generator, w: int, h: int, size: tuple[int, int]) -> np.ndarray:
    """Where the catalogue image's corners land: scaled to 18-40 % of the scene's long side,
    turned up to 30 degrees, tilted by moving each corner up to 10 % of its size."""
    scale = rng.uniform(0.18, 0.40) * max(size) / max(w, h)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]) - [w / 2, h / 2]
    angle = np.deg2rad(rng.uniform(-30, 30))
    turn = np.float32([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    quad = (corners * scale) @ turn
    quad += rng.uniform(-0.10, 0.10, (4, 2)) * scale * max(w, h)
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    centre = [rng.uniform(-lo[0], size[0] - hi[0]) if hi[0] - lo[0] < size[0] else size[0] / 2,
              rng.uniform(-lo[1], size[1] - hi[1]) if hi[1] - lo[1] < size[1] else size[1] / 2]
    return (quad + centre).astype(np.float32)


def _covered(a: np.ndarray, b: list[list[float]]) -> float:
    """The larger of the two polygons' fractions covered by the other."""
    pa, pb = np.float32(a), np.float32(b)
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    return float(inter / max(min(abs(cv2.contourArea(pa)), abs(cv2.contourArea(pb))), 1e-6))


def _place(rng: np.random.Generator, images: list[CatalogueImage], cache: dict[Path, tuple],
           canvas: np.ndarray, n: int) -> list[Placed]:
    size = (canvas.shape[1], canvas.shape[0])
    placed: list[Placed] = []
    for image in rng.choice(np.array(images, dtype=object), size=n, replace=False):
        if image.path not in cache:
            rgb = _load(image)
            cache[image.path] = (rgb, foreground_mask(rgb))  # products on white are cut out
        rgb, alpha = cache[image.path]
        h, w = rgb.shape[:2]
        for _ in range(30):  # a product may hide at most 30 % of another, or be 30 % hidden
            quad = _quad(rng, w, h, size)
            if all(_covered(quad, p.polygon) < 0.3 for p in placed):
                break
        else:
            continue
        warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), quad)
        seen = cv2.warpPerspective(rgb, warp, size, flags=cv2.INTER_AREA)
        cover = cv2.warpPerspective(alpha, warp, size, flags=cv2.INTER_LINEAR)[..., None]
        canvas[:] = canvas * (1 - cover) + seen.astype(np.float32) * cover
        placed.append(Placed(image.product_id, image.kind, quad.round(1).tolist()))
    return placed


def _light(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    height, width = canvas.shape[:2]
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.normal(size=2)
    direction /= max(float(np.linalg.norm(direction)), 1e-6)
    gradient = 1 + rng.uniform(0.1, 0.5) * ((gx / width - 0.5) * direction[0]
                                            + (gy / height - 0.5) * direction[1])
    canvas = canvas * gradient[..., None] * rng.uniform(0.7, 1.2) * rng.uniform(0.9, 1.1, 3)
    canvas += rng.normal(0, rng.uniform(1, 6), canvas.shape)
    out = np.clip(canvas, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    return out


def generate(roots: Iterable[Path], out: Path, per_kind: int = 60, seed: int = 0) -> dict:
    """`per_kind` scenes of each kind present (printed, produce); returns the ground truth."""
    roots = [Path(root).resolve() for root in roots]
    images = [image for root in roots for image in catalogue_images(root)]
    if not images:
        raise ValueError(f"no local catalogue images in {', '.join(map(str, roots))}")
    rng = np.random.default_rng(seed)
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    cache: dict[Path, tuple] = {}
    scenes = []
    for kind in ("printed", "produce"):
        pool = [image for image in images if image.kind == kind]
        if len(pool) < 2:
            continue
        for i in range(per_kind):
            clutter = synthetic_clutter(rng, max(SCENE_SIZE))
            canvas = clutter[:SCENE_SIZE[1], :SCENE_SIZE[0]].astype(np.float32)
            placed = _place(rng, pool, cache, canvas, int(rng.integers(2, min(6, len(pool)) + 1)))
            name = f"scenes/{kind}-{i:03d}.jpg"
            rgb = _light(rng, canvas)
            cv2.imwrite(str(out / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 95))])
            scenes.append({"file": name, "kind": kind, "objects": [asdict(p) for p in placed]})
    truth = {"sources": [str(root) for root in roots], "seed": seed, "per_kind": per_kind,
             "size": list(SCENE_SIZE), "scenes": scenes}
    (out / "scenes.json").write_text(json.dumps(truth, indent=1))
    with (out / "catalogue.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_uri", "product_id", "image_id", "category", "title"])
        for image in images:
            writer.writerow([str(image.path.resolve()), image.product_id, image.image_id,
                             image.category or image.kind, image.product_id])
    return truth

"""The copy-detection benchmark: edited catalogue images (positives) and real photos
(negatives), scored through the service's DetectCopy.

Positives: every catalogue image of each dev set, edited once per edit kind at one of three
parameter levels (the level cycles with the image, so each level gets a third of the images),
with a fixed seed. Edit kinds: crop, resize, jpeg (recompression), rotate, flip (horizontal,
with a light second edit at levels 1-2), colour (shift, grey), overlay (text, watermark),
screenshot (the image placed smaller in a UI-like frame) and combined (crop + small rotation
+ text + recompression). Written to a folder (a temp folder by default, never the repo).

Negatives: the dev sets' query photos (hand-held or in-store photos, none of them a copy of a
catalogue file), labelled "not a copy" and reported apart:
- `other`: the closest candidate DetectCopy names is another product than the photo's;
- `same`: it names the photo's own product (a phone photo of the printed cover, a store
  photo of the carton): whether those count as copies is a product decision.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lookalike.client import Client
from lookalike.tools.catalogue import read_catalogue

EDITS = ("crop", "resize", "jpeg", "rotate", "flip", "colour", "overlay", "screenshot", "combined")
LEVELS = 3
_WORDS = ("SALE -50%", "www.example-shop.com", "NEW!", "(c) lookalike", "Best price", "ONLY 9.99",
          "limited offer", "@seller_42")


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def _crop(rgb: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    ch, cw = max(8, round(h * keep)), max(8, round(w * keep))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return rgb[y:y + ch, x:x + cw]


def _rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Turned about its centre on a canvas that holds it all, white around it."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))


def _colour(rgb: np.ndarray, level: int) -> np.ndarray:
    if level == 0:  # brighter, more saturated
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * 1.3, 0, 255)
        hsv[..., 2] = np.clip(hsv[..., 2] * 1.15 + 10, 0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    if level == 1:  # hue turned by 30 degrees, a warm cast
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 15) % 180
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32) * [1.1, 1.0, 0.85]
        return np.clip(out, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # grey, more contrast
    grey = np.clip((grey.astype(np.float32) - 128) * 1.25 + 128, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def _text(rgb: np.ndarray, rng: np.random.Generator, lines: int, size: float,
          alpha: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """Text drawn over the image (a caption, a price, a watermark)."""
    h, w = rgb.shape[:2]
    layer = rgb.copy()
    for _ in range(lines):
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        scale = size * w / 400
        (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, round(scale * 2)))
        x = int(rng.integers(0, max(1, w - tw)))
        y = int(rng.integers(th + 1, max(th + 2, h - 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.putText(layer, word, (x, y), cv2.FONT_HERSHEY_DUPLEX, scale, colour,
                    max(1, round(scale * 2)), cv2.LINE_AA)
    if angle:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        mask = cv2.warpAffine((np.any(layer != rgb, axis=2) * 255).astype(np.uint8), m, (w, h))
        layer = cv2.warpAffine(layer, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        mask = mask[..., None] > 0
    else:
        mask = np.ones_like(rgb[..., :1], bool)
    blended = (alpha * layer.astype(np.float32) + (1 - alpha) * rgb.astype(np.float32))
    return np.where(mask, blended, rgb).astype(np.uint8)


def screenshot(rgb: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The image placed in a UI-like frame (a phone or desktop page): bars, buttons, text
    lines around it; it covers `share` of the frame's width."""
    phone = bool(rng.integers(2))
    fw, fh = (720, 1280) if phone else (1280, 800)
    frame = np.full((fh, fw, 3), int(rng.integers(225, 256)), np.uint8)
    bar = tuple(int(c) for c in rng.integers(0, 200, 3))
    cv2.rectangle(frame, (0, 0), (fw, 70), bar, -1)
    cv2.putText(frame, "12:41   shop.example", (20, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                (255, 255, 255), 2, cv2.LINE_AA)
    h, w = rgb.shape[:2]
    tw = round(fw * share)
    th = round(h * tw / w)
    if th > fh - 260:
        th = fh - 260
        tw = round(w * th / h)
    placed = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_AREA if tw < w else cv2.INTER_CUBIC)
    x = int(rng.integers(10, max(11, fw - tw - 10)))
    y = int(rng.integers(90, max(91, fh - th - 160)))
    frame[y:y + th, x:x + tw] = placed
    for i in range(4):  # text lines and a button below it
        ty = min(fh - 20, y + th + 40 + 30 * i)
        cv2.putText(frame, _WORDS[(i + int(rng.integers(8))) % len(_WORDS)], (x, ty),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, (40, 40, 40), 2, cv2.LINE_AA)
    cv2.rectangle(frame, (fw - 220, fh - 90), (fw - 30, fh - 30), bar, -1)
    return frame


def edit(rgb: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> bytes:
    """One edited copy of a catalogue image, encoded (JPEG)."""
    quality = 90
    if kind == "crop":
        out = _crop(rgb, (0.9, 0.75, 0.6)[level], rng)
    elif kind == "resize":
        h, w = rgb.shape[:2]
        fx, fy = ((2.0, 2.0), (0.7, 0.7), (0.5, 0.6))[level]
        out = cv2.resize(rgb, (max(8, round(w * fx)), max(8, round(h * fy))),
                         interpolation=cv2.INTER_AREA if fx < 1 else cv2.INTER_CUBIC)
    elif kind == "jpeg":
        out, quality = rgb, (70, 40, 20)[level]
    elif kind == "rotate":
        out = _rotate(rgb, float((3, 10, 30)[level] * rng.choice([-1, 1])))
    elif kind == "flip":
        out = rgb[:, ::-1]
        if level == 1:
            quality = 60
        elif level == 2:
            out = _crop(out, 0.85, rng)
    elif kind == "colour":
        out = _colour(rgb, level)
    elif kind == "overlay":
        if level == 0:
            out = _text(rgb, rng, 1, 0.8)
        elif level == 1:
            out = _text(rgb, rng, 2, 1.4, alpha=0.45, angle=float(rng.uniform(-35, 35)))
        else:
            out = _text(rgb, rng, 4, 1.2)
    elif kind == "screenshot":
        out = screenshot(rgb, (0.7, 0.5, 0.35)[level], rng)
    elif kind == "combined":
        out = _crop(rgb, (0.85, 0.8, 0.7)[level], rng)
        out = _rotate(out, float((2, 4, 7)[level] * rng.choice([-1, 1])))
        out = _text(out, rng, 1 + level, 0.8)
        quality = (75, 60, 45)[level]
    else:
        raise ValueError(f"unknown edit {kind!r}; known: {', '.join(EDITS)}")
    return _jpeg(np.ascontiguousarray(out), quality)


@dataclass
class Case:
    file: str                 # relative to the benchmark folder (positives) or absolute (photos)
    dataset: str
    label: bool               # a copy
    kind: str                 # an edit kind, or "photo"
    level: int = -1
    product_id: str = ""      # positives: the original's product and image; photos: their product
    image_id: str = ""


def generate(datasets: list[Path], out: Path, seed: int = 0, photos: int = 0) -> list[Case]:
    """Edits of every catalogue image of each dataset (written under `out`), then the
    datasets' query photos (`photos` > 0: at most that many per dataset, a seeded sample);
    the list is also written to out/cases.json."""
    from lookalike.imaging import decode

    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    for dataset in datasets:
        name = dataset.name
        (out / name).mkdir(parents=True, exist_ok=True)
        for i, entry in enumerate(read_catalogue(dataset)):
            rgb = decode(Path(entry.uri).read_bytes(), target_side=4096)
            image_id = entry.image_id or Path(entry.uri).stem
            for k, kind in enumerate(EDITS):
                level = (i + k) % LEVELS
                file = f"{name}/{image_id}-{kind}{level}.jpg"
                (out / file).write_bytes(edit(rgb, kind, level, rng))
                cases.append(Case(file, name, True, kind, level, entry.product_id, image_id))
        with (dataset / "ground_truth.csv").open(newline="") as f:
            truth = list(csv.DictReader(f))
        if 0 < photos < len(truth):
            truth = [truth[i] for i in sorted(rng.choice(len(truth), photos, replace=False))]
        cases += [Case(str((dataset / "queries" / row["query_file"]).resolve()), name, False,
                       "photo", -1, row["product_id"]) for row in truth]
    (out / "cases.json").write_text(json.dumps({"seed": seed, "datasets": [str(d.resolve())
                                                for d in datasets],
                                                "cases": [asdict(c) for c in cases]}, indent=1))
    return cases


@dataclass
class Outcome:
    case: Case
    is_copy: bool
    confidence: float
    product_id: str
    image_id: str
    inliers: int
    coverage: float
    server_ms: float
    cosine: float = 0.0               # the global score of the original named
    right: bool = field(init=False)   # a positive: the original named is the edited image

    def __post_init__(self) -> None:
        self.right = (self.product_id == self.case.product_id
                      and (not self.case.image_id or self.image_id == self.case.image_id))


def run(client: Client, out: Path, cases: list[Case], product_sets: dict[str, str],
        on_case: Callable[[], None] = lambda: None) -> list[Outcome]:
    """DetectCopy on every case, against the catalogue of its dataset (`product_sets`)."""
    results = []
    for case in cases:
        path = Path(case.file) if Path(case.file).is_absolute() else out / case.file
        r = client.detect_copy(path.read_bytes(), product_sets[case.dataset])
        results.append(Outcome(case, r.is_copy, r.confidence, r.original.product_id,
                               r.original.image_id, r.inliers, r.coverage, r.server_ms,
                               r.original.score))
        on_case()
    return results


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def summary(results: list[Outcome]) -> dict:
    """Recall per edit kind (a hit: is_copy with the right original), the negatives' false
    positive rates (other products, the same product), precision both ways, latency."""
    def block(rs: list[Outcome]) -> dict:
        pos = [r for r in rs if r.case.label]
        hits = sum(r.is_copy and r.right for r in pos)
        other = [r for r in rs if not r.case.label and r.product_id != r.case.product_id]
        same = [r for r in rs if not r.case.label and r.product_id == r.case.product_id]
        fp_other, fp_same = sum(r.is_copy for r in other), sum(r.is_copy for r in same)
        wrong = sum(r.is_copy and not r.right for r in pos)  # a copy, of the wrong original
        said = hits + wrong
        kinds = {}
        for kind in EDITS:
            mine = [r for r in pos if r.case.kind == kind]
            if mine:
                kinds[kind] = {"n": len(mine), "recall": sum(r.is_copy and r.right for r in mine)
                               / len(mine), "levels": [
                    sum(r.is_copy and r.right for r in mine if r.case.level == lv)
                    / max(1, sum(r.case.level == lv for r in mine)) for lv in range(LEVELS)]}
        return {
            "positives": len(pos), "recall": hits / max(1, len(pos)), "wrong_original": wrong,
            "negatives_other": len(other), "false_copies_other": fp_other,
            "negatives_same": len(same), "copies_same": fp_same,
            # (a) and (b) both negatives / only (a) negatives (a photo of the product allowed)
            "precision": hits / max(1, said + fp_other + fp_same),
            "precision_other_only": hits / max(1, said + fp_other),
            "by_kind": kinds,
        }
    out = {"all": block(results)}
    for dataset in sorted({r.case.dataset for r in results}):
        out[dataset] = block([r for r in results if r.case.dataset == dataset])
    times = [r.server_ms for r in results]
    out["server_ms_p50"], out["server_ms_p99"] = _pct(times, 50), _pct(times, 99)
    return out

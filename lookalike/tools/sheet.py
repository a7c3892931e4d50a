"""Contact sheets: the query photo beside its top matches, with scores, as one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lookalike.imaging import ImageRejected, decode

TILE = 200
CAPTION = 44


@dataclass(frozen=True)
class Tile:
    image: np.ndarray | None  # RGB, any size; None draws a grey placeholder
    lines: tuple[str, ...]
    highlight: tuple[int, int, int] | None = None  # RGB frame colour


def load_thumbnail(source: str) -> np.ndarray | None:
    """The catalogue image for display, when its source is a readable local file."""
    path = Path(source)
    try:
        return decode(path.read_bytes()) if source and path.is_file() else None
    except (OSError, ImageRejected):
        return None


def _fit(image: np.ndarray | None) -> np.ndarray:
    canvas = np.full((TILE, TILE, 3), 235, np.uint8)
    if image is None:
        return canvas
    h, w = image.shape[:2]
    scale = TILE / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def _tile(tile: Tile) -> np.ndarray:
    out = np.full((TILE + CAPTION, TILE, 3), 255, np.uint8)
    out[:TILE] = _fit(tile.image)
    if tile.highlight:
        cv2.rectangle(out, (1, 1), (TILE - 2, TILE - 2), tile.highlight, 4)
    for i, line in enumerate(tile.lines[:2]):
        cv2.putText(out, line[:26], (6, TILE + 17 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (20, 20, 20), 1, cv2.LINE_AA)
    return out


def render(rows: Sequence[Sequence[Tile]], path: Path) -> Path:
    """One row of tiles per query; rows are padded to the same width."""
    width = max(len(row) for row in rows)
    blank = np.full((TILE + CAPTION, TILE, 3), 255, np.uint8)
    gap = np.full((TILE + CAPTION, 8, 3), 255, np.uint8)
    lines = []
    for row in rows:
        cells = [_tile(t) for t in row] + [blank] * (width - len(row))
        lines.append(np.hstack([part for cell in cells for part in (cell, gap)]))
    sheet = np.vstack(lines)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def outline(query: np.ndarray, matches: Sequence, scale: float = 1.0) -> np.ndarray:
    """The query with the outline of each verified match drawn on it (the first one thicker).
    scale: query pixels per pixel of the photo as sent (the polygon's unit)."""
    drawn = query.copy()
    width = max(2, round(max(query.shape[:2]) / 150))
    for rank, m in enumerate(matches):
        polygon = [(p.x * scale, p.y * scale) for p in getattr(m, "polygon", [])]
        if getattr(m, "verified", False) and len(polygon) == 4:
            cv2.polylines(drawn, [np.int32(polygon)], True, (255, 140, 0) if rank else (40, 170, 60),
                          width * (2 if rank == 0 else 1))
    return drawn


def query_row(query: np.ndarray, matches: Sequence, expected: str | None = None,
              scale: float = 1.0) -> list[Tile]:
    """The query tile (verified outlines drawn) followed by one tile per match (green frame:
    the expected product)."""
    row = [Tile(outline(query, matches, scale),
                ("query", f"expected: {expected}" if expected else ""))]
    for rank, m in enumerate(matches, start=1):
        colour = (40, 170, 60) if expected and m.product_id == expected else None
        evidence = f", {m.inliers} inliers" if getattr(m, "verified", False) else ""
        row.append(Tile(load_thumbnail(m.source), (f"#{rank} {m.product_id}",
                                                   f"score {m.score:.3f}{evidence}"), colour))
    return row


def draw_objects(photo: np.ndarray, objects: Sequence, scale: float = 1.0,
                 highlight: int | None = None) -> np.ndarray:
    """The photo with each object's outline and its first product's id drawn on it.
    highlight: draw that object thick and the others thin, without labels."""
    drawn = photo.copy()
    width = max(2, round(max(photo.shape[:2]) / 200))
    for i, obj in enumerate(objects):
        polygon = np.int32([(p.x * scale, p.y * scale) for p in obj.bounding_poly])
        if len(polygon) < 3:
            continue
        chosen = highlight is None or i == highlight
        cv2.polylines(drawn, [polygon], True, (40, 170, 60) if chosen else (255, 140, 0),
                      width * (2 if highlight is not None and chosen else 1))
        if highlight is None and obj.matches:
            _label(drawn, f"{obj.matches[0].product_id} {obj.score:.2f}", polygon, (20, 20, 20),
                   max(0.5, width / 4), max(1, width // 2))
    return drawn


def _label(picture: np.ndarray, text: str, polygon: np.ndarray, colour: tuple[int, int, int],
           size: float, thickness: int) -> None:
    """`text` above the polygon, on a white halo, kept inside the picture."""
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, thickness + 3)
    x = int(np.clip(polygon[:, 0].min(), 0, max(0, picture.shape[1] - text_w)))
    y = max(int(polygon[:, 1].min()) - 8, text_h + 4)
    for ink, thick in (((255, 255, 255), thickness + 3), (colour, thickness)):
        cv2.putText(picture, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, size, ink, thick, cv2.LINE_AA)


def object_rows(photo: np.ndarray, objects: Sequence, scale: float = 1.0) -> list[list[Tile]]:
    """One row per object: the photo with that object outlined, then its matches."""
    return [[Tile(draw_objects(photo, objects, scale, highlight=i),
                  (f"object {i + 1}", f"score {obj.score:.2f}"))]
            + [Tile(load_thumbnail(m.source), (f"#{rank} {m.product_id}", f"{m.inliers} inliers"))
               for rank, m in enumerate(obj.matches, start=1)]
            for i, obj in enumerate(objects)]


def scene_picture(photo: np.ndarray, found: Sequence[tuple[str, Sequence, float]],
                  hits: Sequence[bool], truth: Sequence[dict]) -> np.ndarray:
    """A benchmark scene: products missed in thin yellow, found objects labelled, green when
    right (product and outline), red when not. Outlines are in the photo's pixels."""
    drawn = photo.copy()
    width = max(2, round(max(photo.shape[:2]) / 250))
    for placed in truth:
        cv2.polylines(drawn, [np.int32(placed["polygon"])], True, (250, 220, 40), max(1, width // 2))
    for (product, outline, score), hit in zip(found, hits):
        polygon = np.int32(outline)
        colour = (40, 190, 60) if hit else (230, 40, 40)
        cv2.polylines(drawn, [polygon], True, colour, width)
        _label(drawn, f"{product} {score:.2f}", polygon, colour, width / 3, width)
    return drawn


def grid(pictures: Sequence[np.ndarray], path: Path, columns: int = 3, width: int = 560) -> Path:
    """Pictures resized to one width, in rows of `columns`, as one image (PNG, or JPEG by the
    path's suffix)."""
    cells = [cv2.resize(p, (width, round(p.shape[0] * width / p.shape[1])),
                        interpolation=cv2.INTER_AREA) for p in pictures]
    height = max(c.shape[0] for c in cells)
    cells = [np.pad(c, ((0, height - c.shape[0]), (0, 0), (0, 0)), constant_values=255)
             for c in cells]
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    gap = np.full((height, 6, 3), 255, np.uint8)
    rows = [np.hstack([part for c in cells[i:i + columns] for part in (c, gap)][:-1])
            for i in range(0, len(cells), columns)]
    sheet = np.vstack([part for r in rows for part in (r, np.full((6, r.shape[1], 3), 255, np.uint8))][:-1])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path

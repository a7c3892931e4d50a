"""The evaluation as a picture: the Recall@K curve above a contact sheet of the worst misses
and of a few verified matches, their outlines drawn on the photos."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lookalike.imaging import Limits, decode, probe  # noqa: E402
from lookalike.tools import sheet  # noqa: E402
from lookalike.tools.evaluate import Report  # noqa: E402


def recall_curve(report: Report, width_px: int) -> np.ndarray:
    ks = list(range(1, min(report.products, 20) + 1))
    recalls = [report.recall(k) for k in ks]
    fig, ax = plt.subplots(figsize=(width_px / 100, 3.2), dpi=100)
    ax.plot(ks, recalls, marker="o")
    for k in (1, 5, 10):
        if k <= len(ks):
            ax.annotate(f"{recalls[k - 1]:.3f}", (k, recalls[k - 1]), textcoords="offset points",
                        xytext=(0, 8), ha="center")
    ax.set(xlabel="K", ylabel="Recall@K", ylim=(0, 1.05), xticks=ks,
           title=f"{report.model}: {len(report.results)} queries, {report.products} products, "
                 f"mAP {report.mean_average_precision():.3f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def _query(path: str) -> tuple[np.ndarray, float]:
    """The query's pixels, and how many of them per pixel of the file (for the outlines)."""
    data = Path(path).read_bytes()
    pixels = decode(data)
    _, width, height = probe(data, Limits())
    return pixels, max(pixels.shape[:2]) / max(width, height)


def write(report: Report, gallery: dict[str, str], path: Path, misses: int = 8,
          verified: int = 4) -> Path:
    """gallery: product_id -> a catalogue image path, shown framed beside each miss. Then a
    few queries whose first match was verified, its outline drawn on the photo."""
    rows = []
    for r in report.worst(misses):
        query, scale = _query(r.query)
        expected = sheet.Tile(sheet.load_thumbnail(gallery.get(r.expected, "")),
                              (f"expected {r.expected}", f"rank {r.rank or '>' + str(len(r.ranked))}"),
                              (40, 170, 60))
        row = sheet.query_row(query, r.top, r.expected, scale)
        rows.append([row[0], expected, *row[1:]])
    found = [r for r in report.results if r.top and getattr(r.top[0], "verified", False)]
    for r in found[:: max(1, len(found) // verified)][:verified]:
        query, scale = _query(r.query)
        rows.append(sheet.query_row(query, r.top, r.expected, scale))
    with tempfile.TemporaryDirectory() as tmp:
        misses_png = sheet.render(rows, Path(tmp) / "misses.png") if rows else None
        block = cv2.cvtColor(cv2.imread(str(misses_png)), cv2.COLOR_BGR2RGB) if rows else None
    width = block.shape[1] if block is not None else 800
    parts = [recall_curve(report, width)]
    if block is not None:
        parts.append(block)
    canvas = np.full((sum(p.shape[0] for p in parts), max(p.shape[1] for p in parts), 3), 255,
                     np.uint8)
    y = 0
    for part in parts:
        canvas[y : y + part.shape[0], : part.shape[1]] = part
        y += part.shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return path

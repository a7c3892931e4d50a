"""The evaluation as a picture: the Recall@K curve above a contact sheet of the worst misses."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lookalike.imaging import decode  # noqa: E402
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


def write(report: Report, gallery: dict[str, str], path: Path, misses: int = 8) -> Path:
    """gallery: product_id -> a catalogue image path, shown framed beside each miss."""
    rows = []
    for r in report.worst(misses):
        query = decode(Path(r.query).read_bytes())
        expected = sheet.Tile(sheet.load_thumbnail(gallery.get(r.expected, "")),
                              (f"expected {r.expected}", f"rank {r.rank or '>' + str(len(r.ranked))}"),
                              (40, 170, 60))
        row = sheet.query_row(query, r.top, r.expected)
        rows.append([row[0], expected, *row[1:]])
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

"""Read a catalogue to ingest: a CSV, a benchmark folder, or a folder of product folders.

CSV, in the spirit of Google Product Search bulk import: with a header naming
image_uri, image_id, product_id, category, title, labels (hyphens accepted), or
without a header in Google's column order (image-uri, image-id, product-set-id,
product-id, product-category, product-display-name, labels, bounding-poly).
Labels are comma-separated; relative paths are resolved against the CSV's folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
GOOGLE_COLUMNS = ["image_uri", "image_id", "product_set_id", "product_id", "category", "title",
                  "labels", "bounding_poly"]
ALIASES = {"gallery_file": "image_uri", "file": "image_uri", "path": "image_uri",
           "product_category": "category", "product_display_name": "title"}


@dataclass(frozen=True)
class Entry:
    uri: str
    product_id: str
    image_id: str = ""
    category: str = ""
    title: str = ""
    labels: tuple[str, ...] = ()

    @property
    def is_remote(self) -> bool:
        return self.uri.startswith(("http://", "https://"))


def read_catalogue(path: Path) -> list[Entry]:
    path = Path(path)
    if path.is_file():
        return read_csv(path)
    if (path / "gallery.csv").is_file():  # benchmark layout: gallery.csv + gallery/
        return read_csv(path / "gallery.csv", base=path / "gallery")
    if path.is_dir():
        return read_folder(path)
    raise FileNotFoundError(f"no catalogue at {path}: give a CSV file or a folder")


def _column(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def read_csv(path: Path, base: Path | None = None) -> list[Entry]:
    base = base or path.parent
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    header = [_column(c) for c in rows[0]]
    if "product_id" in header and "image_uri" in header:
        columns, rows = header, rows[1:]
    else:
        columns = GOOGLE_COLUMNS
    entries = []
    for number, row in enumerate(rows, start=2 if columns is header else 1):
        record = dict(zip(columns, (cell.strip() for cell in row)))
        uri, product_id = record.get("image_uri", ""), record.get("product_id", "")
        if not uri or not product_id:
            raise ValueError(f"{path}:{number}: image_uri and product_id are required")
        if uri.startswith("file://"):  # a local file, sent as bytes like any path
            uri = unquote(urlsplit(uri).path)
        if "://" not in uri and not Path(uri).is_absolute():
            uri = str((base / uri).resolve())
        entries.append(Entry(
            uri=uri, product_id=product_id,
            image_id=record.get("image_id", "") or Path(uri).name,
            category=record.get("category", ""), title=record.get("title", ""),
            labels=tuple(x.strip() for x in record.get("labels", "").split(",") if x.strip()),
        ))
    return entries


def read_folder(root: Path) -> list[Entry]:
    """root/<product_id>/<image files>: one folder per product, its name the product id."""
    entries = []
    for product in sorted(p for p in root.iterdir() if p.is_dir()):
        for image in sorted(product.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                entries.append(Entry(uri=str(image.resolve()), product_id=product.name,
                                     image_id=image.name, title=product.name.replace("_", " ")))
    if not entries:
        raise ValueError(f"{root} holds no product folders with images")
    return entries

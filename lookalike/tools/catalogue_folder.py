"""A folder of product folders, root/<product_id>/<images>, and the records beside them.

A product's record (title, category, labels, description) may come from a sidecar at the
root, products.csv (a product_id column and any of those; read like a catalogue CSV) or
products.json (a list of objects with those keys), and from a product.json in the product's
folder, which wins field by field. Without one, the title is the folder's name with '_' as
spaces. A sidecar that cannot be read is one CatalogueError naming it: records silently
left out would be found only in search results.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from lookalike.tools.catalogue import (
    IMAGE_SUFFIXES,
    PRODUCT_FIELDS,
    Catalogue,
    CatalogueError,
    Entry,
    Problem,
    assemble,
    field_problems,
    split_labels,
)
from lookalike.tools.catalogue_csv import decode, header, sniff, split

Record = dict[str, Any]  # some of PRODUCT_FIELDS; labels a tuple


def read_folder(root: Path, product_set: str = "") -> Catalogue:
    warnings: list[str] = []
    records, sidecar = _sidecar(root, warnings)
    drafts, problems, skipped = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        record = {"title": folder.name.replace("_", " "), **records.pop(folder.name, {})}
        if (folder / "product.json").is_file():
            record |= _product_json(folder, warnings)
        for file in sorted(folder.iterdir()):
            where = f"{folder.name}/{file.name}"
            if file.name.startswith(".") or file.name == "product.json":
                continue
            if not (file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES):
                skipped.append(where)
                continue
            entry = Entry(uri=str(file.resolve()), product_id=folder.name, image_id=file.name,
                          product_set=product_set, where=where, **record)
            if reasons := field_problems(vars(entry)):
                problems.append(Problem(where, "; ".join(reasons), entry.product_id, entry.image_id))
            else:
                drafts.append(entry)
    if not drafts and not problems:
        raise CatalogueError(f"{root} holds no product folders with images: put each product's "
                             f"images ({', '.join(sorted(IMAGE_SUFFIXES))}) in a folder named by "
                             "its product id")
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for files, what in ((loose, "at the top of the folder belong to no product folder"),
                        (skipped, "in product folders are not images")):
        if files:
            more = f" and {len(files) - 3:,} more" if len(files) > 3 else ""
            warnings.append(f"{root.name}: {len(files):,} files {what} (ignored): "
                            f"{', '.join(files[:3])}{more}")
    if records:
        warnings.append(f"{sidecar}: {len(records):,} products have no folder (ignored): "
                        f"{', '.join(map(repr, list(records)[:5]))}")
    return assemble(drafts, problems, warnings)


def with_records(catalogue: Catalogue, root: Path) -> Catalogue:
    """A benchmark folder's gallery.csv completed from the folder's products.csv/.json: the
    fields its rows leave empty, and a title from the product id when none is given."""
    warnings = list(catalogue.warnings)
    records, _ = _sidecar(root, warnings)
    entries = []
    for entry in catalogue:
        given = {name: getattr(entry, name) for name in ("category", "title", "labels",
                                                        "description") if getattr(entry, name)}
        record = {"title": re.sub(r"[-_]+", " ", entry.product_id).strip(),
                  **records.get(entry.product_id, {}), **given}
        entries.append(replace(entry, **record))
    return Catalogue(entries, catalogue.problems, warnings)


def _sidecar(root: Path, warnings: list[str]) -> tuple[dict[str, Record], str]:
    """The root's records by product id, and the sidecar's name."""
    present = [root / name for name in ("products.csv", "products.json") if (root / name).is_file()]
    if len(present) > 1:
        raise CatalogueError(f"{root}: both products.csv and products.json: keep one")
    if not present:
        return {}, ""
    path = present[0]
    records: dict[str, Record] = {}
    wheres: dict[str, str] = {}
    for where, values in (_csv_rows if path.suffix == ".csv" else _json_rows)(path, warnings):
        product_id = str(values.get("product_id") or "")
        if not product_id:
            raise CatalogueError(f"{where}: product_id is empty")
        if product_id in wheres:
            raise CatalogueError(f"{where}: product {product_id!r} is already on {wheres[product_id]}")
        records[product_id], wheres[product_id] = _record(values, where), where
        if reasons := field_problems({"product_id": product_id, **records[product_id]}):
            raise CatalogueError(f"{where}: {'; '.join(reasons)}")
    return records, path.name


def _csv_rows(path: Path, warnings: list[str]):
    text, more = decode(path)
    warnings += more
    rows = split(path.name, text, sniff(text))
    if not rows:
        raise CatalogueError(f"{path.name} is empty: give a header (product_id, title, category, "
                             "labels, description) and one row per product")
    columns = header(path.name, rows[0][1], ("product_id",), {"product_id", *PRODUCT_FIELDS},
                     warnings)
    for line, cells in rows[1:]:
        if any(cells[len(columns):]):
            raise CatalogueError(f"{path.name}:{line}: {len(cells)} cells; the header has "
                                 f"{len(columns)} (quote a value that holds the delimiter)")
        yield f"{path.name}:{line}", {c: cell for c, cell in zip(columns, cells) if c}


def _json_rows(path: Path, warnings: list[str]):
    items = _load(path, path.name)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CatalogueError(f"{path.name}: not a list of objects ([{{\"product_id\": ..., "
                             "\"title\": ...}, ...])")
    _unread(path.name, {k for item in items for k in item} - {"product_id", *PRODUCT_FIELDS},
            warnings)
    for number, item in enumerate(items, start=1):
        yield f"{path.name}: item {number}", item


def _product_json(folder: Path, warnings: list[str]) -> Record:
    name = f"{folder.name}/product.json"
    values = _load(folder / "product.json", name)
    if not isinstance(values, dict):
        raise CatalogueError(f"{name}: not an object ({{\"title\": ..., \"category\": ..., "
                             "\"labels\": [...], \"description\": ...})")
    if values.get("product_id", folder.name) != folder.name:
        warnings.append(f"{name} names product {values['product_id']!r}: the folder's name, "
                        f"{folder.name!r}, is the product id")
    _unread(name, set(values) - {"product_id", *PRODUCT_FIELDS}, warnings)
    record = _record(values, name)
    if reasons := field_problems(record):
        raise CatalogueError(f"{name}: {'; '.join(reasons)}")
    return record


def _load(path: Path, name: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg} "
                             f"(column {exc.colno})") from None
    except UnicodeDecodeError:
        raise CatalogueError(f"{name}: not UTF-8 text") from None
    except OSError as exc:
        raise CatalogueError(f"cannot read {name}: {exc.strerror or exc}") from None


def _record(values: dict[str, Any], where: str) -> Record:
    """The record fields given (blank ones say nothing), checked for type."""
    record: Record = {}
    for name in PRODUCT_FIELDS:
        value = values.get(name)
        if name == "labels" and isinstance(value, list):
            if not all(isinstance(label, str) for label in value):
                raise CatalogueError(f"{where}: labels must be a list of strings")
            if labels := tuple(label.strip() for label in value if label.strip()):
                record[name] = labels
            continue
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise CatalogueError(f"{where}: {name} must be text, not {type(value).__name__}")
        record[name] = split_labels(value) if name == "labels" else value
    return record


def _unread(name: str, keys: set[str], warnings: list[str]) -> None:
    if keys:
        warnings.append(f"{name}: keys {', '.join(map(repr, sorted(keys)))} not read (ignored)")

"""Catalogue CSVs as people save them, in the spirit of Google Product Search bulk import.

The delimiter is whichever of comma, semicolon (Excel in many European locales) and tab
splits the first line into the most cells. UTF-8 with or without a BOM, UTF-16 with a BOM
(Excel's "Unicode text") and, with a warning, Windows-1252 (Excel's plain "CSV") are read.
Header names are matched ignoring case, spaces and hyphens, with the aliases below; a file
whose first cell is an image path or URL has no header and follows Google's column order:
image-uri, image-id, product-set-id, product-id, product-category, product-display-name,
labels, bounding-poly. Labels are comma-separated; relative paths are resolved against
the CSV's folder (`base`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from lookalike.tools.catalogue import (
    IMAGE_SUFFIXES,
    Catalogue,
    CatalogueError,
    Entry,
    Problem,
    assemble,
    field_problems,
    split_labels,
    unsupported_scheme,
)

# Each column and the header names that mean it (after lower-casing, spaces/hyphens -> "_").
ACCEPTED = {
    "image_uri": ("image_uri", "image", "image_path", "image_url", "image_file", "filename",
                  "file_name", "file", "path", "url", "uri", "gallery_file"),
    "image_id": ("image_id",),
    "product_set": ("product_set", "product_set_id"),
    "product_id": ("product_id", "sku", "product", "product_code"),
    "category": ("category", "product_category"),
    "title": ("title", "name", "product_name", "display_name", "product_display_name"),
    "labels": ("labels", "tags"),
    "description": ("description",),
    "bounding_poly": ("bounding_poly",),  # Google's; the whole image is indexed
}
_COLUMN_OF = {alias: column for column, aliases in ACCEPTED.items() for alias in aliases}
GOOGLE_COLUMNS = ["image_uri", "image_id", "product_set", "product_id", "category", "title",
                  "labels", "bounding_poly"]
GOOGLE_REQUIRED = 4  # up to product-id
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
WHAT = {"image_uri": "image", "product_id": "product"}


def read_csv(path: Path, base: Path | None = None, product_set: str = "") -> Catalogue:
    base = base or path.parent
    text, warnings = decode(path)
    delimiter = sniff(text)
    rows = split(path.name, text, delimiter)
    if not rows:
        raise CatalogueError(f"{path.name} is empty: give one row per image (image file or URL, "
                             "product id, ...), after a header line naming the columns")
    if is_header(rows[0][1]):
        columns = header(path.name, rows[0][1], ("image_uri", "product_id"), set(ACCEPTED), warnings)
        rows = rows[1:]
        if not rows:
            raise CatalogueError(f"{path.name} has a header but no rows: nothing to ingest")
    elif len(rows[0][1]) < GOOGLE_REQUIRED:
        raise CatalogueError(
            f"{path.name}: no header, and {len(rows[0][1])} columns: name the columns in a first "
            "line (image_uri,product_id,title,...) or follow Google's order image-uri, image-id, "
            "product-set-id, product-id, ...")
    else:
        columns = GOOGLE_COLUMNS
    drafts, problems, polygons = [], [], 0
    for line, cells in rows:
        where = f"{path.name}:{line}"
        record, reasons = _record(cells, columns, delimiter)
        uri = _locate(record.get("image_uri", ""), base)
        polygons += bool(record.get("bounding_poly"))
        entry = Entry(uri=uri, product_id=record.get("product_id", ""),
                      image_id=record.get("image_id", "") or _image_name(uri),
                      category=record.get("category", ""), title=record.get("title", ""),
                      labels=split_labels(record.get("labels", "")),
                      product_set=record.get("product_set", "") or product_set,
                      description=record.get("description", ""), where=where)
        reasons += _entry_problems(entry) if not reasons else []
        if reasons and any("\n" in cell for cell in cells):
            reasons.append("a cell runs over several lines (a quote left open?)")
        if reasons:
            problems.append(Problem(where, "; ".join(reasons), entry.product_id, entry.image_id))
        else:
            drafts.append(entry)
    if polygons:
        warnings.append(f"{path.name}: bounding_poly is given on {polygons:,} rows and not used: "
                        "the whole image is indexed (crop the images to keep only the product)")
    return assemble(drafts, problems, warnings)


def decode(path: Path) -> tuple[str, list[str]]:
    """The file's text, and a warning when it had to be guessed."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise CatalogueError(f"{path.name} is an image, not a catalogue: give a CSV file or a "
                             "folder of product folders")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.startswith(b"PK\x03\x04"):
        raise CatalogueError(f"{path.name} is a spreadsheet workbook (.xlsx), not a CSV: save it "
                             "as 'CSV UTF-8' first")
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16"), []
        if b"\x00" in data:
            raise CatalogueError(f"{path.name} is not text (it holds NUL bytes): give a CSV")
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise CatalogueError(f"{path.name}:{line}: not UTF-8 text: save the file as "
                                 "'CSV UTF-8'") from None
        return text, [f"{path.name}:{line}: not UTF-8: the file is read as Windows-1252 (what Excel "
                      "saves as plain 'CSV'); save it as 'CSV UTF-8' if accents look wrong"]


def sniff(text: str) -> str:
    """The delimiter that splits the first line into the most cells (ties: comma)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return max(DELIMITERS, key=lambda d: len(next(csv.reader([first], delimiter=d), [])))


def split(name: str, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(first line number, stripped cells) of each non-blank row."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, end = [], 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                rows.append((start, [cell.strip() for cell in cells]))
    except csv.Error as exc:  # e.g. a quote left open swallows the rest of the file
        raise CatalogueError(f"{name}:{end + 1}: {exc} (a quote left open?)") from None
    return rows


def column_of(cell: str) -> str:
    """The column a header cell names, or its normalised text when it names none."""
    key = re.sub(r"[\s\-]+", "_", cell.strip().lower())
    return _COLUMN_OF.get(key, key)


def is_header(cells: list[str]) -> bool:
    """A first row is data when its first cell is an image path or URL (Google's order)."""
    first = cells[0]
    image = ("://" in first or "/" in first or "\\" in first
             or PurePosixPath(first.lower()).suffix in IMAGE_SUFFIXES)
    return not image or sum(column_of(c) in ACCEPTED for c in cells) >= 2


def header(name: str, cells: list[str], required: tuple[str, ...], read: set[str],
           warnings: list[str]) -> list[str]:
    """The column each cell names ("" for one not read); raises when a required one is missing."""
    columns, seen = [], {}
    for cell in cells:
        column = column_of(cell)
        if column in seen:
            raise CatalogueError(f"{name}: columns {seen[column]!r} and {cell!r} both give "
                                 f"{column}: keep one")
        if column in ACCEPTED:
            seen[column] = cell
        columns.append(column if column in read else "")
    missing = [c for c in required if c not in seen]
    if missing:
        wanted = " and ".join(f"no {WHAT.get(c, c)} column (name it {', '.join(ACCEPTED[c])})"
                              for c in missing)
        hint = ("" if seen else "; a catalogue without a header lists the columns in Google's "
                "order, an image file or URL first")
        raise CatalogueError(f"{name}: the header ({', '.join(cells)}) has {wanted}{hint}")
    ignored = [cell for cell, column in zip(cells, columns) if cell and not column]
    if ignored:
        warnings.append(f"{name}: column{'s' if len(ignored) > 1 else ''} "
                        f"{', '.join(map(repr, ignored))} not read (ignored)")
    return columns


def _record(cells: list[str], columns: list[str], delimiter: str) -> tuple[dict[str, str], list[str]]:
    """The row's cells by column, and what is wrong with its shape."""
    google = columns is GOOGLE_COLUMNS
    has = f"Google's column order has {len(columns)}" if google else f"the header has {len(columns)}"
    reasons = []
    if google and len(cells) < GOOGLE_REQUIRED:
        reasons.append(f"{_cells(len(cells))}; Google's column order needs at least "
                       f"{GOOGLE_REQUIRED} (image-uri, image-id, product-set-id, product-id)")
    elif not google and len(cells) < len(columns):
        reasons.append(f"{_cells(len(cells))}; {has}")
    if any(cells[len(columns):]):  # empty cells past the end (a trailing delimiter) say nothing
        reasons.append(f"{_cells(len(cells))}; {has} (quote a value that holds a "
                       f"{DELIMITERS[delimiter]})")
    return {c: cell for c, cell in zip(columns, cells) if c}, reasons


def _cells(count: int) -> str:
    return f"{count} cell{'' if count == 1 else 's'}"


def _entry_problems(entry: Entry) -> list[str]:
    reasons = [f"{name} is empty" for name, value in (("image_uri", entry.uri),
                                                      ("product_id", entry.product_id)) if not value]
    if reason := unsupported_scheme(entry.uri):
        reasons.append(reason)
    return reasons + field_problems(vars(entry))


def _locate(uri: str, base: Path) -> str:
    """A local path made absolute (file:// URIs too); URLs as they are."""
    if not uri:
        return ""
    if uri.lower().startswith("file://"):  # a local file, sent as bytes like any path
        return unquote(urlsplit(uri).path)
    if "://" in uri:
        return uri
    return str((base / Path(uri).expanduser()).resolve())


def _image_name(uri: str) -> str:
    # The path's last part: a signed URL's query changes with every signature, its path does not.
    return PurePosixPath(urlsplit(uri).path).name if "://" in uri else Path(uri).name

"""Read a catalogue to ingest: a CSV, a benchmark folder, or a folder of product folders.

Reading is forgiving and says what it did: a catalogue that cannot be read at all raises
CatalogueError (one message, nothing is sent); a bad row becomes a Problem (that row is not
sent, the others are); anything surprising but usable becomes a warning. The CSV rules are
in catalogue_csv, the folder rules in catalogue_folder.

A product has one record (title, category, labels, description), whichever image carries
it: the rows of a product are given the same record here, each field the last value a row
gave (a blank cell says nothing), so the result does not depend on the order the service
stores them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lookalike.limits import (
    CONTROL,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_LABELS,
    MAX_TITLE_CHARS,
    PRODUCT_SET,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
PRODUCT_FIELDS = ("title", "category", "labels", "description")
MAX_WARNINGS = 20  # of one kind: a large catalogue with a systematic slip stays readable


class CatalogueError(ValueError):
    """The catalogue cannot be read at all (no such file, no product column, no rows...)."""


@dataclass(frozen=True)
class Entry:
    uri: str
    product_id: str
    image_id: str = ""
    category: str = ""
    title: str = ""
    labels: tuple[str, ...] = ()
    product_set: str = ""
    description: str = ""
    # Where it was read ("gallery.csv:7", "mug/1.jpg"), for messages; not part of its identity.
    where: str = field(default="", compare=False)

    @property
    def is_remote(self) -> bool:
        return self.uri.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Problem:
    """A row (or file) that will not be sent, and why."""

    where: str
    reason: str
    product_id: str = ""
    image_id: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.where else self.reason


@dataclass
class Catalogue(Sequence[Entry]):
    """The entries to send, in order, with the rows refused and the warnings for the user."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:  # like a list's
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def summary(self) -> str:
        products = {(e.product_set, e.product_id) for e in self.entries}
        sets = {e.product_set for e in self.entries}
        refused = f"; {plural(len(self.problems), 'row')} with problems, not sent" if self.problems else ""
        return (f"{plural(len(self.entries), 'image')} of {plural(len(products), 'product')} in "
                f"{plural(len(sets), 'product set')}{refused}")


def read_catalogue(path: Path, product_set: str = "") -> Catalogue:
    """The catalogue at `path`; `product_set`: the set of the rows that name none."""
    # The readers build on the types above: imported here, not at the top.
    from lookalike.tools.catalogue_csv import read_csv
    from lookalike.tools.catalogue_folder import read_folder, with_records

    path = Path(path)
    if reason := set_name_problem(product_set):
        raise CatalogueError(f"product set {reason}")
    if path.is_file():
        return read_csv(path, product_set=product_set)
    if (path / "gallery.csv").is_file():  # benchmark layout: gallery.csv + gallery/ (+ products.csv)
        return with_records(read_csv(path / "gallery.csv", base=path / "gallery",
                                     product_set=product_set), path)
    if path.is_dir():
        return read_folder(path, product_set=product_set)
    raise CatalogueError(f"no catalogue at {path}: give a CSV file or a folder")


def misplaced_hint(path: Path) -> str:
    """A benchmark's gallery.csv names files in the gallery/ folder beside it: read as a plain
    CSV (the CSV given instead of its folder), every row misses. Where the file is, or ""."""
    if (path.parent / "gallery" / path.name).is_file():
        return (f" (it is in {path.parent / 'gallery'}: give the folder {path.parent}, "
                "the benchmark layout, instead of its gallery.csv)")
    return ""


def set_name_problem(name: str) -> str | None:
    """Why `name` is not a product set name ("" is the default set), or None."""
    if not name or PRODUCT_SET.fullmatch(name):
        return None
    return (f"{name[:80]!r} is not a set name: 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit")


def unsupported_scheme(uri: str) -> str | None:
    """Why `uri` cannot be read (a scheme other than file and http(s)), or None."""
    match = _SCHEME.match(uri)
    if not match or match[1].lower() in ("file", "http", "https"):
        return None
    return (f"unsupported URI scheme {match[1]!r}: {match[1]}:// is not read; download the images "
            "first and list their paths, or give http(s) URLs (signed URLs for a private "
            f"bucket): {uri}")


def field_problems(values: dict[str, object]) -> list[str]:
    """What the service would refuse in these fields (ids, set, product record)."""
    reasons = []
    for name in ("product_id", "image_id"):
        value = str(values.get(name, ""))
        if len(value) > MAX_ID_CHARS:
            reasons.append(f"{name} is {len(value):,} characters; at most {MAX_ID_CHARS}")
        if CONTROL.search(value):
            reasons.append(f"{name} {value[:40]!r} contains control characters")
    if reason := set_name_problem(str(values.get("product_set", ""))):
        reasons.append(f"product_set {reason}")
    for name, limit in (("category", MAX_ID_CHARS), ("title", MAX_TITLE_CHARS),
                        ("description", MAX_DESCRIPTION_CHARS)):
        if len(value := str(values.get(name, ""))) > limit:
            reasons.append(f"{name} is {len(value):,} characters; at most {limit:,}")
    labels = values.get("labels", ())
    if len(labels) > MAX_LABELS:
        reasons.append(f"{len(labels)} labels; at most {MAX_LABELS}")
    if any(len(label) > MAX_ID_CHARS for label in labels):
        reasons.append(f"a label is over {MAX_ID_CHARS} characters")
    return reasons


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def split_labels(cell: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in cell.split(",") if x.strip())


def capped(messages: list[str], what: str) -> list[str]:
    if len(messages) <= MAX_WARNINGS:
        return messages
    return messages[:MAX_WARNINGS] + [f"... and {len(messages) - MAX_WARNINGS:,} more {what}"]


def assemble(drafts: list[Entry], problems: list[Problem], warnings: list[str]) -> Catalogue:
    """One entry per image and one record per product; warnings where rows disagreed."""
    entries, overwritten = _last_of_each_image(drafts)
    entries, disagreements = _one_record_per_product(entries)
    return Catalogue(entries, problems, warnings + capped(overwritten, "repeated images")
                     + capped(disagreements, "products whose rows disagree"))


def _last_of_each_image(drafts: list[Entry]) -> tuple[list[Entry], list[str]]:
    # Sent both, the service would keep whichever a worker stored last: keep the last row here.
    last: dict[tuple[str, str, str], Entry] = {}
    repeats: dict[tuple[str, str, str], list[str]] = {}
    for entry in drafts:
        key = (entry.product_set, entry.product_id, entry.image_id)
        if key in last:
            repeats.setdefault(key, [last[key].where]).append(entry.where)
        last[key] = entry
    warnings = [
        f"{_product(s, p)} image {i!r} is given {len(w)} times ({', '.join(w)}): the last one "
        "overwrites the others (give each image its own image_id to keep them all)"
        for (s, p, i), w in repeats.items()]
    return [e for e in drafts if last[(e.product_set, e.product_id, e.image_id)] is e], warnings


def _one_record_per_product(entries: list[Entry]) -> tuple[list[Entry], list[str]]:
    # Per product, per field: each value given (the last one last) and the first row giving it.
    records: dict[tuple[str, str], dict[str, dict[object, str]]] = {}
    for entry in entries:
        fields = records.setdefault((entry.product_set, entry.product_id), {})
        for name in PRODUCT_FIELDS:
            if value := getattr(entry, name):
                values = fields.setdefault(name, {})
                values[value] = values.pop(value, entry.where)
    warnings = []
    for (product_set, product_id), fields in records.items():
        if differ := {n: values for n, values in fields.items() if len(values) > 1}:
            said = "; ".join(f"{n} on {', '.join(values.values())}" for n, values in differ.items())
            warnings.append(
                f"{_product(product_set, product_id)}: its rows disagree ({said}); a product has "
                "one title, category, labels and description: the last row that gives one wins")
    return [replace(e, **{n: list(values)[-1] for n, values in
                          records[(e.product_set, e.product_id)].items()}) for e in entries], warnings


def _product(product_set: str, product_id: str) -> str:
    return f"product {product_id!r}" + (f" of set {product_set!r}" if product_set else "")

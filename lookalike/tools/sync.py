"""Make the catalogue equal to a catalogue file: the plan (what differs), then its application.

Per product set named by the file (rows without one: the default set): products missing from
the file are deleted, new ones ingested; kept products get their new images ingested, their
images missing from the file deleted and their fields (category, title, labels,
description) updated when the file's last row of the product says otherwise. Sets the file
does not name are not touched. An image id in both is kept as stored: ingest the file
without --sync to embed changed files again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lookalike.client import Client
from lookalike.tools.catalogue import Entry
from lookalike.v1 import lookalike_pb2 as pb

FIELDS = ("category", "title", "labels", "description")


@dataclass
class SetPlan:
    product_set: str
    new_products: list[str] = field(default_factory=list)
    deleted_products: list[str] = field(default_factory=list)
    updated: dict[str, dict] = field(default_factory=dict)  # product -> fields that change
    new_images: list[Entry] = field(default_factory=list)  # of new and kept products
    deleted_images: dict[str, list[str]] = field(default_factory=dict)  # product -> image ids
    unchanged: int = 0  # kept products with nothing to do

    @property
    def empty(self) -> bool:
        return not (self.new_images or self.deleted_products or self.updated
                    or self.deleted_images)


def _fields(entry: Entry) -> dict:
    return {"category": entry.category, "title": entry.title, "labels": list(entry.labels),
            "description": entry.description}


def _stored(product: pb.Product) -> dict:
    return {"category": product.category, "title": product.title,
            "labels": list(product.labels), "description": product.description}


def plan_set(product_set: str, entries: Iterable[Entry], stored: Iterable[pb.Product]) -> SetPlan:
    """What makes the stored products of one set equal to the entries of that set."""
    wanted: dict[str, list[Entry]] = {}
    for entry in entries:
        wanted.setdefault(entry.product_id, []).append(entry)
    have = {p.product_id: p for p in stored}
    plan = SetPlan(product_set)
    plan.deleted_products = sorted(set(have) - set(wanted))
    for product_id, rows in wanted.items():
        product = have.get(product_id)
        if product is None:
            plan.new_products.append(product_id)
            plan.new_images += rows
            continue
        images = {image.image_id for image in product.images}
        new = [row for row in rows if row.image_id not in images]
        gone = sorted(images - {row.image_id for row in rows})
        changed = {k: v for k, v in _fields(rows[-1]).items() if _stored(product)[k] != v}
        plan.new_images += new
        if gone:
            plan.deleted_images[product_id] = gone
        if changed:
            plan.updated[product_id] = changed
        if not (new or gone or changed):
            plan.unchanged += 1
    plan.new_products.sort()
    return plan


def plan(client: Client, entries: list[Entry]) -> list[SetPlan]:
    """One plan per product set the entries name, against what the service stores."""
    by_set: dict[str, list[Entry]] = {}
    for entry in entries:
        by_set.setdefault(entry.product_set, []).append(entry)
    return [plan_set(name, rows, client.products(name)) for name, rows in sorted(by_set.items())]


def apply_deletions_and_updates(client: Client, plan: SetPlan) -> int:
    """Everything but the new images (bulk.ingest sends those); returns images deleted."""
    deleted = 0
    name = plan.product_set
    for start in range(0, len(plan.deleted_products), 1000):
        deleted += client.delete(plan.deleted_products[start:start + 1000], name)
    for product_id, image_ids in plan.deleted_images.items():
        deleted += client.delete_images(product_id, image_ids, name)
    for product_id, changed in plan.updated.items():
        client.update_product(product_id, name, **changed)
    return deleted

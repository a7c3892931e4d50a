"""Near-duplicate catalogue images: every image's neighbours above a cosine threshold, asked of
the engine in batches, joined into groups (connected components, union-find).

Cost: one nearest-neighbour query per image (batched), so about a millisecond per image on
the embedded engine: seconds for tens of thousands of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike.store.catalogue import CatalogueStore, must

BATCH = 256
NEIGHBOURS = 16  # per image: a group larger than this still joins through its members


@dataclass(frozen=True)
class Image:
    product_id: str
    image_id: str
    source: str
    title: str


def _image(payload: dict) -> Image:
    return Image(str(payload.get("product_id", "")), str(payload.get("image_id", "")),
                 payload.get("source", ""), payload.get("title", ""))


def find_duplicates(store: CatalogueStore, product_set: str, threshold: float,
                    within_products: bool = False
                    ) -> tuple[list[list[tuple[Image, float]]], int]:
    """(groups, images compared): each group by product id then image id, with each image's
    cosine to the group's first; largest groups first. Only groups spanning several products
    unless `within_products`. Deterministic: ties and order never depend on the engine's."""
    store.check_model()
    where = must(product_set)
    parent: dict[Image, Image] = {}

    def root(image: Image) -> Image:
        while parent[image] != image:
            parent[image] = parent[parent[image]]
            image = parent[image]
        return image

    vectors: dict[Image, np.ndarray] = {}
    offset = None
    while True:
        batch, offset = store.client.scroll_vectors(store.collection, offset, BATCH, where)
        batch = [(p, v) for p, v in batch if not p.get("view")]  # one vector per image
        for payload, vector in batch:
            image = _image(payload)
            vectors[image] = vector / (np.linalg.norm(vector) or 1.0)
            parent.setdefault(image, image)
        neighbours = store.client.nearest(store.collection, np.stack([v for _, v in batch])
                                          if batch else np.zeros((0, store.dim)), NEIGHBOURS,
                                          where, threshold)
        for (payload, _), hits in zip(batch, neighbours):
            for _, other in hits:
                if other.get("view"):
                    continue
                a, b = root(_image(payload)), root(parent.setdefault(_image(other), _image(other)))
                if a != b:
                    parent[max(a, b, key=_order)] = min(a, b, key=_order)
        if offset is None:
            break
    members: dict[Image, list[Image]] = {}
    for image in parent:
        if image in vectors:  # a neighbour stored meanwhile: compared next time
            members.setdefault(root(image), []).append(image)
    groups = []
    for images in members.values():
        if len(images) < 2 or (not within_products and len({i.product_id for i in images}) < 2):
            continue
        images.sort(key=_order)
        first = vectors[images[0]]
        groups.append([(i, float(vectors[i] @ first)) for i in images])
    groups.sort(key=lambda g: (-len(g), _order(g[0][0])))
    return groups, len(vectors)


def _order(image: Image) -> tuple[str, str]:
    return image.product_id, image.image_id

"""7. Beyond search by photo, one request in flight on a service holding the GroceryStoreDataset
gallery (titles and descriptions from its products.csv) or, without it, the generated sample:
Search by photo (verify off: the plain path), by text alone, by photo and text fused;
Recommend (one product liked, one disliked); DetectCopy of a JPEG re-encode of a catalogue
image; FindDuplicates over the whole set. Each call is followed by a bare batch-1 forward
pass, the run's baseline at the same moments; figures are server time (server_ms) where the
answer has it, else client wall time.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from bench.common import log, pct
from bench.report import Row
from bench.service import Service

if TYPE_CHECKING:
    from bench.run import Bench

SECTION = "discovery"


def _catalogue(b: Bench):
    """(entries, photos [(bytes, words)], product ids) for the service."""
    from lookalike.tools.catalogue import Entry

    if not b.data.gallery:
        from lookalike.tools.catalogue import read_catalogue
        from lookalike.tools.sample import generate

        root = b.workdir / "discovery-sample"
        generate(root)
        entries = list(read_catalogue(root / "catalogue.csv"))
        photos = [((root / "catalogue" / Path(e.uri).name).read_bytes(), e.title.split()[0])
                  for e in entries]
        return entries, photos, "the generated sample (no GroceryStoreDataset here)"
    described = {}
    products_csv = Path(b.data.root) / "products.csv"
    if products_csv.is_file():
        with products_csv.open(newline="") as f:
            described = {r["product_id"]: r for r in csv.DictReader(f)}
    entries = [Entry(uri=str(p), product_id=prod, image_id=p.name, category=cat,
                     title=prod.replace("-", " "),
                     description=described.get(prod, {}).get("description", ""))
               for p, prod, cat in b.data.gallery]
    category = {prod: cat for _, prod, cat in b.data.gallery}
    photos = [(p.read_bytes(), category[prod].replace("-", " ")) for p, prod, _ in b.data.photos]
    return entries, photos, "GroceryStoreDataset gallery"


def run(b: Bench) -> None:
    from lookalike.client import Client
    from lookalike.tools.bulk import ingest

    entries, photos, what = _catalogue(b)
    svc = Service(b.workdir / "discovery", b.workdir / "service-discovery.log", b.model_name)
    try:
        with Client(svc.target, timeout_s=300) as client:
            ingest(client, entries, poll_s=0.1)
            products = sorted({e.product_id for e in entries})
            copy = cv2.imencode(".jpg", cv2.imread(entries[0].uri),
                                [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
            n = b.cfg["verify_queries"]
            calls = {
                "Search by photo (verify off)": lambda i: client.search(
                    photos[i % len(photos)][0], verify="off"),
                "Search by text alone": lambda i: client.search(
                    b"", text=photos[i % len(photos)][1]),
                "Search by photo + text (fused)": lambda i: client.search(
                    photos[i % len(photos)][0], text=photos[i % len(photos)][1]),
                "Recommend (1 liked, 1 disliked)": lambda i: client.recommend(
                    [products[i % len(products)]], [products[(i + 7) % len(products)]]),
                "DetectCopy (a JPEG re-encode)": lambda i: client.detect_copy(copy),
            }
            times: dict[str, list[float]] = {name: [] for name in calls}
            base: list[float] = []
            for i in range(n + 2):
                for name, call in calls.items():
                    t = time.perf_counter()
                    answer = call(i)
                    wall = 1000 * (time.perf_counter() - t)
                    if i >= 2:  # warm-up calls left out
                        times[name].append(getattr(answer, "server_ms", 0.0) or wall)
                    base.append(b.model.time_forward(b.x1, 1, warm=0)[0])
            t = time.perf_counter()
            groups = client.duplicates()
            dup_ms = 1000 * (time.perf_counter() - t)
    finally:
        svc.stop()
    forward = float(np.median(base))
    b.res.details[SECTION] = {"times_ms": times, "interleaved_b1_ms": base, "catalogue": what}
    log(f"  {len(entries)} images ({what}), {n} calls each, bare b1 forward {forward:.1f} ms")
    photo_p50 = pct(times["Search by photo (verify off)"], 50)
    for name, values in times.items():
        p50 = pct(values, 50)
        b.res.add(Row(SECTION, f"{name}: p50", p50, "ms", p50 / forward, "/ bare b1 forward",
                      n=len(values), note=f"{what}; Search by photo p50 {photo_p50:.1f} ms: "
                      f"{p50 / photo_p50:.2f}x that"))
    b.res.add(Row(SECTION, f"FindDuplicates over {groups.images} images", dup_ms, "ms",
                  dup_ms / groups.images, "ms per image (client wall)", n=1,
                  note=f"{len(groups.groups)} groups at cosine {groups.threshold:.2f}"))

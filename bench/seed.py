"""5. For reference, the "seed article's way": Keras model.predict per image, the whole catalogue
re-embedded for every query; per image against the bare forward, per query against lookalike's
Search p50."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.report import Row

if TYPE_CHECKING:
    from bench.run import Bench


def run(b: Bench) -> None:
    import keras  # noqa: F401 - model.predict is the point of this row

    from lookalike.imaging import decode
    from lookalike.model import backbone
    from lookalike.model.preprocess import to_model_input

    if not b.data.gallery or not b.data.photos:
        b.res.skip("seed way", "model.predict + re-embed per query",
                   b.data.reason or "no gallery images", ">= 1")
        return
    cat = [p for p, *_ in b.data.gallery[: b.cfg["seed_catalogue"]]]
    queries = [p for p, *_ in b.data.photos[-b.cfg["seed_queries"]:]]
    model = backbone.pretrained_lite0(include_top=False)  # same network, ImageNet head

    def embed(path: Path) -> np.ndarray:
        img = to_model_input(decode(path.read_bytes()), 224)[None].astype(np.float32)
        v = model.predict(img, verbose=0)[0]
        return v / np.linalg.norm(v)

    embed(queries[0])
    per_query = []
    for q in queries:
        t = time.perf_counter()
        gallery = np.stack([embed(p) for p in cat])  # the whole catalogue, every query
        scores = gallery @ embed(q)
        np.argsort(-scores)[:10]
        per_query.append(1000 * (time.perf_counter() - t))
    b.seed_ms = float(np.median(per_query))
    per_image = b.seed_ms / (len(cat) + 1)
    b.res.details["seed"] = {"catalogue": len(cat), "queries": len(queries),
                             "per_query_ms": per_query}
    b.res.add(Row("seed way", f"model.predict per image ({len(cat)} catalogue + 1 query)",
                  per_image, "ms/img", per_image / b.b1_ms, "/ bare b1 forward",
                  n=len(per_query) * (len(cat) + 1),
                  note="Keras model.predict per image, decode included (info: the "
                       "overhead the tf.function path avoids)"))
    b.seed_rows = (len(cat), len(queries))


def ratio(b: Bench) -> None:
    """After the search rows: the seed way per query vs lookalike's Search p50."""
    if b.seed_ms is None:
        return
    n_cat, n_q = b.seed_rows
    if not b.search_p50:
        b.res.add(Row("seed way", f"per query, {n_cat}-image catalogue", b.seed_ms, "ms",
                      n=n_q, note="no lookalike Search p50 to compare with"))
        return
    size = min(b.search_p50)
    p50 = b.search_p50[size]
    per_image = b.seed_ms / (n_cat + 1)
    b.res.add(Row("seed way", f"per query, {n_cat}-image catalogue re-embedded", b.seed_ms,
                  "ms", b.seed_ms / p50, f"/ lookalike p50 at {size:,}", ">= 1", n=n_q,
                  note=f"lookalike searches {size:,} images in {p50:.0f} ms; the seed way "
                       f"would take ~{per_image * (size + 1) / 1000:,.0f} s per query at "
                       f"{size:,} (estimate: linear in catalogue size)"))

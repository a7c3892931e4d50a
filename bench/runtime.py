"""9. Recall@1 per serving runtime (lookalike/model/runtime.py) on the dev sets: each runtime
embeds the catalogue images whole and the photos by their middle, as the service does, and a
photo's nearest catalogue image must be of its product (stage 1 alone: the runtimes differ in
the vectors only). GroceryStoreDataset and, when present, the SMVS DVD covers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import log
from bench.report import Row

if TYPE_CHECKING:
    from bench.run import Bench

CHUNK = 64  # photos decoded at a time: 2,591 decoded photos would hold gigabytes


def recall_at_1(model, gallery: Sequence[tuple[Path, str]], photos: Sequence[tuple[Path, str]]
                ) -> float:
    from lookalike.imaging import decode

    catalogue = np.vstack(model.embed_catalogue([decode(p.read_bytes()) for p, _ in gallery]))
    products = np.array([product for _, product in gallery])
    hits = 0
    for i in range(0, len(photos), CHUNK):
        part = photos[i : i + CHUNK]
        vectors = model.embed_query([decode(p.read_bytes(), target_side=model.side) for p, _ in part])
        nearest = products[np.argmax(vectors @ catalogue.T, axis=1)]
        hits += int(np.sum(nearest == np.array([product for _, product in part])))
    return hits / max(1, len(photos))


def run(b: Bench) -> None:
    from bench.verify import smvs_source
    from lookalike.config import ConfigError
    from lookalike.model import load_model, model_id
    from lookalike.model.registry import INT8, RUNTIMES

    sets: list[tuple[str, list, list]] = []
    if b.data.photos:
        sets.append(("GroceryStoreDataset", [(p, prod) for p, prod, _ in b.data.gallery],
                     [(p, prod) for p, prod, _ in b.data.photos]))
    smvs = smvs_source()
    if smvs is not None:
        sets.append(("SMVS DVD covers", smvs.gallery, smvs.queries))
    if not sets:
        b.res.skip("runtime", "Recall@1 per runtime", b.data.reason)
        return
    found: dict[tuple[str, str], float] = {}
    runtimes = list(RUNTIMES)
    for runtime in RUNTIMES:
        try:
            model = (b.model.embedder if runtime == b.model.runtime
                     else load_model(b.model_name, runtime=runtime))
        except ConfigError as exc:
            runtimes.remove(runtime)
            b.res.skip("runtime", f"Recall@1 (stage 1), {runtime}", str(exc))
            continue
        for name, gallery, photos in sets:
            found[(name, runtime)] = recall_at_1(model, gallery, photos)
            log(f"  {name}, {runtime}: Recall@1 {found[(name, runtime)]:.4f} ({len(photos)} photos)")
    b.res.details["runtime_recall@1"] = {f"{n} / {r}": v for (n, r), v in found.items()}
    for name, _, photos in sets:
        reference = found[(name, "keras")]
        for runtime in runtimes:
            value = found[(name, runtime)]
            # The bound: within 0.01 of Keras for a float runtime, 0.02 for int8.
            target = {"keras": "", INT8: ">= -0.02"}.get(runtime, ">= -0.01")
            b.res.add(Row("runtime", f"{name} Recall@1 (stage 1), {runtime}", value, "",
                          value - reference, "- Keras", target,
                          n=len(photos), note=f"{model_id(b.model_name, runtime)}; Keras {reference:.4f}"))

"""Per-object search scored on generated scenes (lookalike.tools.scenes), through the service.

A found object is a hit when its first product is a product placed in the scene that no
other found object took yet, and their outlines overlap with IoU >= 0.5 (greedy, strongest
object first). Precision = hits / found objects, recall = hits / placed products, per kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.client import Client
from lookalike.verify.objects import polygon_iou

HIT_IOU = 0.5


@dataclass
class SceneResult:
    file: str
    kind: str
    truth: list[dict]                          # {"product_id", "polygon"} placed in the scene
    found: list[tuple[str, list, float]]       # (product_id, outline, score), strongest first
    server_ms: float = 0.0
    hits: list[bool] = field(default_factory=list)  # per found object

    def score(self) -> None:
        taken: set[int] = set()
        self.hits = []
        for product, outline, _ in self.found:
            hit = next((i for i, t in enumerate(self.truth) if i not in taken
                        and t["product_id"] == product
                        and polygon_iou(t["polygon"], outline) >= HIT_IOU), None)
            if hit is not None:
                taken.add(hit)
            self.hits.append(hit is not None)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def summary(results: list[SceneResult], model: str) -> dict:
    out: dict = {"model": model, "scenes": len(results), "iou": HIT_IOU}
    for kind in sorted({r.kind for r in results}):
        mine = [r for r in results if r.kind == kind]
        placed, found = sum(len(r.truth) for r in mine), sum(len(r.found) for r in mine)
        hits = sum(sum(r.hits) for r in mine)
        out[kind] = {"scenes": len(mine), "objects": placed, "found": found, "hits": hits,
                     "precision": hits / found if found else 0.0,
                     "recall": hits / placed if placed else 0.0,
                     "server_ms_p50": _pct([r.server_ms for r in mine], 50)}
    times = [r.server_ms for r in results]
    out["server_ms_p50"], out["server_ms_p99"] = _pct(times, 50), _pct(times, 99)
    return out


def run(client: Client, bench: Path, on_scene: Callable[[], None] = lambda: None,
        limit: int | None = None) -> tuple[list[SceneResult], str]:
    truth = json.loads((bench / "scenes.json").read_text())
    results, model = [], ""
    for scene in truth["scenes"][:limit]:
        response = client.search((bench / scene["file"]).read_bytes(), top_k=3, per_object=True)
        model = response.model
        found = [(o.matches[0].product_id, [(p.x, p.y) for p in o.bounding_poly], o.score)
                 for o in response.objects if o.matches]
        result = SceneResult(scene["file"], scene["kind"], scene["objects"], found,
                             response.server_ms)
        result.score()
        results.append(result)
        on_scene()
    return results, model

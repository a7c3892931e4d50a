"""Stage-1 quality on products the model never saw: K-fold product split (K=2 by default).

    .venv/bin/python scripts/unseen_folds.py --out /tmp/unseen   # ~10 min on 2 cores

For each fold of GroceryStoreDataset's 40 products (stratified by top_category, seed 0: the
folds of scripts/quality_experiments.py, dealt K ways), the shipped recipe (`lookalike train`
defaults) is trained on the other products only, then each model is evaluated through its
serving class (ShelfModel / ImageNetLite0: the query views and preprocessing the service
uses) on the held-out products (K=2: 20-way) and on the SMVS DVD covers (50-way, never
trained on), with the query photo whole (query_crop 1.0) and as shipped (0.8).
Prints a table (Recall@1/5/10, mAP) and writes OUT/unseen.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lookalike.imaging import decode  # noqa: E402
from lookalike.model.base import EmbeddingModel  # noqa: E402
from lookalike.model.registry import load_model  # noqa: E402
from lookalike.model.shelf import ShelfModel  # noqa: E402
from lookalike.training import load_benchmark  # noqa: E402
from lookalike.training.cli import train  # noqa: E402
from scripts.quality_experiments import folds  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CROPS = (1.0, 0.8)


def benchmark(root: Path, products: set[str] | None = None):
    with (root / "gallery.csv").open(newline="") as f:
        gallery = [(root / "gallery" / r["gallery_file"], r["product_id"]) for r in csv.DictReader(f)]
    with (root / "ground_truth.csv").open(newline="") as f:
        queries = [(root / "queries" / r["query_file"], r["product_id"]) for r in csv.DictReader(f)]
    keep = (lambda p: p in products) if products else (lambda p: True)
    return [g for g in gallery if keep(g[1])], [q for q in queries if keep(q[1])]


def evaluate(model: EmbeddingModel, gallery, queries, images: dict) -> dict[str, float]:
    g = np.concatenate(model.embed_catalogue([images[p] for p, _ in gallery]))
    q = np.concatenate([model.embed_query([images[p] for p, _ in queries[i:i + 64]])
                        for i in range(0, len(queries), 64)])
    products = [prod for _, prod in gallery]
    ranks = []
    for vector, (_, truth) in zip(q, queries):
        order = [products[j] for j in np.argsort(-(g @ vector))]
        ranks.append(list(dict.fromkeys(order)).index(truth) + 1)
    ranks = np.array(ranks)
    return {"recall@1": float((ranks <= 1).mean()), "recall@5": float((ranks <= 5).mean()),
            "recall@10": float((ranks <= 10).mean()), "mAP": float((1 / ranks).mean()),
            "queries": len(queries), "products": len(set(products))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grocery", type=Path, default=SHARED / "grocerystore_dev")
    ap.add_argument("--dvd", type=Path, default=SHARED / "smvs_dvd_dev")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/lookalike-unseen"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    dvd = benchmark(a.dvd) if (a.dvd / "gallery.csv").is_file() else None
    images: dict[Path, np.ndarray] = {}
    for path, _ in [*benchmark(a.grocery)[0], *benchmark(a.grocery)[1],
                    *((dvd[0] + dvd[1]) if dvd else [])]:
        images[path] = decode(path.read_bytes())
    imagenet = load_model("efficientnet-lite0")
    results = []
    for k, held_out in enumerate(folds(a.grocery, k=a.folds)):
        trained = [p for p in sorted({p for _, p in benchmark(a.grocery)[0]}) if p not in held_out]
        stem = a.out / f"fold{k}"
        if not stem.with_suffix(".npz").is_file():
            train(load_benchmark(a.grocery, trained), stem, log=lambda *m: None)
        shelf = ShelfModel(f"fold{k}", "unseen", stem)
        sets = {f"grocery {len(held_out)}-way held out": benchmark(a.grocery, set(held_out))}
        if dvd:
            sets["SMVS DVD 50-way"] = dvd
        for model_name, model in (("efficientnet-lite0", imagenet), ("shipped recipe", shelf)):
            for crop in CROPS:
                model.query_crop = crop
                for set_name, (gallery, queries) in sets.items():
                    r = evaluate(model, gallery, queries, images)
                    results.append({"fold": k, "model": model_name, "query_crop": crop,
                                    "set": set_name, **r})
                    print(f"fold {k} | {model_name:18} | crop {crop} | {set_name:28} | "
                          f"R@1 {r['recall@1']:.3f} R@5 {r['recall@5']:.3f} "
                          f"R@10 {r['recall@10']:.3f} mAP {r['mAP']:.3f}", flush=True)
    (a.out / "unseen.json").write_text(json.dumps(results, indent=1))
    print("mean over folds:")
    keys = sorted({(r["model"], r["query_crop"], r["set"]) for r in results})
    for model_name, crop, set_name in keys:
        rs = [r for r in results if (r["model"], r["query_crop"], r["set"]) == (model_name, crop, set_name)]
        print(f"  {model_name:18} | crop {crop} | {set_name:28} | R@1 "
              f"{np.mean([r['recall@1'] for r in rs]):.3f} ("
              + " / ".join(f"{r['recall@1']:.3f}" for r in rs) + f") mAP "
              f"{np.mean([r['mAP'] for r in rs]):.3f}")


if __name__ == "__main__":
    main()

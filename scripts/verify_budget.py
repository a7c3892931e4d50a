"""Stage 2's cost against its quality: query keypoints, query image size and shortlist size.

    .venv/bin/python scripts/verify_budget.py ../shared/data/smvs_dvd_dev ../shared/data/grocerystore_dev \
        --every 3 --json /tmp/verify-budget.json

For each dev set: the default model's stage-1 shortlist (catalogue views and query crop as the
service embeds them), the catalogue's local features as the worker stores them, and the photos
decoded as the service decodes them. Then, per setting, Recall@1 with verify=off and auto
(overall and per top category, from products.csv where there is one) and the stage-2 time per
photo (OpenCV's and numpy's default threads, as the service runs them): keypoints of the
photo, matching with the shortlist, RANSAC fits. And, for the shipped setting, what skipping
stage 2 when stage 1 leads by a margin would keep.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookalike.imaging import decode  # noqa: E402
from lookalike.model import load_model  # noqa: E402
from lookalike.verify.geometry import VerifyParams  # noqa: E402
from lookalike.verify.rerank import StageTwo, order, unpack_all, verify_ranked  # noqa: E402

# (photo long side, photo keypoints, products verified, verified first, decisive inliers): the
# shipped one first; "first" 50 verifies the whole shortlist at once. Measured on 2 cores:
# smaller photos or shortlists cost DVD covers Recall@1 (0.960 at 640/500/50; 0.930 at
# 480/300/50; 0.850 at 320/300/50; 0.775 at 480/300/20).
SETTINGS = [(640, 500, 50, 10, 32), (640, 500, 50, 50, 0), (640, 500, 50, 10, 24),
            (640, 500, 50, 10, 48), (640, 300, 50, 50, 0), (480, 300, 50, 50, 0),
            (320, 300, 50, 50, 0), (480, 300, 20, 50, 0)]
# Stage 1 margins (top product's cosine minus the next product's) from which stage 2 is skipped.
MARGINS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2)


def read_set(root: Path, every: int):
    with (root / "gallery.csv").open(newline="") as f:
        gallery = [(root / "gallery" / r["gallery_file"], r["product_id"]) for r in csv.DictReader(f)]
    with (root / "ground_truth.csv").open(newline="") as f:
        photos = [(root / "queries" / r["query_file"], r["product_id"]) for r in csv.DictReader(f)]
    top: dict[str, str] = {}
    if (root / "products.csv").is_file():
        with (root / "products.csv").open(newline="") as f:
            top = {r["product_id"]: r.get("top_category", "") for r in csv.DictReader(f)}
    return gallery, photos[::every], top


def evaluate(root: Path, every: int, model, settings: list[tuple[int, ...]], stage: StageTwo) -> dict:
    gallery, photos, top = read_set(root, every)
    catalogue = [decode(p.read_bytes()) for p, _ in gallery]
    cat_vectors = model.embed_catalogue(catalogue)
    cat_products = [pid for _, pid in gallery]
    packed = [stage.catalogue_features(img).pack() for img in catalogue]
    pixels = [decode(p.read_bytes(), target_side=model.side) for p, _ in photos]
    queries = model.embed_query(pixels)
    # Products by their best view's cosine: what the store's grouped search returns.
    scores = np.stack([(views @ queries.T).max(0) for views in cat_vectors], 1)  # (photos, images)
    result: dict = {"photos": len(photos), "products": len(set(cat_products)), "settings": []}
    for long_side, points, shortlist, first, decisive in settings:
        s = replace(stage, long_side=long_side, query_points=points, first=first, decisive=decisive)
        hits = {"off": [], "auto": []}
        cats: dict[str, dict[str, list[bool]]] = defaultdict(lambda: {"off": [], "auto": []})
        times, margins = [], []
        for i, (px, (_, truth)) in enumerate(zip(pixels, photos)):
            order_ = np.argsort(-scores[i], kind="stable")[:shortlist]
            others = [scores[i][j] for j in order_ if cat_products[j] != cat_products[order_[0]]]
            margins.append(scores[i][order_[0]] - (others[0] if others else -1.0))
            t = time.perf_counter()
            query = s.query_features(px)
            evidence = verify_ranked(query, unpack_all([packed[j] for j in order_]),
                                     VerifyParams(min_inliers=s.min_inliers), s.first, s.decisive)
            ranked = order("auto", evidence, [scores[i][j] for j in order_], s.min_inliers)
            times.append(1000 * (time.perf_counter() - t))
            for mode, top1 in (("off", order_[0]), ("auto", order_[ranked[0].index])):
                hit = cat_products[top1] == truth
                hits[mode].append(hit)
                cats[top.get(truth, "all")][mode].append(hit)
        row = {"long_side": long_side, "query_points": points, "shortlist": shortlist,
               "first": first, "decisive": decisive,
               "r1_off": float(np.mean(hits["off"])), "r1_auto": float(np.mean(hits["auto"])),
               "ms_p50": float(np.median(times)), "ms_p90": float(np.percentile(times, 90)),
               "by_top_category": {c: {m: round(float(np.mean(v)), 4) for m, v in d.items()}
                                   for c, d in sorted(cats.items())}}
        if (long_side, points, shortlist, first, decisive) == settings[0]:
            row["early_exit"] = early_exit(np.array(margins), hits, photos, top)
        result["settings"].append(row)
        print(f"{root.name}: side {long_side} points {points} shortlist {shortlist} first {first} "
              f"decisive {decisive}: R@1 off "
              f"{row['r1_off']:.3f} auto {row['r1_auto']:.3f}; stage 2 p50 {row['ms_p50']:.1f} ms "
              f"p90 {row['ms_p90']:.1f}; " + ", ".join(
                  f"{c} {d['off']:.3f}/{d['auto']:.3f}" for c, d in row["by_top_category"].items()),
              flush=True)
    return result


def early_exit(margins: np.ndarray, hits: dict[str, list[bool]], photos, top: dict[str, str]
               ) -> list[dict]:
    """Skipping stage 2 when stage 1 leads by `margin`: the share skipped and Recall@1."""
    off, auto = np.array(hits["off"]), np.array(hits["auto"])
    cats = np.array([top.get(truth, "all") for _, truth in photos])
    out = []
    for margin in MARGINS:
        skip = margins >= margin
        final = np.where(skip, off, auto)
        out.append({"margin": margin, "skipped": round(float(skip.mean()), 4),
                    "r1": round(float(final.mean()), 4),
                    "by_top_category": {c: round(float(final[cats == c].mean()), 4)
                                        for c in sorted(set(cats))}})
        print(f"    skip from margin {margin}: {skip.mean():.2f} skipped, R@1 {final.mean():.3f} "
              + ", ".join(f"{c} {v:.3f}" for c, v in out[-1]["by_top_category"].items()), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=1, help="every n-th photo (default all)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--settings", type=int, default=len(SETTINGS),
                        help="the first n settings only (1: the shipped one)")
    parser.add_argument("--setting", action="append", default=[],
                        help="SIDE,POINTS,SHORTLIST,FIRST,DECISIVE instead of the list (repeatable)")
    parser.add_argument("--kind", default=StageTwo.kind, help="local features: sift or orb")
    parser.add_argument("--catalogue-points", type=int, default=StageTwo.catalogue_points)
    args = parser.parse_args()
    model = load_model()
    stage = StageTwo(kind=args.kind, catalogue_points=args.catalogue_points)
    settings = ([tuple(int(v) for v in text.split(",")) for text in args.setting]
                or SETTINGS[: args.settings])
    out = {str(root): evaluate(root, args.every, model, settings, stage)
           for root in args.data}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

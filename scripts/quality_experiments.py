"""Retrieval quality on products the method never saw: 4-fold product split, fixed seeds.

    .venv/bin/python scripts/quality_experiments.py --data ../shared/data/grocerystore_dev --out /tmp/qx

Folds: the 40 products, stratified by top_category, shuffled with seed 0, 4 x 10.
For each fold every learnt thing (domain means, whitening, trained layers) sees only
the other 30 products; retrieval is among the 10 held-out products. Frozen-trunk
features (block 12 output, 7x7x192) are cached as float16 under --cache.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tensorflow as tf  # noqa: E402

from lookalike.model import backbone  # noqa: E402
from lookalike.model.preprocess import to_model_input  # noqa: E402
from lookalike.model.tail import forward_batched, l2n, split_model  # noqa: E402
from lookalike.model.views import ingest_views  # noqa: E402
from lookalike.training import (  # noqa: E402
    TrainConfig,
    TrainingSet,
    build_training_set,
    fit,
    load_benchmark,
    save_artifact,
)

SPLIT, K, N_VIEWS = 13, 4, 16


def folds(data: Path, seed: int = 0, k: int = K) -> list[list[str]]:
    """The products, stratified by top_category, shuffled with `seed`, dealt into k folds."""
    by_top = defaultdict(list)
    with (data / "products.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            by_top[r["top_category"]].append(r["product_id"])
    rng, order = np.random.default_rng(seed), []
    for top in sorted(by_top):
        order += [str(p) for p in rng.permutation(sorted(by_top[top]))]
    return [sorted(order[i::k]) for i in range(k)]


def centre_crop(img, frac=0.7):
    h, w = img.shape[:2]
    ch, cw = int(h * frac), int(w * frac)
    return img[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]


def pad_square(img, value=114):
    h, w = img.shape[:2]
    s = max(h, w)
    out = np.full((s, s, 3), value, np.uint8)
    out[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = img
    return out


def build_cache(data: Path, cache: Path, fold_list, log=print) -> dict:
    cache.mkdir(parents=True, exist_ok=True)
    if (cache / "done.json").is_file():
        return json.loads((cache / "done.json").read_text())
    t0 = time.time()
    ds = load_benchmark(data)
    full = backbone.pretrained_lite0(include_top=False)
    trunk, _ = split_model(SPLIT, full)
    fn = tf.function(lambda x: trunk(x, training=False), reduce_retracing=True)

    def run(imgs, side=224):
        x = np.stack([to_model_input(i, side) for i in imgs]).astype(np.float32)
        return forward_batched(fn, x).astype(np.float16)

    np.save(cache / "q224.npy", run(ds.photos))
    np.save(cache / "qcrop224.npy", run([centre_crop(p) for p in ds.photos]))
    nonsq = [i for i, p in enumerate(ds.photos) if p.shape[0] != p.shape[1]]
    np.save(cache / "qpad_idx.npy", np.asarray(nonsq))
    np.save(cache / "qpad224.npy", run([pad_square(ds.photos[i]) for i in nonsq]))
    np.save(cache / "q320.npy", run(ds.photos, 320))
    np.save(cache / "g320.npy", run(ds.catalogue, 320))
    log(f"queries cached {time.time() - t0:.0f}s")
    for kind in ("clutter", "photo"):
        views = [v for img in ds.catalogue for v in ingest_views(img, N_VIEWS, 0, 224, kind)]
        np.save(cache / f"g_{kind}.npy", run(views).reshape(len(ds.catalogue), N_VIEWS, 7, 7, -1))
    # training views: composites of product P use clutter from photos of P's own fold only,
    # so when P is a training product its backgrounds are training products too (no leakage).
    fold_of = {p: k for k, ps in enumerate(fold_list) for p in ps}
    clutter_for = {p: [ph for ph, lab in zip(ds.photos, ds.photo_labels) if fold_of[lab] == fold_of[p] and lab != p]
                   for p in fold_of}
    ts = build_training_set(ds, fn, TrainConfig(), clutter_for, log)
    np.save(cache / "train_x.npy", ts.features)
    np.save(cache / "train_y.npy", ts.labels)
    np.save(cache / "train_dom.npy", ts.domain)
    meta = {"classes": ts.classes, "photo_labels": ds.photo_labels, "cat_labels": ds.catalogue_labels,
            "seconds": round(time.time() - t0)}
    (cache / "done.json").write_text(json.dumps(meta))
    return meta


# ----------------------------------------------------------------------------- scoring
def score(qv, qlab, gv, glab):
    """qv [nq, r, d] (r query vectors, e.g. regions/crops), gv [ng, d]; product score = max."""
    sims = np.einsum("qrd,gd->qrg", qv, gv).max(1)
    prods = sorted(set(glab))
    g_idx = np.asarray([prods.index(lab) for lab in glab])
    ps = np.full((len(qv), len(prods)), -np.inf)
    for j in range(len(prods)):
        ps[:, j] = sims[:, g_idx == j].max(1)
    truth = np.asarray([prods.index(lab) for lab in qlab])
    rank = (ps > ps[np.arange(len(qv)), truth][:, None]).sum(1) + 1
    return np.mean(rank <= 1), np.mean(rank <= 5), np.mean(1 / rank)


def gem_np(maps, p):
    m = np.maximum(maps.astype(np.float32), 1e-6)
    return m.mean((1, 2)) if p == 1 else (m ** p).mean((1, 2)) ** (1 / p)


def regions(maps, p, levels=3):
    s = maps.shape[1]
    out = []
    for lev in range(1, levels + 1):
        w = min(s, int(np.ceil(2 * s / (lev + 1))))
        pos = np.unique(np.round(np.linspace(0, s - w, lev)).astype(int))
        for y in pos:
            for x in pos:
                out.append(l2n(gem_np(maps[:, y:y + w, x:x + w], p)))
    return np.stack(out, 1)


def whitening(x, dim=256, shrink=0.1):
    mu = x.mean(0)
    cov = np.cov((x - mu).T)
    ev, evec = np.linalg.eigh(cov)
    ev, evec = ev[::-1][:dim], evec[:, ::-1][:, :dim]
    return mu, evec / np.sqrt(ev + shrink * ev.mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/grocerystore_dev", type=Path)
    ap.add_argument("--out", default="/tmp/lookalike-qx", type=Path)
    ap.add_argument("--cache", default="/tmp/lookalike-exp", type=Path)
    ap.add_argument("--parts", default="tricks,train")
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    logf = (a.out / "log.txt").open("a")

    def log(*m):
        s = " ".join(str(x) for x in m)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    fl = folds(a.data)
    log("folds:", fl)
    meta = build_cache(a.data, a.cache, fl, log)
    qlab, glab = np.asarray(meta["photo_labels"]), np.asarray(meta["cat_labels"])
    full = backbone.pretrained_lite0(include_top=False)
    _, tail = split_model(SPLIT, full)
    tfn = tf.function(lambda x: tail(x, training=False), reduce_retracing=True)

    def maps(name):
        return forward_batched(tfn, np.load(a.cache / f"{name}.npy").astype(np.float32), 128).astype(np.float16)

    rows: dict[str, list] = defaultdict(list)

    def record(name, fold, r, secs=0.0):
        rows[name].append((*r, secs))
        log(f"fold {fold} {name:38s} R@1 {r[0]:.3f} R@5 {r[1]:.3f} mAP {r[2]:.3f}")

    if "tricks" in a.parts:
        M = {"q": maps("q224"), "qc": maps("qcrop224"), "q320": maps("q320"), "g320": maps("g320")}
        qpad = M["q"].copy()
        qpad[np.load(a.cache / "qpad_idx.npy")] = maps("qpad224")
        gmaps = {k: forward_batched(tfn, np.load(a.cache / f"g_{k}.npy").reshape(-1, 7, 7, 192).astype(np.float32),
                                   128).reshape(40, N_VIEWS, 7, 7, -1) for k in ("clutter", "photo")}
        for k, test in enumerate(fl):
            qi, gi = np.isin(qlab, test), np.isin(glab, test)
            tq, tg = ~qi, ~gi

            def run(name, p=1, nviews=1, vkind="clutter", qmaps=None, gm=None, dmean=False, region=False,
                    crop=False, white=False):
                qm = M["q"] if qmaps is None else qmaps
                gall = gmaps[vkind][:, :nviews] if gm is None else gm[:, None]
                G = l2n(gem_np(gall.reshape(-1, *gall.shape[2:]), p)).reshape(40, gall.shape[1], -1)
                Q = l2n(gem_np(qm, p))[:, None]
                if region:
                    Q = regions(qm, p)
                if crop:
                    Q = np.concatenate([Q, l2n(gem_np(M["qc"], p))[:, None]], 1)
                if dmean:
                    cm, qmean = G[tg].reshape(-1, G.shape[-1]).mean(0), Q[tq, 0].mean(0)
                    G, Q = l2n(G - cm), l2n(Q - qmean)
                if white:
                    train = np.concatenate([G[tg].reshape(-1, G.shape[-1]), Q[tq, 0]])
                    mu, P = whitening(train)
                    G, Q = l2n((G - mu) @ P), l2n((Q - mu) @ P)
                gv = G[gi].reshape(-1, G.shape[-1])
                record(name, k, score(Q[qi], qlab[qi], gv, np.repeat(glab[gi], G.shape[1])))

            run("off-the-shelf (GAP, 224, 1 view)")
            run("GeM p=3", p=3)
            run("region max (R-MAC regions, query)", region=True)
            run("domain mean subtraction", dmean=True)
            run("catalogue views x4 (clutter)", nviews=4)
            run("catalogue views x8 (clutter)", nviews=8)
            run("catalogue views x16 (clutter)", nviews=16)
            run("catalogue views x8 (crop/rot/colour)", nviews=8, vkind="photo")
            run("multi-crop query (full + centre 0.7, max)", crop=True)
            run("input 320 px", qmaps=M["q320"], gm=M["g320"])
            run("aspect-preserving pad (queries)", qmaps=qpad)
            run("PCA whitening 256 (train products)", white=True)
            run("GeM + dmean + views x8", p=3, nviews=8, dmean=True)
            run("GeM + dmean + views x8 + region", p=3, nviews=8, dmean=True, region=True)
            run("GeM + dmean + views x8 + region + crop", p=3, nviews=8, dmean=True, region=True, crop=True)
            run("GeM + dmean + views x16 + whitening", p=3, nviews=16, dmean=True, white=True)
            run("dmean + region + crop (GAP)", dmean=True, region=True, crop=True)
            run("dmean + views x8 crop/rot + region + crop (GAP)", nviews=8, vkind="photo", dmean=True,
                region=True, crop=True)
            run("dmean + views x8 clutter + region + crop (GAP)", nviews=8, dmean=True, region=True, crop=True)

    if "train" in a.parts:
        tx, ty, tdom = (np.load(a.cache / f"train_{n}.npy") for n in ("x", "y", "dom"))
        classes = meta["classes"]
        q224 = np.load(a.cache / "q224.npy")
        gcl = np.load(a.cache / "g_clutter.npy")
        configs = {
            "CE head, frozen (256-d)": TrainConfig(mode="head", loss="ce", steps=1000, head_steps=0),
            "cosine head, frozen (256-d)": TrainConfig(mode="head", loss="cosine", steps=1000, head_steps=0),
            "CE, unfreeze block15+head": TrainConfig(mode="unfreeze", loss="ce", steps=a.steps),
            "cosine, unfreeze block15+head": TrainConfig(mode="unfreeze", loss="cosine", steps=a.steps),
        }
        for k, test in enumerate(fl):
            keep = ~np.isin(np.asarray(classes)[ty], test)
            sub_classes = [c for c in classes if c not in test]
            remap = np.asarray([sub_classes.index(c) if c in sub_classes else -1 for c in classes])
            ts = TrainingSet(tx[keep], remap[ty[keep]], tdom[keep], sub_classes)
            qi, gi = np.isin(qlab, test), np.isin(glab, test)
            for name, cfg in configs.items():
                tr = fit(ts, cfg, full, log=lambda *m: None)
                Qall = tr.embed_features(q224)
                Gall = tr.embed_features(gcl.reshape(-1, 7, 7, 192)).reshape(40, N_VIEWS, -1)
                for nv, dm in ((1, False), (8, True)):
                    G, Q = Gall[:, :nv], Qall
                    if dm:
                        cm, qm = G[~gi].reshape(-1, G.shape[-1]).mean(0), Q[~qi].mean(0)
                        G, Q = l2n(G - cm), l2n(Q - qm)
                    suffix = "" if nv == 1 else " + dmean + views x8"
                    record(name + suffix, k, score(Q[qi][:, None], qlab[qi],
                                                   G[gi].reshape(-1, G.shape[-1]), np.repeat(glab[gi], nv)),
                           tr.seconds)
                if k == 0:
                    save_artifact(tr, a.out / f"fold0-{name.split(',')[0].replace(' ', '_')}")

    log("\n| method | R@1 | R@5 | mAP | train s/fold |\n|---|---|---|---|---|")
    for name, rs in rows.items():
        m = np.mean(rs, 0)
        note = "" if len(rs) == K else f" ({len(rs)} folds)"
        log(f"| {name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.0f} |" + note)
    (a.out / "results.json").write_text(json.dumps({k: np.asarray(v).tolist() for k, v in rows.items()}))


if __name__ == "__main__":
    main()

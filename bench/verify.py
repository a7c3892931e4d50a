"""6. Two-stage search (lookalike/verify): Search with verify="off", verify="auto" and
per_object=True (the products found in the photo, verify auto), one
request in flight, on a service whose catalogue holds real images with their local features
(the ingest section's service and catalogue when it ran, plus the Stanford Mobile Visual
Search DVD covers when present; else a service started here on the gallery images).
Queries are real photos not in the catalogue where there are any: GroceryStoreDataset store
photos and the SMVS DVD cover photos, alternately. Each photo is searched in each mode
(their order alternates), each request followed by a bare batch-1 forward pass: the
baseline sees the same moments of the machine. Figures: server-side latency
(SearchResponse.server_ms) p50/p99; ratios p50 / bare batch-1 forward, p99 / p50.

Also the size of the packed catalogue local features per image (what the worker stores in
the `features` payload field), recomputed here on the ingested images, against 32 KB.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import ROOT, log, pct
from bench.report import Row
from bench.service import Service, scrape

if TYPE_CHECKING:
    from bench.run import Bench

SECTION = "verify"
SMVS_DATA = ROOT.parent / "shared" / "data" / "smvs_dvd_dev"  # SMVS DVD covers, dev split
FEATURE_BUDGET = 32 * 1024  # bytes of packed local features per catalogue image
MODES = ("off", "auto", "objects")  # objects: per_object=True (verify auto)
TARGETS = {"off": "<= 0.75", "auto": "<= 2", "objects": "<= 5"}
WARM = 2  # searches per mode before measuring (the first SIFT call initialises OpenCV)


@dataclass
class Catalogue:
    """A service's data dir, the service when it runs, and the real images ingested into it."""
    data_dir: Path
    svc: Service | None = None
    images: list[tuple[Path, str, str]] = field(default_factory=list)  # file, image_id, product

    def products(self) -> dict[str, str]:
        return {image_id: product for _, image_id, product in self.images}


@dataclass
class Source:
    name: str
    gallery: list[tuple[Path, str]]   # catalogue images: file, product
    queries: list[tuple[Path, str]]   # photos of them: file, product
    id_prefix: str = ""


def read_pairs(csv_path: Path, folder: Path, file_col: str) -> list[tuple[Path, str]]:
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as f:
        rows = [(folder / r[file_col], r["product_id"]) for r in csv.DictReader(f)]
    return [r for r in rows if r[0].is_file()]


def smvs_source(root: Path = SMVS_DATA) -> Source | None:
    gallery = read_pairs(root / "gallery.csv", root / "gallery", "gallery_file")
    queries = read_pairs(root / "ground_truth.csv", root / "queries", "query_file")
    return Source("SMVS DVD covers", gallery, queries, "dvd-") if gallery and queries else None


def sample_source(workdir: Path) -> Source:
    """lookalike.tools.sample's generated catalogue: when no real data set is here."""
    from lookalike.tools.sample import generate

    root = workdir / "sample"
    generate(root)
    with (root / "catalogue.csv").open(newline="") as f:
        gallery = [(root / r["image_uri"], r["product_id"]) for r in csv.DictReader(f)]
    queries = read_pairs(root / "queries.csv", root / "queries", "query_file")
    return Source("generated sample", gallery, queries, "sample-")


def ingest_into(cat: Catalogue, source: Source) -> None:
    from lookalike.client import Client
    from lookalike.tools.bulk import ingest
    from lookalike.tools.catalogue import Entry

    ids = [f"{source.id_prefix}{p.stem}" for p, _ in source.gallery]
    entries = [Entry(uri=str(p), product_id=prod, image_id=i, category=source.name, title=prod)
               for (p, prod), i in zip(source.gallery, ids)]
    t = time.perf_counter()
    with Client(cat.svc.target, timeout_s=300) as client:
        outcome = ingest(client, entries, poll_s=0.1)
    log(f"  ingested {outcome.done} {source.name} images in {time.perf_counter() - t:.1f} s"
        f"{f' ({len(outcome.failures)} failed)' if outcome.failures else ''}")
    cat.images += [(p, i, prod) for (p, prod), i in zip(source.gallery, ids)]


def run(b: Bench) -> None:
    cat: Catalogue | None = b.ingest_catalogue
    b.ingest_catalogue = None  # this section stops it
    smvs = smvs_source()
    grocery = Source("GroceryStoreDataset", [(p, prod) for p, prod, _ in b.data.gallery],
                     [(p, prod) for p, prod, _ in b.data.photos]) if b.data.photos else None
    notes: list[str] = []
    if grocery is None:
        notes.append(b.data.reason)
    if smvs is None:
        notes.append(f"no SMVS DVD covers at {SMVS_DATA}")
    try:
        if cat is None:
            cat = Catalogue(b.workdir / "verify")
            shutil.rmtree(cat.data_dir, ignore_errors=True)
        if cat.svc is None:
            cat.svc = Service(cat.data_dir, b.workdir / "service-verify.log", b.model_name)
            log(f"  service ready in {cat.svc.start_s:.1f} s at {cat.svc.target}"
                + (f", on the ingest section's {len(cat.images)} real images" if cat.images else ""))
            if grocery is not None and not cat.images:
                ingest_into(cat, grocery)
        else:
            log(f"  the ingest section's service and its {len(cat.images)} real images")
        sources = [s for s in (grocery, smvs) if s is not None]
        if smvs is not None:
            ingest_into(cat, smvs)
        if not sources:
            notes.append("the generated sample instead")
            sources = [sample_source(b.workdir)]
            ingest_into(cat, sources[0])
        measure(b, cat, sources, notes)
    except Exception:
        if cat is not None and cat.svc is not None:
            print(cat.svc.log_tail(), file=sys.stderr)
        raise
    finally:
        if cat is not None and cat.svc is not None:
            cat.svc.stop()
    feature_sizes(b, cat.images)
    stage_two_parts(b, sources)


def stage_two_parts(b: Bench, sources: Sequence[Source]) -> None:
    """Stage 2's parts in this process on the first source with photos (DVD covers when
    present): the photo's keypoints found whole and in two halves side by side, and the
    shortlist (the whole gallery, up to 50 images) verified at once or head first."""
    from lookalike.imaging import decode
    from lookalike.verify.features import extract
    from lookalike.verify.geometry import VerifyParams
    from lookalike.verify.rerank import StageTwo, unpack_all, verify_ranked

    source = next((s for s in sources[::-1] if s.queries), None)
    if source is None:
        return
    stage = StageTwo()
    params = VerifyParams(min_inliers=stage.min_inliers)
    gallery = unpack_all([stage.catalogue_features(decode(p.read_bytes())).pack()
                          for p, _ in source.gallery[: b.settings.shortlist]])
    photos = [decode(p.read_bytes(), target_side=b.model.side)
              for p, _ in source.queries[: max(10, b.cfg["verify_queries"] // 4)]]
    timings: dict[str, list[float]] = {k: [] for k in ("whole", "halves", "all", "head")}
    keras: list[float] = []
    for photo in photos:
        for name, halves in (("whole", False), ("halves", True)):
            t = time.perf_counter()
            query = extract(photo, stage.kind, stage.query_points, stage.long_side, halves=halves)
            timings[name].append(1000 * (time.perf_counter() - t))
        for name, first in (("all", len(gallery)), ("head", stage.first)):
            t = time.perf_counter()
            verify_ranked(query, gallery, params, first, stage.decisive)
            timings[name].append(1000 * (time.perf_counter() - t))
        keras.append(b.model.time_forward(b.x1, 1, warm=0)[0])
    base = float(np.median(keras))
    b.res.details.setdefault(SECTION, {})["stage_two_ms"] = timings
    labels = {"whole": f"photo keypoints ({stage.kind}, {stage.query_points}, {stage.long_side} px), whole",
              "halves": "photo keypoints in two halves side by side (shipped)",
              "all": f"match + RANSAC, {len(gallery)} images at once",
              "head": f"match + RANSAC, head {stage.first} first, rest unless {stage.decisive} "
                      "inliers (shipped)"}
    for key, label in labels.items():
        p50 = pct(timings[key], 50)
        b.res.add(Row(SECTION, f"stage 2 in process, {source.name}: {label}", p50, "ms",
                      p50 / base, "/ bare b1 forward", n=len(timings[key]),
                      note=f"p90 {pct(timings[key], 90):.1f} ms; Keras b1 forward interleaved "
                           f"{base:.1f} ms"))


def queries_of(b: Bench, cat: Catalogue, sources: Sequence[Source], notes: list[str]):
    """(source, file, product) alternately from each source: photos outside the catalogue."""
    inside = {p.resolve() for p, _, _ in cat.images}
    per: list[list[tuple[str, Path, str]]] = []
    for s in sources:
        outside = [(p, prod) for p, prod in s.queries if p.resolve() not in inside]
        if not outside:
            notes.append(f"every {s.name} query photo is also a catalogue image")
            outside = s.queries
        per.append([(s.name, p, prod) for p, prod in outside])
    n = b.cfg["verify_queries"] + WARM
    out: list[tuple[str, Path, str]] = []
    for i in range(n):
        q = per[i % len(per)]
        out.append(q[(i // len(per)) % len(q)])
    return out


def measure(b: Bench, cat: Catalogue, sources: Sequence[Source], notes: list[str]) -> None:
    import grpc

    from lookalike.client import Client
    from lookalike.store import edge_options

    with Client(cat.svc.target, timeout_s=300) as client:
        points = client.stats().points
    threshold = edge_options(b.settings).index_threshold(b.model.dim)
    if points >= threshold:
        log(f"  {points:,} points >= {threshold:,}: waiting for the service's index")
        cat.svc.wait_for_index(threshold)
    queries = queries_of(b, cat, sources, notes)
    truth = cat.products()
    blobs = {p: p.read_bytes() for _, p, _ in queries}
    recs: dict[str, list[dict]] = {m: [] for m in MODES}
    errors: list[str] = []
    interleaved: list[float] = []
    log(f"  {len(queries) - WARM} photos ({', '.join(s.name for s in sources)}), verify "
        f"{' and '.join(MODES)}, 1 in flight, on {len(cat.images)} real images ({points:,} points)")
    before = scrape(cat.svc.metrics_port)
    with Client(cat.svc.target, timeout_s=300) as client:
        for i, (src, path, product) in enumerate(queries):
            for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                t = time.perf_counter()
                try:
                    r = client.search(blobs[path], top_k=10,
                                      verify="auto" if mode == "objects" else mode,
                                      per_object=mode == "objects")
                except grpc.RpcError as exc:
                    errors.append(f"{mode}: {exc.code().name}: {exc.details()}"[:200])
                    continue
                wall = 1000 * (time.perf_counter() - t)
                if i < WARM:
                    continue
                top = r.matches[0] if r.matches else None
                recs[mode].append({
                    "source": src, "server_ms": r.server_ms, "wall_ms": wall, "applied": r.verify,
                    "any_verified": any(m.verified for m in r.matches),
                    "top1_ok": top is not None and truth.get(top.image_id) == product,
                    "top1_verified": bool(top and top.verified),
                    "top1_inliers": top.inliers if top else 0,
                    "top1_stage1_rank": top.stage1_rank if top else 0,
                })
                interleaved.append(b.model.time_forward(b.x1, 1, warm=0)[0])
    after = scrape(cat.svc.metrics_port)
    stages = {}
    for name in ("decode", "embed", "search", "verify"):
        n = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
        if n > 0:
            stages[name] = 1000 * (after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)) / n
    base = float(np.median(interleaved)) if interleaved else float(b.b1_ms)
    b.res.details[SECTION] = {"images": len(cat.images), "points": points, "records": recs,
                              "errors": errors, "interleaved_b1_ms": interleaved,
                              "stages_ms": stages, "notes": notes}
    common = "; ".join([*notes, f"bare b1 forward interleaved {base:.1f} ms"]
                       + ([f"{len(errors)} errors: {errors[:2]}"] if errors else []))
    for mode in MODES:
        rs = recs[mode]
        name = (f"Search {len(cat.images)} real imgs, 1 in flight, "
                + ("per_object" if mode == "objects" else f"verify={mode}"))
        if not rs:
            b.res.skip(SECTION, f"{name}: p50", f"no successful request: {errors[:2]}",
                       TARGETS[mode])
            continue
        server = [r["server_ms"] for r in rs]
        p50, p99 = pct(server, 50), pct(server, 99)
        by_src = "; ".join(
            f"{s.name}: p50 {pct([r['server_ms'] for r in rs if r['source'] == s.name], 50):.0f} ms, "
            f"top-1 right {sum(r['top1_ok'] for r in rs if r['source'] == s.name)}"
            f"/{sum(r['source'] == s.name for r in rs)}"
            + (f", top-1 verified {sum(r['top1_verified'] for r in rs if r['source'] == s.name)}"
               if mode != "off" else "")
            for s in sources if any(r["source"] == s.name for r in rs))
        applied = sorted({r["applied"] for r in rs})
        stage_txt = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        note = (f"server_ms (client wall p50 {pct([r['wall_ms'] for r in rs], 50):.1f} ms); "
                + (f"the service applied verify={'/'.join(applied)}; "
                   if applied != ["auto" if mode == "objects" else mode] else "")
                + f"{by_src}; server mean ms (verify: per auto request, the rest over both modes): "
                  f"{stage_txt}; {common}")
        b.res.add(Row(SECTION, f"{name}: p50", p50, "ms", p50 / base, "/ bare b1 forward",
                      TARGETS[mode], n=len(rs), note=note))
        b.res.add(Row(SECTION, f"{name}: p99", p99, "ms", p99 / p50, "/ p50", n=len(rs),
                      note="" if len(rs) >= 100 else
                      f"only {len(rs)} samples: p99 is close to the maximum"))


def feature_sizes(b: Bench, images: Sequence[tuple[Path, str, str]]) -> None:
    """Packed local features per catalogue image, as the worker computes them at ingest."""
    from lookalike.imaging import Limits, decode
    from lookalike.verify.rerank import StageTwo

    name = "catalogue local features: bytes/image"
    files = sorted({p for p, _, _ in images})
    if not files:
        b.res.skip(SECTION, name, "no catalogue images were ingested", "<= 1")
        return
    cap = b.cfg.get("feature_images")
    sampled = bool(cap and len(files) > cap)
    if sampled:
        files = [files[i] for i in np.unique(np.linspace(0, len(files) - 1, cap).round().astype(int))]
    stage = StageTwo()
    limits = Limits.of(b.settings)
    t = time.perf_counter()
    sizes, counts = [], []
    for p in files:
        feats = stage.catalogue_features(decode(p.read_bytes(), limits, b.model.side))
        sizes.append(feats.packed_bytes())
        counts.append(len(feats))
    secs = time.perf_counter() - t
    mean = float(np.mean(sizes))
    b.res.details.setdefault(SECTION, {})["feature_bytes"] = sizes
    b.res.add(Row(SECTION, name, mean, "B", mean / FEATURE_BUDGET, "/ 32 KB (32,768 B)", "<= 1",
                  n=len(sizes),
                  note=f"StageTwo().catalogue_features ({stage.kind}, at most "
                       f"{stage.catalogue_points} points, long side {stage.long_side}) of the "
                       f"decoded ingested images{' (an even sample)' if sampled else ''}"
                       f": max {max(sizes):,} B, mean {np.mean(counts):.0f} points; stored as "
                       f"base64 text, {4 * np.ceil(mean / 3):,.0f} B; {1000 * secs / len(sizes):.0f} "
                       "ms per image to extract"))

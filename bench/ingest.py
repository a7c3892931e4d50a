"""3. Ingest of real images (gallery + store photos used as catalogue images) through
SubmitIngest -> Redis/Celery -> worker -> store (lookalike.tools.bulk.ingest), images/s, against
bare decode + served forward of the same bytes, and against the worker's whole chunk work
(decode, catalogue local features, forward) without queue or store."""

from __future__ import annotations

import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from bench.common import log
from bench.report import Row
from bench.service import Service
from bench.verify import Catalogue

if TYPE_CHECKING:
    from bench.run import Bench


def run(b: Bench) -> None:
    from lookalike.client import Client
    from lookalike.imaging import decode
    from lookalike.model.preprocess import to_model_input
    from lookalike.store import edge_options
    from lookalike.tools.bulk import ingest
    from lookalike.tools.catalogue import Entry
    from lookalike.verify.rerank import StageTwo

    if not b.data.photos:
        b.res.skip("ingest", "ingest through queue + worker + store", b.data.reason, ">= 0.85")
        return
    items = b.data.gallery + b.data.photos[: b.cfg["ingest_photos"]]
    entries = [Entry(uri=str(p), product_id=f"{'g' if p.parent.name == 'gallery' else 'q'}-{p.stem}",
                     image_id=p.stem, category=cat, title=f"{prod} ({p.stem})")
               for p, prod, cat in items]
    raw = [p.read_bytes() for p, *_ in items]
    m = b.model

    def bare() -> float:
        """images/s: decode + resize + forward in batches of the model's batch size."""
        t = time.perf_counter()
        for i in range(0, len(raw), m.batch_size):
            x = np.stack([to_model_input(decode(blob, target_side=m.side), m.side)
                          for blob in raw[i : i + m.batch_size]]).astype(np.float32)
            m.served(x)
        return len(raw) / (time.perf_counter() - t)

    stage = StageTwo.of(b.settings)
    pool = ThreadPoolExecutor(8)  # as the worker's loaders

    def bare_work() -> float:
        """images/s: a worker chunk's work without queue or store: decode and catalogue local
        features in threads (as the worker runs them), then the forward pass."""
        t = time.perf_counter()
        for i in range(0, len(raw), b.settings.chunk_size):
            pixels = list(pool.map(lambda blob: decode(blob, target_side=m.side),
                                   raw[i : i + b.settings.chunk_size]))
            if stage is not None:
                list(pool.map(lambda px: stage.catalogue_features(px).pack(), pixels))
            m.served(np.stack([to_model_input(px, m.side) for px in pixels]).astype(np.float32))
        return len(raw) / (time.perf_counter() - t)

    bare_before = [bare(), bare()]  # the first also warms the decode path
    work_before = [bare_work()]
    data_dir = b.workdir / "ingest"  # on disk, as `lookalike serve` keeps it
    shutil.rmtree(data_dir, ignore_errors=True)
    svc = Service(data_dir, b.workdir / "service-ingest.log", b.model_name)
    hand_over = False
    try:
        with Client(svc.target, timeout_s=300) as client:
            # Warm the worker (Celery boots after the gRPC port is ready) and its model.
            warm = [Entry(uri=e.uri, product_id=f"warmup-{i}", image_id=f"warmup-{i}")
                    for i, e in enumerate(entries[:2])]
            ingest(client, warm, poll_s=0.1)
            log(f"  ingesting {len(entries)} images ({len(b.data.gallery)} gallery + "
                f"{len(entries) - len(b.data.gallery)} store photos) through SubmitIngest")
            t = time.perf_counter()
            outcome = ingest(client, entries, poll_s=0.1)
            wall = time.perf_counter() - t
            done, failed = outcome.done, len(outcome.failures)
            points = client.stats().points
        # The verify section searches this catalogue. The service stays up for it (idle) unless
        # it is about to build an index, which would disturb the bare runs below: then the
        # verify section reopens the data dir.
        hand_over = ("verify" in b.parts
                     and points < edge_options(b.settings).index_threshold(m.dim))
    except Exception:
        print(svc.log_tail(), file=sys.stderr)
        raise
    finally:
        if not hand_over:
            svc.stop()
    if "verify" in b.parts:
        b.ingest_catalogue = Catalogue(data_dir, svc if hand_over else None,
                                       [(p, p.stem, prod) for p, prod, _ in items])
    bare_runs = [*bare_before, bare()]
    work_runs = [*work_before, bare_work()]
    pool.shutdown()
    base, work = float(np.median(bare_runs)), float(np.median(work_runs))
    rate = done / wall
    b.res.details["ingest"] = {"images": len(entries), "done": done, "failed": failed,
                               "wall_s": wall, "points": points,
                               "bare_images_per_s": bare_runs,
                               "bare_chunk_work_images_per_s": work_runs,
                               "chunk_size": b.settings.chunk_size,
                               "service_start_s": svc.start_s}
    b.res.add(Row("ingest", f"SubmitIngest -> worker -> store, {len(entries)} real images",
                  rate, "img/s", rate / base, "/ bare decode + served forward", ">= 0.9",
                  n=done, note=f"bare decode + {m.runtime} forward (batches of {m.batch_size}) of the same bytes: "
                               f"median of {', '.join(f'{r:.1f}' for r in bare_runs)} img/s "
                               "(2 before, 1 after); "
                               f"worker chunk size {b.settings.chunk_size}; {failed} failed; "
                               f"wall {wall:.1f} s incl. client upload and 0.1 s polling"))
    b.res.add(Row("ingest", f"SubmitIngest -> worker -> store, {len(entries)} real images, "
                            "against the chunk work alone", rate, "img/s", rate / work,
                  "/ bare decode + local features + served forward", ">= 0.9", n=done,
                  note=f"the worker's work per chunk without queue or store (decode and "
                       f"{stage.kind if stage else 'no'} catalogue features in 8 threads, "
                       f"then the forward): {', '.join(f'{r:.1f}' for r in work_runs)} img/s "
                       "(1 before, 1 after)"))

"""The embedded store's HNSW index, built aside.

The engine holds the GIL for the minutes a build takes, so a child process indexes a copy
of the shard while this one keeps serving and recording its updates; the updates are
replayed onto the copy, which then replaces the shard. `<collection>.indexed` marks a copy
that is complete, so that a crash in the middle of the swap is finished at the next open.

`IndexAside` is the build machine of `EdgeBackend`: it works on the backend's shard table,
lock and replay log, and emits nothing itself (the service turns reports into metrics).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import qdrant_edge as qe

if TYPE_CHECKING:
    from lookalike.store.edge import EdgeOptions

log = logging.getLogger(__name__)

IndexReport = Callable[[str | None, int | None], None]

# The child that builds an index: niced, so that searches keep the cores they need.
_INDEX_CHILD = ("import os, sys, qdrant_edge as qe; os.nice(10); "
                "shard = qe.EdgeShard.load(sys.argv[1]); shard.optimize(); shard.close()")



class IndexAside:
    root: Path
    options: EdgeOptions
    _shards: dict[str, qe.EdgeShard]
    _lock: threading.RLock
    _replay: dict[str, list[qe.UpdateOperation]]
    _builds: dict[str, subprocess.Popen]
    _not_indexed: dict[str, int]
    _closed: threading.Event

    def unindexed(self, collection: str) -> int:
        with self.shard(collection) as shard:
            info = shard.info()
        return int(info.points_count - info.indexed_vectors_count)

    def needs_index(self, collection: str) -> bool:
        """Enough unindexed vectors for the engine to index, and more than the last build left."""
        dim = json.loads(self._meta_path(collection).read_text())["dim"]
        unindexed = self.unindexed(collection)
        return (unindexed >= self.options.index_threshold(dim)
                and unindexed > self._not_indexed.get(collection, 0))

    def optimize(self, collection: str) -> bool:
        """Merge segments and build HNSW indexes over those past the threshold, aside (see the
        module docstring): search and updates go on meanwhile. Blocks the calling thread (about
        a minute per 100k turbo8 1280-d vectors on 2 cores) and needs the shard's size again on
        disk while it runs; False when there was nothing to index."""
        with self.shard(collection) as shard:
            if collection in self._replay:
                return False  # a build is already running
            before = shard.info()
            # A folder of its own: a child orphaned by a crash cannot write into the next build.
            aside = Path(tempfile.mkdtemp(prefix=f"{collection}.indexing-", dir=self.root))
            # Consistent: every update is flushed before it releases the lock.
            shutil.copytree(self.root / collection, aside, dirs_exist_ok=True)
            self._replay[collection] = []
            started = time.monotonic()
            child = self._builds[collection] = subprocess.Popen(
                [sys.executable, "-c", _INDEX_CHILD, str(aside)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, errors = child.communicate()
            with self._lock:
                if self._closed.is_set():
                    return False
                if child.returncode:
                    # Not again until the catalogue grows: each try copies the whole shard.
                    self._not_indexed[collection] = int(before.points_count
                                                         - before.indexed_vectors_count)
                    raise RuntimeError(f"index build failed: {errors.strip()[-2000:]}")
                built = qe.EdgeShard.load(str(aside))
                for operation in self._replay[collection]:
                    built.update(operation)
                built.flush()
                after = built.info()
                built.close()
                self._swap(collection, aside)
                self._not_indexed[collection] = int(after.points_count
                                                     - after.indexed_vectors_count)
        finally:
            with self._lock:
                self._replay.pop(collection, None)
                self._builds.pop(collection, None)
            shutil.rmtree(aside, ignore_errors=True)
        changed = after.indexed_vectors_count != before.indexed_vectors_count
        log.info("%s: index %s in %.0f s (%d of %d vectors indexed)", collection,
                 "built" if changed else "unchanged", time.monotonic() - started,
                 after.indexed_vectors_count, after.points_count)
        return changed

    def _swap_paths(self, collection: str) -> tuple[Path, Path, Path]:
        """The shard, the shard moved aside during a swap, the marker of a complete copy."""
        return (self.root / collection, self.root / f"{collection}.old",
                self.root / f"{collection}.indexed")

    def _swap(self, collection: str, aside: Path) -> None:
        """Replace the shard with its complete indexed copy (under the lock)."""
        live, old, marker = self._swap_paths(collection)
        # From here on the copy is the shard: _finish_swap completes an interrupted swap.
        self._write_json(marker, {"copy": aside.name})
        self._shards.pop(collection).close()
        os.rename(live, old)
        os.rename(aside, live)
        self._finish_swap(collection)
        self._shards[collection] = qe.EdgeShard.load(str(live))

    def _finish_swap(self, collection: str) -> None:
        """Complete or undo an interrupted swap; remove what builds left behind."""
        live, old, marker = self._swap_paths(collection)
        if not live.exists():
            copy = (self.root / json.loads(marker.read_text())["copy"]
                    if marker.exists() else old)
            os.rename(copy if copy.exists() else old, live)
        marker.unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
        if collection not in self._replay:
            for leftover in self.root.glob(f"{collection}.indexing-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def index_in_background(self, collection: str, every_s: float,
                            report: IndexReport = lambda outcome, unindexed: None) -> None:
        """Every `every_s` seconds, index the collection if it needs it; each round is
        reported as (outcome: built | unchanged | failed | None when no build was due, the
        vectors left unindexed or None after a failure) to whoever wires the metrics."""
        def loop() -> None:
            while True:  # first check at once: a restart may find a catalogue to index
                try:
                    outcome = None
                    if self.needs_index(collection):
                        outcome = "built" if self.optimize(collection) else "unchanged"
                    report(outcome, self.unindexed(collection))
                except Exception:  # noqa: BLE001 - the next round tries again
                    report("failed", None)
                    log.exception("%s: background index build failed", collection)
                if self._closed.wait(every_s):
                    return

        threading.Thread(target=loop, name="lookalike-indexer", daemon=True).start()


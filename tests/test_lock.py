"""One process per embedded store: a second `lookalike serve`, `optimize` or `reindex` on a
data dir in use stops at once with one line naming the dir and the process holding it, so
it can never take the first one's ingest queue or write a view the first does not see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.client import Client
from lookalike.store.lock import FolderLock, StoreLocked
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.tools.local import free_port


def lookalike(*args: str, data_dir: Path, extra: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOKALIKE_DATA_DIR": str(data_dir), "QDRANT_URL": "",
           "LOOKALIKE_AUTH": "none", "LOOKALIKE_LISTEN": f"127.0.0.1:{free_port()}",
           "LOOKALIKE_METRICS_PORT": str(free_port()), "COLUMNS": "400", **(extra or {})}
    return subprocess.run([sys.executable, "-m", "lookalike", *args], env=env, text=True,
                          capture_output=True, timeout=300)


def test_a_folder_lock_names_its_holder(tmp_path: Path) -> None:
    first, second = FolderLock(tmp_path), FolderLock(tmp_path)
    first.acquire()
    with pytest.raises(StoreLocked, match=rf"{tmp_path} is in use by process {os.getpid()} on "):
        second.acquire()
    first.release()
    second.acquire()  # released: the next owner gets it
    second.release()


@pytest.mark.parametrize("command", [["serve"], ["optimize"],
                                     ["reindex", "--model", "efficientnet-lite0"]])
def test_a_store_in_use_is_refused_in_one_line(running, command: list[str]) -> None:
    data_dir = running.log.parent
    result = lookalike(*command, data_dir=data_dir)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    message = " ".join(result.stdout.split())
    assert f"the embedded store at {data_dir / 'edge'} is in use by process {running.pid}" in message
    assert len(result.stdout.strip().splitlines()) <= 3  # one message (wrapped at most)


def test_the_owner_keeps_its_whole_catalogue(running, sample: Path) -> None:
    """After a second process tried the same dir, everything ingested through the first is
    stored, counted and found by it (the second never consumed its queue)."""
    assert lookalike("serve", data_dir=running.log.parent).returncode == 6
    with Client(running.target) as client:
        outcome = bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))
        assert (outcome.done, len(outcome.failures)) == (14, 0)
        assert client.stats().points == 14
        photo = (sample / "catalogue" / "moon-lamp.png").read_bytes()
        assert client.search(photo, top_k=1).matches[0].product_id == "moon-lamp"


def test_ports_in_use_are_named(running, tmp_path: Path) -> None:
    metrics_port = running.metrics_url.split(":")[2].split("/")[0]
    taken = lookalike("serve", data_dir=tmp_path / "a",
                      extra={"LOOKALIKE_METRICS_PORT": metrics_port})
    assert taken.returncode == 2 and "Traceback" not in taken.stdout + taken.stderr
    assert f"cannot serve metrics on 127.0.0.1:{metrics_port}" in " ".join(taken.stdout.split())
    grpc_taken = lookalike("serve", data_dir=tmp_path / "b",
                           extra={"LOOKALIKE_LISTEN": running.target})
    assert grpc_taken.returncode == 2 and "Traceback" not in grpc_taken.stdout + grpc_taken.stderr
    assert f"cannot listen on {running.target}" in " ".join(grpc_taken.stdout.split())

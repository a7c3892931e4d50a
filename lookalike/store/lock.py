"""One process per embedded store: an exclusive lock on its folder, naming its holder.

The engine keeps its own state in memory; a second process opening the same folder would
serve and write a view the first never sees (and the two would corrupt each other's
files). The OS's advisory lock (flock) is released when the holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path


class StoreLocked(RuntimeError):
    """Another process holds the store; the message names the folder and the process."""


class FolderLock:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's note
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_note(fd)
            os.close(fd)
            raise StoreLocked(
                f"the embedded store at {self.path.parent} is in use by {holder}: stop it first "
                "(an embedded store has one owner), use another LOOKALIKE_DATA_DIR, or share a "
                "Qdrant server (QDRANT_URL)") from None
        note = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "command": " ".join(sys.argv[:3])[:200], "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _read_note(fd: int) -> str:
    try:
        note = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(note["since"]))
        return f"process {note['pid']} on {note['host']} ({note['command']}, since {since})"
    except (ValueError, KeyError, TypeError):
        return "another process"

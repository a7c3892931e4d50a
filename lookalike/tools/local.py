"""Start an all-in-one lookalike service in a child process (demo, eval, tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lookalike.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(data_dir: Path, env: dict[str, str] | None = None,
                  log_path: Path | None = None, ready_timeout_s: float = 180,
                  client_options: dict | None = None, port: int | None = None,
                  args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """Start `lookalike serve` (embedded store + worker) and wait until it is healthy.

    Without authentication unless env says otherwise; client_options (tls_ca, ...) are
    what the readiness check needs to reach it.
    """
    target = f"127.0.0.1:{port or free_port()}"
    child_env = {**os.environ, "LOOKALIKE_DATA_DIR": str(data_dir),
                 "LOOKALIKE_LISTEN": target, "QDRANT_URL": "", "LOOKALIKE_AUTH": "none",
                 "LOOKALIKE_METRICS_PORT": str(free_port()), **(env or {})}
    log_path = log_path or Path(data_dir) / "service.log"
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", *args], env=child_env,
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + ready_timeout_s
    with Client(target, **(client_options or {})) as client:
        while not client.healthy():
            if proc.poll() is not None:
                raise RuntimeError(f"lookalike serve exited with {proc.returncode}; "
                                   f"see {log_path}")
            if time.monotonic() > deadline:
                stop(proc)
                raise TimeoutError(f"lookalike serve not ready after {ready_timeout_s:.0f} s; "
                                   f"see {log_path}")
            time.sleep(0.5)
    return proc, target


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def local_service(data_dir: Path, env: dict[str, str] | None = None,
                  log_path: Path | None = None, ready_timeout_s: float = 180,
                  client_options: dict | None = None) -> Iterator[str]:
    """Yield the address of a fresh all-in-one service; stop it afterwards."""
    proc, target = start_service(data_dir, env, log_path, ready_timeout_s, client_options)
    try:
        yield target
    finally:
        stop(proc)

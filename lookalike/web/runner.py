"""Serving the gateway with uvicorn in a thread: beside the gRPC server in `lookalike serve`
(LOOKALIKE_HTTP_LISTEN), or on its own in `lookalike web`."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from lookalike.config import ConfigError, Settings
from lookalike.web.app import create_app

log = logging.getLogger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); ConfigError when it is neither."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"LOOKALIKE_HTTP_LISTEN is {address!r}: give HOST:PORT, e.g. "
                          "127.0.0.1:8080")
    return host.strip("[]"), int(port)


def local_target(listen: str) -> str:
    """Where this process's gRPC server answers, from its LOOKALIKE_LISTEN."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "::", "0.0.0.0"):
        host = "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Gateway:
    """uvicorn in a daemon thread; `start` returns once it listens (or raises ConfigError)."""

    def __init__(self, settings: Settings, grpc_target: str, address: str,
                 client_options: dict | None = None) -> None:
        host, port = split_address(address)
        app = create_app(settings, grpc_target, client_options)
        self.address = address
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None,
                                                    access_log=False, timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, name="http-gateway", daemon=True)

    def start(self, timeout_s: float = 30.0) -> Gateway:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"cannot serve HTTP on {self.address}: is another service "
                                  "using it? Set LOOKALIKE_HTTP_LISTEN")
            time.sleep(0.05)
        log.info("HTTP gateway and web page on http://%s/", self.address)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)

    def wait(self) -> None:
        while self.thread.is_alive():
            self.thread.join(0.5)


def beside_grpc(settings: Settings) -> Gateway | None:
    """The gateway of `lookalike serve`, when LOOKALIKE_HTTP_LISTEN is set."""
    if not settings.http_listen:
        return None
    tls = bool(settings.tls_cert)
    return Gateway(settings, local_target(settings.listen), settings.http_listen,
                   {"tls": tls, "tls_ca": settings.tls_ca if tls else ""}).start()

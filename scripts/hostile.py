"""Replay known attacks on a lookalike service and print one line per finding: held or FAILED.

Starts its own all-in-one service on loopback (API keys on, a fresh data folder, its own queue)
and talks to it as a hostile or careless client would. Bounded: about two minutes, loopback
only, nothing sent elsewhere. Findings 3-5 concern the worker's fetch path (DNS answers and
slow servers this script cannot stage from outside the process), so they run against the same
library functions the worker calls. Exit status 1 when any finding fails.

    .venv/bin/python scripts/hostile.py [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc

from lookalike.api.access import interceptors
from lookalike.client import Client
from lookalike.config import ConfigError, Settings
from lookalike.pipeline import sources
from lookalike.pipeline.ingest import load_or_reason
from lookalike.tools.local import free_port, start_service, stop
from lookalike.tools.sample import generate
from lookalike.v1 import lookalike_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
WRITER, READER = uuid.uuid4().hex, uuid.uuid4().hex
Check = Callable[[], str]  # returns the evidence; raises AssertionError when the attack works


def solid_png(width: int, height: int) -> bytes:
    """A valid one-colour PNG: a few hundred KB on the wire, width*height*3 bytes decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    packer, row = zlib.compressobj(9), b"\0" + b"\x80" * (3 * width)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def status_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    raise AssertionError("accepted")


class Probe:
    """The service under attack and the clients that attack it."""

    def __init__(self, work: Path, redis_url: str) -> None:
        self.work, self.metrics_port = work, free_port()
        generate(work / "sample")
        self.image = (work / "sample" / "catalogue" / "coffee-cup.png").read_bytes()
        self.env = {"REDIS_URL": redis_url, "LOOKALIKE_AUTH": "keys",
                    "LOOKALIKE_WRITE_KEYS": WRITER, "LOOKALIKE_READ_KEYS": READER,
                    "LOOKALIKE_QUEUE": f"lookalike.hostile.{uuid.uuid4().hex[:8]}",
                    "LOOKALIKE_METRICS_PORT": str(self.metrics_port),
                    "LOOKALIKE_STREAM_LIFETIME_S": "10", "LOOKALIKE_FETCH_TIMEOUT_S": "2"}
        self.proc, self.target = start_service(work / "data", env=self.env)
        self.writer = Client(self.target, api_key=WRITER, timeout_s=60)
        self.reader = Client(self.target, api_key=READER, timeout_s=60)
        self.anonymous = Client(self.target, timeout_s=60)

    def close(self) -> None:
        for client in (self.writer, self.reader, self.anonymous):
            client.close()
        stop(self.proc)

    def ingest(self, items: list[pb.IngestItem]) -> pb.Job:
        return self.writer.wait_job(self.writer.submit(items), timeout_s=120)

    # 1 -------------------------------------------------------------------------------------
    def idle_streams(self) -> str:
        stop_event, streams = threading.Event(), []

        def blocked() -> Iterator[object]:
            stop_event.wait()
            yield from ()

        reflect = reflection_pb2_grpc.ServerReflectionStub(self.anonymous.channel)
        keyed = reflection_pb2_grpc.ServerReflectionStub(self.reader.channel)
        health = health_pb2_grpc.HealthStub(self.anonymous.channel)
        try:
            for _ in range(32):
                streams.append(reflect.ServerReflectionInfo(blocked(), timeout=30))
                streams.append(keyed.ServerReflectionInfo(blocked(), timeout=30,
                                                          metadata=self.reader.metadata))
                streams.append(health.Watch(health_pb2.HealthCheckRequest(), timeout=30))
            time.sleep(1)
            timings = []
            for call in (self.reader.stats, lambda: self.reader.search(self.image, top_k=1),
                         lambda: self.anonymous.healthy(timeout_s=2)):
                started = time.monotonic()
                assert call() is not False, "health check failed"
                timings.append(time.monotonic() - started)
        finally:
            stop_event.set()
            for call in streams:
                call.cancel()
        assert max(timings) < 2, f"an API call took {max(timings):.1f} s"
        return ("96 idle streams (32 keyless reflection, 32 keyed, 32 health watches): "
                "GetStats/Search/Check in " + "/".join(f"{t * 1000:.0f}" for t in timings) + " ms")

    # 2 -------------------------------------------------------------------------------------
    def bad_uris_in_a_chunk(self) -> str:
        bad = ["http://..example/x.jpg", "http://[::1", f"http://{'a' * 64}.example/x.jpg",
               "http://example.com/x\x00.jpg"]
        items = [pb.IngestItem(product_id=f"good{i}", image_id="a", image=self.image)
                 for i in range(3)]
        items[1:1] = [pb.IngestItem(product_id=f"bad{i}", image_id="a", uri=uri)
                      for i, uri in enumerate(bad)]
        job = self.ingest(items)
        assert job.state == pb.Job.DONE, f"job {pb.Job.State.Name(job.state)}"
        assert (job.done, job.failed) == (3, 4), f"{job.done} stored, {job.failed} failed"
        reasons = sorted({f.reason.split(":")[0] for f in job.failures})
        return f"4 malformed URIs + 3 images in one chunk: DONE, 3 stored, 4 failed ({'; '.join(reasons)})"

    # 3 -------------------------------------------------------------------------------------
    def reindex_sources(self) -> str:
        settings = Settings(ingest_roots=str(self.work / "sample"))
        outcomes = [load_or_reason({"product_id": "p", "image_id": "i", "uri": uri}, settings)
                    for uri in ("/etc/passwd", "http://169.254.169.254/latest/meta-data",
                                "http://[::1", "file:///etc/shadow")]
        assert all(isinstance(o, str) for o in outcomes), "a hostile source was read"
        return ("re-read sources are confined like ingest, and fail alone: "
                + " | ".join(o.split(",")[0][:48] for o in outcomes))

    # 4 -------------------------------------------------------------------------------------
    def dns_rebinding(self) -> str:
        public = _serve("127.0.0.1", 0, b"public image")
        port = public.server_port
        internal = _serve("127.0.0.2", port, b"internal secret")
        real_resolve, real_public = socket.getaddrinfo, sources.is_public
        answers = iter(["127.0.0.1"])

        def rebinding(host, *args, **kwargs):
            if host != "images.test":
                return real_resolve(host, *args, **kwargs)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.2"), port))]

        # 127.0.0.1 stands for a public host here; 127.0.0.2 for the internal one.
        sources.is_public = lambda a: a == ipaddress.ip_address("127.0.0.1")
        socket.getaddrinfo = rebinding
        try:
            body = sources.fetch(f"http://images.test:{port}/a.jpg", 100, 2)
        finally:
            socket.getaddrinfo, sources.is_public = real_resolve, real_public
            public.shutdown()
            internal.shutdown()
        assert body == b"public image", f"fetched {body!r}"
        embedded = [a for a in ("::127.0.0.1", "64:ff9b::7f00:1", "::ffff:10.0.0.1", "2002:7f00:1::")
                    if sources.is_public(ipaddress.ip_address(a))]
        assert not embedded, f"{embedded} pass as public"
        return "second DNS answer ignored (connected to the checked address); 4 IPv6 forms embedding IPv4 refused"

    # 5 -------------------------------------------------------------------------------------
    def trickling_headers(self) -> str:
        server = _serve("127.0.0.1", 0, b"")
        started = time.monotonic()
        try:
            sources.fetch(f"http://127.0.0.1:{server.server_port}/trickle", 100, 2,
                          allow_private=True)
            raise AssertionError("the trickle was read to the end")
        except sources.FetchError as exc:
            took = time.monotonic() - started
            assert took < 4, f"a 2 s fetch lasted {took:.1f} s"
            return f"2 s fetch of a header-trickling server ended after {took:.1f} s: {exc}"
        finally:
            server.shutdown()

    # 6 -------------------------------------------------------------------------------------
    def decompression_within_limits(self) -> str:
        big = solid_png(7000, 7000)
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # reset the peak RSS
        before = _rss_kib(self.proc.pid, "VmRSS")
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: self.reader.search(big, top_k=1), range(16)))
        peak = _rss_kib(self.proc.pid, "VmHWM")
        growth = (peak - before) / 1024
        assert growth < 600, f"peak RSS grew {growth:.0f} MB"
        return (f"16 x 7000x7000 PNG ({len(big) // 1024} KB each) at once: {len(results)} answered, "
                f"peak RSS +{growth:.0f} MB")

    # 7 -------------------------------------------------------------------------------------
    def big_requests_unread(self) -> str:
        link = _SlowLink(self.target, 2 * 1024 * 1024)
        try:
            with Client(link.address, timeout_s=30) as anonymous:
                started = time.monotonic()
                code, _ = status_of(lambda: anonymous.search(b"\xff\xd8" + bytes(12 * 1024 * 1024)))
                took = time.monotonic() - started
        finally:
            link.close()
        assert code == grpc.StatusCode.UNAUTHENTICATED and took < 3, f"{code.name} after {took:.1f} s"
        raw = self.reader.channel.unary_unary("/lookalike.v1.Lookalike/GetStats")
        big_code, details = status_of(lambda: raw(b"\x0a" + bytes(2 * 1024 * 1024), timeout=10,
                                                  metadata=self.reader.metadata))
        assert big_code == grpc.StatusCode.RESOURCE_EXHAUSTED, big_code.name
        return (f"keyless 12 MiB Search at 2 MiB/s refused after {took:.1f} s; "
                f"keyed 2 MiB GetStats: {big_code.name} '{details}'")

    # 8 -------------------------------------------------------------------------------------
    def deployment_defaults(self) -> str:
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
        published = [p for s in compose.values() for p in s.get("ports", [])]
        open_ports = [p for p in published if not str(p).startswith(("127.0.0.1:", "${PUBLISH_ADDRESS:-127.0.0.1}:"))]
        assert not open_ports, f"compose publishes {open_ports} on every interface"
        assert "--requirepass" in " ".join(map(str, compose["redis"]["command"])), "Redis has no password"
        policies = list(yaml.safe_load_all((REPO / "deploy/k8s/base/networkpolicy.yaml").read_text()))
        base = yaml.safe_load((REPO / "deploy/k8s/base/kustomization.yaml").read_text())
        assert "networkpolicy.yaml" in base["resources"], "NetworkPolicies not in the base"
        production = yaml.safe_load(
            (REPO / "deploy/k8s/overlays/production/kustomization.yaml").read_text())
        assert any("tls" in c for c in production.get("components", [])), "production is plaintext"
        return (f"compose ports loopback-only ({len(published)}), Redis requirepass, "
                f"{len(policies)} NetworkPolicies in the base, TLS in production")

    # 9 -------------------------------------------------------------------------------------
    def cli_markup(self) -> str:
        self.ingest([pb.IngestItem(product_id="[/]", image_id="[bold red]x", image=self.image)])
        photo = self.work / "sample" / "catalogue" / "coffee-cup.png"
        env = {**os.environ, **self.env, "LOOKALIKE_SERVER": self.target,
               "LOOKALIKE_API_KEY": READER, "COLUMNS": "200"}
        result = subprocess.run([sys.executable, "-m", "lookalike", "search", str(photo)],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "[/]" in result.stdout, result.stderr[-300:]
        return "product id '[/]' printed verbatim by `lookalike search` (exit 0)"

    # 10 ------------------------------------------------------------------------------------
    def separator_collision(self) -> str:
        job = self.ingest([pb.IngestItem(product_id=pid, image_id=iid, image=self.image)
                           for pid, iid in (("a\x1fb", "c"), ("a", "b\x1fc"))])
        assert (job.done, job.failed) == (0, 2), f"{job.done} stored, {job.failed} failed"
        return f"both colliding items refused in the job report: '{job.failures[0].reason}'"

    # 11 ------------------------------------------------------------------------------------
    def unbounded_strings(self) -> str:
        job = self.ingest([pb.IngestItem(product_id="x" * 10_000, image=self.image),
                           pb.IngestItem(product_id="x", title="t" * 100_000, image=self.image)])
        assert (job.done, job.failed) == (0, 2), f"{job.done} stored, {job.failed} failed"
        calls = {
            "100k-label filter": lambda: self.reader.search(
                self.image, labels=[f"l{i}" for i in range(100_000)]),
            "5,000 ids to delete": lambda: self.writer.delete([f"p{i}" for i in range(5000)]),
            "1,001 items": lambda: self.writer.submit(
                [pb.IngestItem(product_id="p", uri="https://a.test/x.jpg")] * 1001),
        }
        answers = {name: status_of(call)[0] for name, call in calls.items()}
        wrong = {n: c.name for n, c in answers.items() if c != grpc.StatusCode.INVALID_ARGUMENT}
        assert not wrong, wrong
        return ("10,000-char id and 100,000-char title failed per item; "
                + ", ".join(answers) + ": INVALID_ARGUMENT")

    # 12 ------------------------------------------------------------------------------------
    def metrics_bind(self) -> str:
        hosts = _listening_hosts(self.metrics_port)
        assert hosts and all(ipaddress.ip_address(h).is_loopback for h in hosts), hosts
        return f"gRPC on {self.target}: metrics port {self.metrics_port} bound to {', '.join(hosts)}"

    # 13 ------------------------------------------------------------------------------------
    def credentials_redacted(self) -> str:
        uri = "http://user:hunter2hunter2@127.0.0.1:1/a.jpg?X-Amz-Signature=tok3n"
        job = self.ingest([pb.IngestItem(product_id="secret", image_id="a", uri=uri)])
        text = " ".join(f.reason + f.image_id for f in job.failures)
        log = (self.work / "data" / "service.log").read_text(errors="replace")
        leaks = [s for s in ("hunter2", "tok3n") if s in text or s in log]
        assert job.failed == 1 and not leaks, f"leaked {leaks}"
        return f"failure reads '{job.failures[0].reason}'; the log holds neither password nor token"

    # 14 ------------------------------------------------------------------------------------
    def job_ids(self) -> str:
        job_id = self.writer.submit([pb.IngestItem(product_id="j", image_id="a", image=self.image)])
        answers = {name: status_of(lambda: self.reader.job(name))[0]
                   for name in (f"{job_id}:items", "../../etc", "x" * 5000)}
        assert set(answers.values()) == {grpc.StatusCode.INVALID_ARGUMENT}, answers
        return "GetJob('<id>:items'), '../../etc', 5,000 chars: INVALID_ARGUMENT"

    # 15 ------------------------------------------------------------------------------------
    def weak_secrets(self) -> str:
        refused = []
        for key in ("admin", "changeme-changeme-changeme"):
            try:
                interceptors(Settings(auth="keys", write_keys=key))
            except ConfigError as exc:
                refused.append(str(exc).split(";")[0][:60])
        assert len(refused) == 2, "a weak key was accepted"
        compose = (REPO / "docker-compose.yml").read_text()
        assert re.search(r"GF_SECURITY_ADMIN_PASSWORD[:=]\s*\$\{GRAFANA_ADMIN_PASSWORD:\?", compose), (
            "Grafana has a default password")
        return f"keys refused at start ({' | '.join(refused)}); Grafana password required"

    # 16 ------------------------------------------------------------------------------------
    def stats_cost(self) -> str:
        self.ingest([pb.IngestItem(product_id=f"s{i}", image_id="a", image=self.image)
                     for i in range(20)])
        before = self.reader.stats().products
        started = time.monotonic()
        for _ in range(50):
            self.reader.stats()
        mean_ms = (time.monotonic() - started) * 20
        deleted = self.writer.delete([f"s{i}" for i in range(5)])
        after = self.reader.stats().products
        assert deleted == 5 and after == before - 5, f"{before} -> {after} products after 5 deletes"
        assert mean_ms < 50, f"GetStats {mean_ms:.1f} ms"
        return (f"GetStats x50: {mean_ms:.1f} ms each (cached <= {Settings().stats_cache_s:g} s); "
                f"{before} -> {after} products at once after deleting 5")

    # also found: two processes on one embedded store -----------------------------------------
    def second_process(self) -> str:
        env = {**os.environ, **self.env, "LOOKALIKE_DATA_DIR": str(self.work / "data"),
               "LOOKALIKE_LISTEN": f"127.0.0.1:{free_port()}",
               "LOOKALIKE_METRICS_PORT": str(free_port()), "QDRANT_URL": "", "COLUMNS": "300"}
        result = subprocess.run([sys.executable, "-m", "lookalike", "serve"], env=env,
                                capture_output=True, text=True, timeout=120)
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1, f"exit {result.returncode}: {lines[-3:]}"
        return f"second `lookalike serve` on the data dir: exit 2, '{lines[0][:110]}'"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/trickle":  # one header line every 0.5 s
            self.send_response(200)
            try:
                for i in range(60):
                    self.send_header(f"X-Slow-{i}", "1")
                    self.wfile.write(self._headers_buffer.pop())
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass  # the fetch gave up: what we want
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.body)))  # type: ignore[attr-defined]
        self.end_headers()
        self.wfile.write(self.server.body)  # type: ignore[attr-defined]

    def log_message(self, *_: object) -> None:
        pass


def _serve(host: str, port: int, body: bytes) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Handler)
    server.body = body  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _SlowLink:
    """A loopback TCP proxy forwarding the client's bytes at `rate` bytes/s."""

    def __init__(self, target: str, rate: int) -> None:
        host, port = target.rsplit(":", 1)
        self.upstream, self.rate = (host, int(port)), rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(near, far, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(far, near, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while data := source.recv(16384):
                sink.sendall(data)
                if slow:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def _rss_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field)))


def _listening_hosts(port: int) -> list[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    hosts = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                # /proc stores each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
                hosts.append(str(ipaddress.ip_address(words)))
    return hosts


FINDINGS = [
    ("1 keyless streams starve the API", "idle_streams"),
    ("2 one bad URI loses its chunk", "bad_uris_in_a_chunk"),
    ("3 reindex trusts the caller's source", "reindex_sources"),
    ("4 DNS rebinding", "dns_rebinding"),
    ("5 headers trickle past the deadline", "trickling_headers"),
    ("6 decompression bomb within the limits", "decompression_within_limits"),
    ("7 big requests read before the key", "big_requests_unread"),
    ("8 deployment defaults", "deployment_defaults"),
    ("9 Rich markup in the CLI", "cli_markup"),
    ("10 point ids collide on \\x1f", "separator_collision"),
    ("11 no caps on strings and lists", "unbounded_strings"),
    ("12 metrics on every interface", "metrics_bind"),
    ("13 credentials in logs and reports", "credentials_redacted"),
    ("14 GetJob('<id>:items')", "job_ids"),
    ("15 weak keys, Grafana admin/admin", "weak_secrets"),
    ("16 GetStats O(catalogue)", "stats_cost"),
    ("+ two processes on one store", "second_process"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="lookalike-hostile-") as work:
        probe = Probe(Path(work), args.redis_url)
        try:
            for title, name in FINDINGS:
                started = time.monotonic()
                try:
                    verdict, evidence = "held  ", getattr(probe, name)()
                except Exception as exc:  # noqa: BLE001 - a finding that breaks is a finding
                    verdict, evidence = "FAILED", f"{type(exc).__name__}: {exc}"
                    failed += 1
                print(f"{verdict} {title}: {evidence} [{time.monotonic() - started:.1f} s]",
                      flush=True)
        finally:
            probe.close()
    print(f"{len(FINDINGS) - failed}/{len(FINDINGS)} held")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

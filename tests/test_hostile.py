"""Whatever people upload: each hostile input gets a precise status, memory stays bounded,
and the next good request is answered correctly."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import grpc
import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike.client import Client
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.tools.local import local_service
from lookalike.v1 import lookalike_pb2 as pb
from tests.test_imaging import BAD, encode, png_header_only
from tests.test_observability import metric

COFFEE = data.coffee()


def pil_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    return exif


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.roll(COFFEE, shift, axis=1)) for shift in (0, 40, 80)]
    return pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


REJECTED = {
    **{name: (payload, grpc.StatusCode.INVALID_ARGUMENT, reason)
       for name, (payload, reason) in BAD.items()},
    "random bytes": (np.random.default_rng(0).bytes(5000), grpc.StatusCode.INVALID_ARGUMENT,
                     "not a recognised image"),
    "1x100000": (png_header_only(1, 100000), grpc.StatusCode.INVALID_ARGUMENT,
                 "at least 16 on each side"),
    "animated gif": (animated_gif(), grpc.StatusCode.INVALID_ARGUMENT,
                     "unsupported image format GIF"),
    "over the request limit": (b"\xff\xd8" + bytes(17 * 1024 * 1024),
                               grpc.StatusCode.RESOURCE_EXHAUSTED, "the limit is 16,777,216"),
}

ACCEPTED = {
    "16-bit png": cv2.imencode(
        ".png", cv2.cvtColor(COFFEE, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)[1].tobytes(),
    "cmyk jpeg": pil_bytes(Image.fromarray(COFFEE).convert("CMYK"), "JPEG"),
    "greyscale png": encode(np.dstack([cv2.cvtColor(COFFEE, cv2.COLOR_RGB2GRAY)] * 3), ".png"),
    "alpha png": pil_bytes(Image.fromarray(COFFEE).convert("RGBA"), "PNG"),
    "webp": encode(COFFEE, ".webp"),
    "exif-rotated jpeg": pil_bytes(Image.fromarray(COFFEE), "JPEG", exif=rotated_exif()),
}


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field)))


def solid_png(width: int, height: int) -> bytes:
    """A real, complete PNG of one colour: tiny on the wire, width*height*3 bytes decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    packer, row = zlib.compressobj(9), b"\0" + b"\x80" * (3 * width)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


BIG_VALID = solid_png(7000, 7000)     # 49 Mpx: within the 50 Mpx limit, 147 MB decoded
BOMB = solid_png(12000, 12000)        # 144 Mpx: over the limit, under OpenCV's own 1 Gpx


@pytest.fixture(scope="module")
def catalogue(client: Client, sample: Path) -> None:
    bulk.ingest(client, read_catalogue(sample / "catalogue.csv"))


def test_every_hostile_input_gets_a_precise_status(client: Client, catalogue) -> None:
    for name, (payload, code, reason) in REJECTED.items():
        with pytest.raises(grpc.RpcError) as err:
            client.search(payload)
        assert err.value.code() == code, name
        assert reason in err.value.details(), (name, err.value.details())


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_unusual_but_valid_images_find_the_product(client: Client, catalogue, name: str) -> None:
    assert client.search(ACCEPTED[name], top_k=1).matches[0].product_id == "coffee-cup", name


def test_bombs_do_not_grow_memory(client: Client, running, catalogue, sample: Path) -> None:
    photo = (sample / "queries" / "coffee-cup-1.jpg").read_bytes()
    client.search(photo)
    before = rss_kib(running.pid)
    for _ in range(10):  # a complete 420 KB PNG that OpenCV would decode into 432 MB
        with pytest.raises(grpc.RpcError) as err:
            client.search(BOMB)
        assert "pixels; the limit is 50,000,000" in err.value.details()
    for _ in range(30):  # each would need 7.5 GB decoded
        with pytest.raises(grpc.RpcError):
            client.search(png_header_only(50000, 50000))
        with pytest.raises(grpc.RpcError):
            client.search(BAD["truncated jpeg"][0])
    assert rss_kib(running.pid) - before < 100 * 1024
    assert client.search(photo, top_k=1).matches[0].product_id == "coffee-cup"


def test_large_valid_images_at_once_stay_within_a_memory_bound(client: Client, running,
                                                               catalogue) -> None:
    """16 searches of a 7000x7000 PNG at once (147 MB each decoded): the pixels being decoded
    at once are bounded, and what is kept is at most 1600 px long."""
    Path(f"/proc/{running.pid}/clear_refs").write_text("5")  # reset the peak RSS
    before = rss_kib(running.pid)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: client.search(BIG_VALID, top_k=1), range(16)))
    assert all(len(a.matches) == 1 for a in answers)
    peak = rss_kib(running.pid, "VmHWM")
    assert peak - before < 600 * 1024, f"peak RSS grew by {(peak - before) // 1024} MB"


def test_malformed_protobuf_is_answered_not_crashed(running, client: Client) -> None:
    raw = client.channel.unary_unary("/lookalike.v1.Lookalike/Search")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff\xff", timeout=10)  # not a SearchRequest
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in err.value.details()
    assert client.healthy()


def test_expired_deadline_skips_the_cnn(client: Client, running) -> None:
    """The request reaches the server in time, the deadline passes while it decodes (a 49 Mpx
    PNG takes a few hundred ms): the server notices and does not run the CNN."""
    abandoned = lambda: metric(httpx.get(running.metrics_url, timeout=5).text,  # noqa: E731
                               "lookalike_searches_abandoned_total")
    before = abandoned()
    with Client(client.target, timeout_s=0.08) as hasty:
        with pytest.raises(grpc.RpcError) as err:
            hasty.search(BIG_VALID)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while abandoned() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert abandoned() == before + 1


def test_ids_texts_and_lists_are_capped(client: Client) -> None:
    good = encode(COFFEE, ".png")
    job = client.wait_job(client.submit([
        pb.IngestItem(product_id="a\x1fb", image_id="c", image=good),
        pb.IngestItem(product_id="a", image_id="b\x1fc", image=good),
        pb.IngestItem(product_id="x" * 10_000, image_id="c", image=good),
        pb.IngestItem(product_id="long-title", title="t" * 100_000, image=good),
        pb.IngestItem(product_id="labels", labels=[f"l{i}" for i in range(1000)], image=good),
    ]), timeout_s=60)
    assert (job.done, job.failed) == (0, 5)
    reasons = sorted(f.reason for f in job.failures)
    assert sum("control characters" in r for r in reasons) == 2
    assert any("product_id is 10,000 characters; at most 256" in r for r in reasons)
    assert any("title is 100,000 characters; at most 1,024" in r for r in reasons)
    assert any("1000 labels; at most 64" in r for r in reasons)
    for call, message in (
        (lambda: client.search(good, labels=[f"l{i}" for i in range(100_000)]),
         "filter.labels has 100,000 values"),
        (lambda: client.delete([f"p{i}" for i in range(5000)]), "at most 1,000 per call"),
        (lambda: client.job(f"{job.job_id}:items"), "32 hexadecimal characters"),
        (lambda: client.submit([pb.IngestItem(product_id="p", uri="https://a.test/x.jpg")] * 1001),
         "1,001 items; at most 1,000"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()


def test_credentials_in_uris_stay_out_of_reports_and_logs(client: Client, running) -> None:
    uri = "https://shop:hunter2@images.invalid/x.jpg?X-Amz-Signature=topsecret"
    job = client.wait_job(client.submit([pb.IngestItem(product_id="signed", uri=uri)]),
                          timeout_s=60)
    (failure,) = job.failures
    assert "cannot resolve" in failure.reason
    for text in (failure.reason, failure.image_id, running.log.read_text()):
        assert "hunter2" not in text and "topsecret" not in text


def test_overload_is_resource_exhausted_not_a_hang(tmp_path: Path, service_env,
                                                  sample: Path) -> None:
    env = {**service_env, "LOOKALIKE_MAX_CONCURRENT_RPCS": "2", "LOOKALIKE_GRPC_WORKERS": "2"}
    photo = (sample / "queries" / "coffee-cup-1.jpg").read_bytes()
    codes: list[grpc.StatusCode] = []
    with local_service(tmp_path, env=env) as target, Client(target, timeout_s=30) as c:
        def call() -> None:
            try:
                c.search(photo)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())

        threads = [threading.Thread(target=call) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1
        assert codes.count(grpc.StatusCode.OK) >= 2
        c.search(photo)  # and then it serves again

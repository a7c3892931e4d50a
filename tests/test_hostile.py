"""Whatever people upload: each hostile input gets a precise status, memory stays bounded,
and the next good request is answered correctly."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike import bulk
from lookalike.catalogue import read_catalogue
from lookalike.client import Client
from lookalike.local import local_service
from tests.test_imaging import BAD, encode, png_header_only

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


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


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
    for _ in range(30):  # each would need 10 GB decoded, 30 GB in all
        with pytest.raises(grpc.RpcError):
            client.search(png_header_only(50000, 50000))
        with pytest.raises(grpc.RpcError):
            client.search(BAD["truncated jpeg"][0])
    assert rss_kib(running.pid) - before < 100 * 1024
    assert client.search(photo, top_k=1).matches[0].product_id == "coffee-cup"


def test_malformed_protobuf_is_answered_not_crashed(running, client: Client) -> None:
    raw = client.channel.unary_unary("/lookalike.v1.Lookalike/Search")
    with pytest.raises(grpc.RpcError) as err:
        raw(b"\xff\xff\xff\xff", timeout=10)  # not a SearchRequest
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request" in err.value.details()
    assert client.healthy()


def test_expired_deadline_is_honoured(client: Client, sample: Path) -> None:
    photo = (sample / "queries" / "coffee-cup-1.jpg").read_bytes()
    with Client(client.target, timeout_s=0.001) as hasty:
        with pytest.raises(grpc.RpcError) as err:
            hasty.search(photo)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


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

"""DetectCopy through a real service: an edited catalogue image (cropped, turned, written over,
recompressed; or mirrored) is a copy of its original; a photo of another product and a
synthetic image are not; a bad image is INVALID_ARGUMENT; product sets stay apart."""

from __future__ import annotations

from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from lookalike.client import Client
from lookalike.imaging import decode
from lookalike.tools import bulk
from lookalike.tools.catalogue import read_catalogue
from lookalike.tools.copies import edit
from lookalike.v1 import lookalike_pb2 as pb

SET_A, SET_B = "copies-a", "copies-b"


@pytest.fixture(scope="module")
def catalogue(client: Client, sample: Path) -> None:
    """The sample catalogue in set A; set B holds one other product (the coffee cup)."""
    outcome = bulk.ingest(client, read_catalogue(sample / "catalogue.csv", product_set=SET_A))
    assert outcome.failures == []
    cup = (sample / "catalogue" / "coffee-cup.png").read_bytes()
    assert client.wait_job(client.submit([pb.IngestItem(
        product_id="coffee-cup", image_id="front", image=cup, product_set=SET_B)])).done == 1


def edited(sample: Path, name: str, kind: str, level: int) -> bytes:
    rgb = decode((sample / "catalogue" / f"{name}.png").read_bytes(), target_side=4096)
    return edit(rgb, kind, level, np.random.default_rng(3))


@pytest.mark.parametrize("name", ["astronaut-print", "camera-print"])
def test_an_edited_or_mirrored_catalogue_image_is_a_copy_of_it(client: Client, sample: Path,
                                                               catalogue, name: str) -> None:
    # crop to 80 %, turned 4 degrees, two lines of text over it, JPEG quality 60
    for copy in (edited(sample, name, "combined", 1), edited(sample, name, "flip", 0)):
        r = client.detect_copy(copy, SET_A)
        assert r.is_copy, r
        assert (r.original.product_id, r.original.image_id) == (name, "front")
        assert r.confidence >= 0.75 and r.inliers >= 20 and 0.3 <= r.coverage <= 1.0, r
        assert r.original.verified and r.original.inliers == r.inliers and r.server_ms > 0


def test_a_photo_of_another_product_or_a_synthetic_image_is_not_a_copy(
        client: Client, sample: Path, catalogue) -> None:
    # The sample's store photos of products that set B does not hold.
    photos = sorted((sample / "queries").glob("*.jpg"))
    others = [p for p in photos if not p.name.startswith("coffee-cup")][:4]
    rng = np.random.default_rng(5)
    shapes = np.full((480, 640, 3), 255, np.uint8)
    for _ in range(40):
        x, y = (int(v) for v in rng.integers(0, 600, 2))
        cv2.rectangle(shapes, (x, y), (x + int(rng.integers(10, 90)), y + int(rng.integers(10, 90))),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    ok, synthetic = cv2.imencode(".png", shapes)
    for data, product_set in [*((p.read_bytes(), SET_B) for p in others),
                              (synthetic.tobytes(), SET_A)]:
        r = client.detect_copy(data, product_set)
        assert not r.is_copy and r.coverage == 0 and r.confidence < 0.5, r


def test_a_copy_in_one_product_set_is_not_found_from_another(client: Client, sample: Path,
                                                             catalogue) -> None:
    copy = edited(sample, "astronaut-print", "combined", 0)
    assert client.detect_copy(copy, SET_A).is_copy
    r = client.detect_copy(copy, SET_B)
    assert not r.is_copy and r.original.product_id in ("", "coffee-cup")
    assert not client.detect_copy(copy, "copies-c").original.product_id  # an empty set


def test_a_bad_image_or_set_name_is_invalid_argument(client: Client, catalogue) -> None:
    for image, product_set in ((b"not an image at all", SET_A), (b"", SET_A),
                               (b"\xff\xd8\xff\xe0" + b"\0" * 64, SET_A), (b"x", "../etc")):
        with pytest.raises(grpc.RpcError) as err:
            client.detect_copy(image, product_set)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


def test_the_decision_weighs_the_global_vector_with_the_keypoints() -> None:
    """A geometric copy needs a plausible global cosine; a near-identical global vector is a
    copy even when small images leave too few keypoints."""
    from lookalike.verify.copies import CopyFit, decide

    strong = CopyFit(index=1, mirrored=False, pairs=60, affine=50, residual=0.2, coverage=0.8,
                     scale=1.0, proper=True)
    assert strong.is_copy
    assert decide(strong, [0.7, 0.6])[:2] == (1, True)
    assert decide(strong, [0.45, 0.3])[:2] == (1, False)  # a shared pattern, not the picture
    weak = CopyFit(index=0, mirrored=False, pairs=6, affine=5, residual=2.0, proper=True)
    assert not weak.is_copy
    index, is_copy, confidence = decide(weak, [0.97, 0.5])
    assert (index, is_copy) == (0, True) and 0.77 <= confidence <= 0.99
    assert decide(weak, [0.8, 0.5])[1] is False and decide(None, [])[1] is False

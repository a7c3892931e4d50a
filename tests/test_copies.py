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


def test_a_catalogue_image_framed_small_in_a_screenshot_is_a_copy_of_it(
        client: Client, sample: Path, catalogue) -> None:
    """At 30 % of a phone or desktop page the whole image's vector is far from the original's
    (0.45 for the astronaut print: under the geometric copy's floor); the region the keypoints
    found is not."""
    from lookalike.tools.copies import screenshot

    for name in ("astronaut-print", "camera-print"):
        rgb = decode((sample / "catalogue" / f"{name}.png").read_bytes(), target_side=4096)
        page = screenshot(rgb, 0.3, np.random.default_rng(1))
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(page, cv2.COLOR_RGB2BGR))
        r = client.detect_copy(data.tobytes(), SET_A)
        assert r.is_copy and (r.original.product_id, r.original.image_id) == (name, "front"), r
        assert r.confidence >= 0.77 and r.inliers >= 8, r


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
    vetoed = decide(strong, [0.45, 0.3])  # a shared pattern, not the picture
    assert vetoed[:2] == (1, False) and strong.confidence > 0.9 and vetoed[2] <= 0.5
    weak = CopyFit(index=0, mirrored=False, pairs=6, affine=5, residual=2.0, proper=True)
    assert not weak.is_copy
    index, is_copy, confidence = decide(weak, [0.97, 0.5])
    assert (index, is_copy) == (0, True) and 0.77 <= confidence <= 0.99
    assert decide(weak, [0.8, 0.5])[1] is False and decide(None, [])[1] is False


def test_the_region_the_keypoints_found_is_compared_by_its_global_vector() -> None:
    """A screenshot: strong keypoints, a low whole-image cosine, the region found at the
    original's vector. A photo's region does not lower the geometric floor; two near misses
    (keypoints just under their bar, a cosine just under its own) make a copy together."""
    from lookalike.verify.copies import NEAR_COSINE, NEAR_SCORE, CopyFit, decide

    strong = CopyFit(index=2, mirrored=False, pairs=40, affine=30, residual=0.1, coverage=0.9,
                     scale=0.4, proper=True)
    assert strong.is_copy
    assert decide(strong, [0.6, 0.5, 0.4], region=0.97)[:2] == (2, True)
    assert decide(strong, [0.6, 0.5, 0.4], region=0.7)[:2] == (2, False)  # a photo's region
    assert decide(strong, [0.6, 0.5, 0.4])[:2] == (2, False)
    weak = CopyFit(index=1, mirrored=False, pairs=20, affine=9, residual=0.5, scale=1.0,
                   proper=True)
    assert not weak.is_copy and weak.score < NEAR_SCORE
    index, is_copy, confidence = decide(weak, [0.7, 0.6], region=0.9)
    assert (index, is_copy) == (1, True) and 0.77 <= confidence <= 0.99
    assert decide(weak, [0.7, 0.6], region=0.84)[1] is False
    improper = CopyFit(index=1, mirrored=False, pairs=20, affine=9, residual=0.5, scale=1.0)
    assert decide(improper, [0.7, 0.6], region=0.95)[1] is False  # no map, no region
    near = CopyFit(index=0, mirrored=False, pairs=30, affine=16, residual=0.33, scale=1.0,
                   proper=True)
    assert NEAR_SCORE <= near.score < 3.25
    assert decide(near, [NEAR_COSINE + 0.01, 0.5])[:2] == (0, True)
    assert decide(near, [0.6, 0.5], region=NEAR_COSINE + 0.01)[:2] == (0, True)
    assert decide(near, [NEAR_COSINE - 0.01, 0.5], region=0.6)[1] is False
    weaker = CopyFit(index=0, mirrored=False, pairs=30, affine=16, residual=0.7, scale=1.0,
                     proper=True)
    assert weaker.score < NEAR_SCORE and decide(weaker, [0.84, 0.5])[1] is False


def test_the_region_is_the_original_pulled_back_out_of_a_screenshot(sample: Path) -> None:
    """undone() inverts the fitted map: a catalogue image placed small in a UI frame comes
    back as the original's frame, pixel for pixel up to resampling."""
    from lookalike.verify.copies import best_fit, mirror, undone
    from lookalike.verify.rerank import StageTwo

    stage = StageTwo()
    original = decode((sample / "catalogue" / "astronaut-print.png").read_bytes(),
                      target_side=4096)
    shot = decode(edited(sample, "astronaut-print", "screenshot", 2))
    candidate = stage.catalogue_features(original)
    query = stage.query_features(shot)
    fit = best_fit(query, stage.query_features(mirror(shot)), [candidate])
    assert fit is not None and fit.is_copy and not fit.mirrored
    region = undone(shot, fit, query, candidate)
    assert max(region.shape[:2]) == 256
    expected = cv2.resize(original, region.shape[1::-1], interpolation=cv2.INTER_AREA)
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32) for x in (region, expected)]
    correlation = np.corrcoef(grey[0].ravel(), grey[1].ravel())[0, 1]
    assert correlation > 0.9, correlation
    whole = cv2.resize(shot, region.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.corrcoef(cv2.cvtColor(whole, cv2.COLOR_RGB2GRAY).astype(np.float32).ravel(),
                       grey[1].ravel())[0, 1] < 0.5

"""Stage 2 of search: local features verified by a homography find a catalogue image in a
photo however it is turned or tilted, reject another product, and re-rank deterministically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lookalike.imaging import decode
from lookalike.verify.features import LocalFeatures, extract
from lookalike.verify.geometry import VerifyParams, match_shortlist, verify
from lookalike.verify.rerank import StageTwo, rerank, verify_ranked

STAGE = StageTwo()


def catalogue(sample: Path, name: str) -> np.ndarray:
    return decode((sample / "catalogue" / f"{name}.png").read_bytes())


def photo_of(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image seen tilted and turned, on a cluttered background."""
    h, w = image.shape[:2]
    canvas = (w * 3 // 2, h * 3 // 2)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * [w, h]
    target = (corners + np.float32([w / 4, h / 4]) + jitter).astype(np.float32)
    warp = cv2.getPerspectiveTransform(corners, target)
    clutter = rng.integers(0, 255, (canvas[1] // 8, canvas[0] // 8, 3), np.uint8)
    background = cv2.resize(clutter, canvas, interpolation=cv2.INTER_NEAREST)
    seen = cv2.warpPerspective(image, warp, canvas, dst=background,
                               borderMode=cv2.BORDER_TRANSPARENT)
    return cv2.rotate(seen, cv2.ROTATE_90_CLOCKWISE)


@pytest.mark.parametrize("name", ["astronaut-print", "camera-print", "coffee-cup"])
def test_a_tilted_turned_catalogue_image_is_found_and_another_product_is_not(
        sample: Path, name: str) -> None:
    image = catalogue(sample, name)
    photo = photo_of(image, np.random.default_rng(0))
    query = extract(photo, STAGE.kind, STAGE.query_points, STAGE.long_side)
    same = verify(query, STAGE.catalogue_features(image))
    assert same.verified and same.inliers >= 1.5 * STAGE.min_inliers, same
    # The outline lies in the photo (its pixels) and is a convex quadrilateral.
    polygon = np.float32(same.polygon)
    assert polygon.shape == (4, 2) and cv2.isContourConvex(polygon)
    height, width = photo.shape[:2]
    assert np.all(polygon >= -0.05 * max(width, height))
    assert np.all(polygon[:, 0] <= 1.05 * width) and np.all(polygon[:, 1] <= 1.05 * height)
    for other in ("galaxy-puzzle", "brick-tile", "moon-lamp"):
        evidence = verify(query, STAGE.catalogue_features(catalogue(sample, other)))
        assert not evidence.verified and evidence.inliers < STAGE.min_inliers, (other, evidence)


@pytest.mark.parametrize("kind", ["sift", "orb"])
def test_the_shortlist_matcher_agrees_with_opencvs_brute_force_matcher(sample: Path,
                                                                       kind: str) -> None:
    """One matrix product for the whole shortlist gives OpenCV's per-image ratio-test matches."""
    names = ["camera-print", "galaxy-puzzle", "coffee-cup", "moon-lamp"]
    candidates = [extract(catalogue(sample, n), kind, 240) for n in names]
    query = extract(photo_of(catalogue(sample, "camera-print"), np.random.default_rng(2)), kind, 500)
    ours = match_shortlist(query, candidates, 0.8)
    norm = cv2.NORM_HAMMING if kind == "orb" else cv2.NORM_L2
    for candidate, pairs in zip(candidates, ours):
        cast = (lambda d: d) if kind == "orb" else (lambda d: d.astype(np.float32))
        knn = cv2.BFMatcher(norm).knnMatch(cast(candidate.descriptors), cast(query.descriptors), k=2)
        good = sorted((m for m, n in knn if m.distance < 0.8 * n.distance), key=lambda m: m.distance)
        once: dict[int, tuple[int, int]] = {}
        for m in good:
            once.setdefault(m.trainIdx, (m.queryIdx, m.trainIdx))
        assert {tuple(p) for p in pairs.tolist()} == set(once.values())
    assert len(ours[0]) > 3 * max(len(p) for p in ours[1:])  # the right image matches most


def test_features_pack_small_and_unpack_the_same(sample: Path) -> None:
    features = STAGE.catalogue_features(catalogue(sample, "astronaut-print"))
    packed = features.pack()
    assert len(features) == STAGE.catalogue_points and features.packed_bytes() <= 32 * 1024
    again = LocalFeatures.unpack(packed)
    assert again.kind == features.kind and again.size == features.size
    assert np.array_equal(again.descriptors, features.descriptors)
    assert np.abs(again.points - features.points).max() <= 0.5
    with pytest.raises(ValueError, match="format"):
        LocalFeatures.unpack("AA" + packed[2:])


def test_the_fused_ranking_is_deterministic_and_tiered(sample: Path) -> None:
    photo = STAGE.query_features(photo_of(catalogue(sample, "camera-print"),
                                          np.random.default_rng(1)))
    names = ["galaxy-puzzle", "moon-lamp", "camera-print", "brick-tile"]  # stage-1 order
    packed = [STAGE.catalogue_features(catalogue(sample, n)).pack() for n in names]
    packed[1] = ""  # stored without local features: keeps its stage-1 place among the rest
    orders = {tuple(r.index for r in rerank("auto", photo, packed, STAGE)) for _ in range(3)}
    assert orders == {(2, 0, 1, 3)}  # the verified product first, the rest in stage-1 order
    assert [r.index for r in rerank("on", photo, packed, STAGE)] == [2, 0, 1, 3]
    assert [r.index for r in rerank("off", photo, packed, STAGE)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="verify"):
        rerank("always", photo, packed, STAGE)


def test_a_photo_found_in_two_halves_keeps_the_whole_photos_keypoints(sample: Path) -> None:
    """The halves (found side by side) give the whole photo's keypoints, the seam included,
    and verify as well: splitting is for speed, not a different detector."""
    photo = photo_of(catalogue(sample, "astronaut-print"), np.random.default_rng(3))
    whole = extract(photo, STAGE.kind, STAGE.query_points, STAGE.long_side)
    halves = extract(photo, STAGE.kind, STAGE.query_points, STAGE.long_side, halves=True)
    assert len(halves) == len(whole) == STAGE.query_points and halves.size == whole.size
    near = np.linalg.norm(halves.points[:, None] - whole.points[None], axis=2).min(1) < 1.0
    assert near.mean() >= 0.9, near.mean()
    seam = whole.size[1] / 2
    assert np.any(np.abs(halves.points[:, 1] - seam) < 8), "keypoints along the seam are kept"
    # A keypoint in the overlap is kept by one half only (SIFT's several orientations at one
    # place have different descriptors).
    rows = np.hstack([np.round(halves.points), halves.descriptors.astype(np.float32)])
    assert len(np.unique(rows, axis=0)) == len(halves), "a keypoint found twice"
    image = STAGE.catalogue_features(catalogue(sample, "astronaut-print"))
    assert verify(halves, image).inliers >= 0.8 * verify(whole, image).inliers


def test_the_shortlist_is_verified_past_its_head_only_without_a_decisive_match(sample: Path) -> None:
    """Stage-1 order is verified head first: a product verified with `decisive` inliers there
    ends stage 2 (the rest report no evidence); without one the whole shortlist is verified."""
    photo = STAGE.query_features(photo_of(catalogue(sample, "camera-print"),
                                          np.random.default_rng(1)))
    others = [STAGE.catalogue_features(catalogue(sample, n))
              for n in ("galaxy-puzzle", "moon-lamp", "brick-tile")]
    right = STAGE.catalogue_features(catalogue(sample, "camera-print"))
    params = VerifyParams(min_inliers=STAGE.min_inliers)
    full = verify_ranked(photo, [right, *others, right], params, first=5, decisive=0)
    assert full[0].verified and full[0].inliers >= 2 * STAGE.min_inliers
    early = verify_ranked(photo, [right, *others, right], params, first=2, decisive=full[0].inliers)
    assert early[:2] == full[:2] and not any(e.verified or e.inliers for e in early[2:])
    # Found only past the head, or not decisively: the rest is verified too.
    late = verify_ranked(photo, [*others, right], params, first=2, decisive=full[0].inliers)
    assert late[3].verified and late[3].inliers == full[0].inliers
    weak = verify_ranked(photo, [right, *others, right], params, first=2,
                         decisive=full[0].inliers + 1)
    assert weak[4].verified

"""Does a catalogue image appear in the query photo? Matches of local features that agree on
one homography (RANSAC) are the evidence; the homography must also be a plausible view of a
flat product (convex, not degenerate, not larger than the photo), because repetitive texture
(a pile of apples, a shelf of cans) lets RANSAC fit nonsense from a few lucky matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from lookalike.verify.features import LocalFeatures


@dataclass(frozen=True)
class Evidence:
    inliers: int = 0
    verified: bool = False
    # The catalogue image's outline in the query photo (original pixels), when verified.
    polygon: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyParams:
    ratio: float = 0.8            # Lowe's ratio test
    reprojection_px: float = 6.4  # RANSAC inlier distance: 1 % of the 640 px long side
    min_inliers: int = 8          # fewer: not verified


def _matches(query: LocalFeatures, candidate: LocalFeatures, ratio: float) -> list[cv2.DMatch]:
    if len(query) < 2 or len(candidate) < 2 or query.kind != candidate.kind:
        return []
    binary = query.kind == "orb"
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if binary else cv2.NORM_L2)
    q = query.descriptors if binary else query.descriptors.astype(np.float32)
    c = candidate.descriptors if binary else candidate.descriptors.astype(np.float32)
    pairs = matcher.knnMatch(c, q, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    # One catalogue point per query point (the closest): a repeated pattern in the catalogue
    # image must not count a query point several times.
    best: dict[int, cv2.DMatch] = {}
    for m in sorted(good, key=lambda m: m.distance):
        best.setdefault(m.trainIdx, m)
    return sorted(best.values(), key=lambda m: (m.queryIdx, m.trainIdx))


def _plausible(homography: np.ndarray, size: tuple[int, int], query_size: tuple[int, int]
               ) -> np.ndarray | None:
    """The catalogue image's corners in the photo, if they are a view of a flat product: in
    front of the camera, convex and not mirrored, 1 % to 9x the photo's area, opposite sides
    within 8x of each other. None otherwise."""
    width, height = size
    corners = homography @ np.array([[0, width, width, 0], [0, 0, height, height], [1, 1, 1, 1]],
                                    np.float64)
    if not np.all(np.isfinite(corners)) or np.any(corners[2] <= 1e-12):
        return None
    points = (corners[:2] / corners[2]).T
    edges = np.roll(points, -1, 0) - points
    turns = edges[:, 0] * np.roll(edges, -1, 0)[:, 1] - edges[:, 1] * np.roll(edges, -1, 0)[:, 0]
    if not np.all(turns > 0):
        return None
    area = 0.5 * abs(np.sum(points[:, 0] * np.roll(points[:, 1], -1)
                            - np.roll(points[:, 0], -1) * points[:, 1]))
    if not 0.01 <= area / (query_size[0] * query_size[1]) <= 9.0:
        return None
    sides = np.linalg.norm(edges, axis=1)
    if sides.min() < 1e-6 or max(sides[0] / sides[2], sides[2] / sides[0],
                                 sides[1] / sides[3], sides[3] / sides[1]) > 8.0:
        return None
    return points


def verify(query: LocalFeatures, candidate: LocalFeatures,
           params: VerifyParams = VerifyParams()) -> Evidence:
    matches = _matches(query, candidate, params.ratio)
    if len(matches) < max(4, params.min_inliers):
        return Evidence(len(matches) if len(matches) < 4 else 0)
    source = np.float32([candidate.points[m.queryIdx] for m in matches])
    target = np.float32([query.points[m.trainIdx] for m in matches])
    homography, mask = cv2.findHomography(source, target, cv2.USAC_MAGSAC, params.reprojection_px,
                                          maxIters=2000, confidence=0.995)
    if homography is None or mask is None:
        return Evidence()
    inliers = int(mask.sum())
    corners = _plausible(homography, candidate.size, query.size)
    if inliers < params.min_inliers or corners is None:
        return Evidence(inliers)
    polygon = [(float(x / query.scale), float(y / query.scale)) for x, y in corners]
    return Evidence(inliers, True, polygon)

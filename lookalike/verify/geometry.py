"""Does a catalogue image appear in the query photo? Matches of local features that agree on
one homography (RANSAC) are the evidence; the homography must also be a plausible view of a
flat product (convex, not degenerate, not larger than the photo), because repetitive texture
(a pile of apples, a shelf of cans) lets RANSAC fit nonsense from a few lucky matches.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def _nearest_two(catalogue: np.ndarray, query: np.ndarray, binary: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each catalogue descriptor: its nearest query descriptor, that distance and the
    second-nearest distance. One matrix product for the whole shortlist: OpenCV's brute-force
    matcher costs more per pair on these CPUs and its DMatch objects cost more than the maths.
    Binary descriptors become +-1 vectors: their squared distance is 4x the Hamming distance."""
    if binary:
        catalogue, query = (np.unpackbits(d, axis=1).astype(np.float32) * 2 - 1
                            for d in (catalogue, query))
    else:
        catalogue, query = catalogue.astype(np.float32), query.astype(np.float32)
    # Per row, the nearest query descriptor maximises c.q - |q|^2 / 2 (|c|^2 is the row's own
    # constant): one product and one broadcast, no full matrix of distances.
    half_norms = 0.5 * np.einsum("ij,ij->i", query, query)
    score = catalogue @ query.T
    score -= half_norms
    rows = np.arange(len(score))
    nearest = score.argmax(axis=1)
    best = score[rows, nearest]
    score[rows, nearest] = -np.inf
    runner_up = score.max(axis=1)
    norms = np.einsum("ij,ij->i", catalogue, catalogue)
    # squared L2 = |c|^2 - 2 * score
    first, second = (np.sqrt(np.maximum(norms - 2 * s, 0)) for s in (best, runner_up))
    if binary:
        first, second = first**2 / 4, second**2 / 4
    return nearest, first, second


def match_shortlist(query: LocalFeatures, candidates: Sequence[LocalFeatures], ratio: float
                    ) -> list[np.ndarray]:
    """Per candidate, (catalogue index, query index) pairs that pass Lowe's ratio test, at
    most one catalogue point per query point (the closest): a repeated pattern in the
    catalogue image must not count a query point several times."""
    out = [np.zeros((0, 2), np.int64) for _ in candidates]
    usable = [i for i, c in enumerate(candidates) if len(c) >= 2 and c.kind == query.kind]
    if len(query) < 2 or not usable:
        return out
    nearest, first, second = _nearest_two(
        np.concatenate([candidates[i].descriptors for i in usable]), query.descriptors,
        query.kind == "orb")
    passed = first < ratio * second
    start = 0
    for i in usable:
        rows = slice(start, start + len(candidates[i]))
        start = rows.stop
        kept = np.flatnonzero(passed[rows])
        kept = kept[np.argsort(first[rows][kept], kind="stable")]
        _, once = np.unique(nearest[rows][kept], return_index=True)
        kept = np.sort(kept[once])
        out[i] = np.stack([kept, nearest[rows][kept]], axis=1)
    return out


def plausible_outline(homography: np.ndarray, size: tuple[int, int], query_size: tuple[int, int]
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


@dataclass(frozen=True)
class Fit:
    """One homography from a catalogue image into the photo."""
    inliers: int
    support: np.ndarray               # the photo keypoints that are inliers (indices)
    corners: np.ndarray | None        # the plausible outline (resized photo's pixels), or None

    @property
    def verified(self) -> bool:
        return self.corners is not None

    def polygon(self, query: LocalFeatures) -> list[tuple[float, float]]:
        """The outline in the original photo's pixels."""
        return [] if self.corners is None else [
            (float(x / query.scale), float(y / query.scale)) for x, y in self.corners]


def fit_homography(query: LocalFeatures, candidate: LocalFeatures, pairs: np.ndarray,
                   params: VerifyParams) -> Fit | None:
    """RANSAC on matched (catalogue, photo) keypoint pairs; None below `min_inliers` pairs."""
    if len(pairs) < max(4, params.min_inliers):
        return None
    homography, mask = cv2.findHomography(
        candidate.points[pairs[:, 0]].astype(np.float32), query.points[pairs[:, 1]].astype(np.float32),
        cv2.USAC_MAGSAC, params.reprojection_px, maxIters=2000, confidence=0.995)
    if homography is None or mask is None:
        return Fit(0, np.zeros(0, np.int64), None)
    inlier = mask.ravel().astype(bool)
    corners = plausible_outline(homography, candidate.size, query.size)
    verified = inlier.sum() >= params.min_inliers and corners is not None
    return Fit(int(inlier.sum()), pairs[inlier, 1], corners if verified else None)


def verify_shortlist(query: LocalFeatures, candidates: Sequence[LocalFeatures],
                     params: VerifyParams = VerifyParams()) -> list[Evidence]:
    return [evidence(fit_homography(query, candidate, pairs, params), len(pairs), query)
            for candidate, pairs in zip(candidates, match_shortlist(query, candidates, params.ratio))]


def evidence(fit: Fit | None, pairs: int, query: LocalFeatures) -> Evidence:
    """What a match reports of its fit (`pairs`: the matches it was fitted on)."""
    if fit is None:  # too few matches to fit: fewer than 4 are reported as they are
        return Evidence(pairs if pairs < 4 else 0)
    return Evidence(fit.inliers, fit.verified, fit.polygon(query))


def verify(query: LocalFeatures, candidate: LocalFeatures,
           params: VerifyParams = VerifyParams()) -> Evidence:
    return verify_shortlist(query, [candidate], params)[0]

"""Copy detection: is this image a catalogue image, possibly edited?

An edited copy (crop, resize, recompression, rotation, mirror, colour shift, text over it,
a screenshot of it) is the catalogue image's pixels moved by a similarity or affine map:
its keypoints land where that map sends the catalogue's, to a pixel or two. A photo of a
printed product is a perspective view (lens, tilt, a box that is not quite flat, blur): its
matches agree on a homography but an affine map explains only part of them, and loosely. A
photo of another product rarely verifies at all.

The evidence per shortlisted catalogue image (the query's keypoints matched as in stage 2,
geometry.match_shortlist, once as sent and once mirrored, since SIFT is not flip-invariant):
- `affine`: the matches an affine map fitted by RANSAC explains within AFFINE_PX;
- `homography`: the matches the stage-2 homography explains (geometry.fit_homography),
  reported beside it;
- `residual`: the affine inliers' median distance to the map (a copy's keypoints land within
  a fraction of a pixel; a photo's, with its lens and tilt, further);
- `coverage`: the share of the catalogue image the query shows (the query frame mapped back);
- the map itself: not mirrored (the mirrored pass covers mirrors), sides within 2x.

Copy when log2(affine) - 3 x residual >= 3.25 (constants below, docs/copies.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from lookalike.verify.features import LocalFeatures
from lookalike.verify.geometry import VerifyParams, fit_homography, match_shortlist

AFFINE_PX = 3.0          # RANSAC inlier distance of the affine map, query pixels (640 px side)
MAX_ANISOTROPY = 2.0     # the map's singular values within 2x (resizing may change the aspect)
# The rule: a copy when score = log2(affine inliers) - RESIDUAL_WEIGHT * residual >= THRESHOLD
# (the residual in the coarser image's pixels, see CopyFit.residual_px), at least MIN_AFFINE
# inliers and a proper map. Chosen in process (every catalogue image a candidate) on the
# edits `lookalike eval-copies` generates (seed 0, 810 copies) and dev photos. Through the
# service (`lookalike eval-copies ../shared/data/smvs_dvd_dev ../shared/data/grocerystore_dev
# --photos 500`): recall 0.978 (DVD covers) / 0.817 (grocery, 198 px catalogue images),
# precision against photos of OTHER products 0.998 / 0.977; photos of the SAME product are
# called copies for 46 of 145 / 13 of 153 (docs/copies.md).
MIN_AFFINE = 8
RESIDUAL_WEIGHT = 3.0
THRESHOLD = 3.25
# confidence = 1 / (1 + exp(-(A * (score - THRESHOLD) + B))): a logistic fitted on the same
# benchmark (copies against photos of other products); 0.77 at the threshold.
CONFIDENCE_A, CONFIDENCE_B = 1.13, 1.19
# The global vector as evidence too (measured through the service with eval-copies --photos 500,
# after the rule above). Edited copies keep a cosine of 0.85 or more to their original far more
# often than photos reach it: no dev photo, of any product, went past 0.81 (grocery 0.73), while
# the grocery copies the keypoints missed (198 px images) were at up to 0.99. And a geometric
# copy whose cosine is under 0.5 was, there, a shelf photo sharing a printed pattern with
# another product. With both (service, same command): recall 0.978 -> 0.958 (DVD covers) and
# 0.817 -> 0.931 (grocery), precision against photos of other products 0.998 -> 1.000 and
# 0.977 -> 0.994; photos of the same product called copies 46 -> 18 of 145, 13 -> 10 of 153.
COPY_COSINE = 0.85     # a copy by its global vector alone
GEOMETRY_MIN_COSINE = 0.5  # a geometric copy needs at least this global cosine
# The region the affine map found, pulled back into the original's frame (`undone`), compared
# by its global vector: a screenshot's copy is a small part of the frame, so the whole image's
# cosine is low (0.37-0.51 for the dev screenshots the keypoints found, the region's 0.88-0.99),
# while a photo's region keeps its perspective, light and surroundings (at most 0.84 on the dev
# photos, 0.67 for photos of other products). So COPY_COSINE holds for that region too.
# And a copy edited several ways at once (198 px grocery images cropped, turned, written over,
# recompressed) can fall just short of both bars: NEAR_SCORE and NEAR_COSINE together call it
# (each alone does not: photos of the product reach either, rarely both).
NEAR_SCORE = THRESHOLD - 1.25
NEAR_COSINE = 0.80
NOT_A_COPY_MAX = 0.5  # the confidence a "not a copy" answer reports at most


@dataclass(frozen=True)
class CopyFit:
    """One catalogue image against the query (as sent or mirrored)."""
    index: int                 # the candidate's position in the shortlist
    mirrored: bool
    pairs: int = 0             # ratio-test matches
    affine: int = 0            # affine inliers within AFFINE_PX
    homography: int = 0        # stage-2 homography inliers
    residual: float = float("inf")   # affine inliers' median residual, catalogue pixels
    coverage: float = 0.0
    scale: float = 0.0         # query pixels per catalogue pixel (sqrt of the map's determinant)
    proper: bool = False       # an unmirrored map with sides within MAX_ANISOTROPY
    # The affine map, catalogue keypoint frame -> query keypoint frame (None without a fit).
    transform: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def residual_px(self) -> float:
        """The median residual in the coarser image's pixels: catalogue pixels when the copy
        is larger than the original, query pixels when it is smaller (a screenshot)."""
        return self.residual * min(self.scale, 1.0)

    @property
    def score(self) -> float:
        """log2(affine inliers) - RESIDUAL_WEIGHT * residual_px; -10 without a proper map."""
        if not self.proper or self.affine < 4:
            return -10.0
        return float(np.log2(self.affine) - RESIDUAL_WEIGHT * self.residual_px)

    @property
    def is_copy(self) -> bool:
        return self.proper and self.affine >= MIN_AFFINE and self.score >= THRESHOLD

    @property
    def confidence(self) -> float:
        margin = float(np.clip(self.score - THRESHOLD, -6, 6))
        return float(1 / (1 + np.exp(-(CONFIDENCE_A * margin + CONFIDENCE_B))))


def _coverage(affine: np.ndarray, query_size: tuple[int, int], size: tuple[int, int]) -> float:
    """Share of the catalogue image (size) inside the query frame mapped back by `affine`."""
    try:
        inverse = cv2.invertAffineTransform(affine)
    except cv2.error:
        return 0.0
    w, h = query_size
    frame = np.float32([[0, 0], [w, 0], [w, h], [0, h]]) @ inverse[:, :2].T + inverse[:, 2]
    cw, ch = size
    image = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    if cv2.contourArea(frame.astype(np.float32), oriented=True) < 0:
        frame = frame[::-1]
    inter, _ = cv2.intersectConvexConvex(np.ascontiguousarray(frame, np.float32), image)
    return float(np.clip(inter / (cw * ch), 0.0, 1.0)) if cw * ch else 0.0


def copy_fit(query: LocalFeatures, candidate: LocalFeatures, pairs: np.ndarray, index: int,
             mirrored: bool, params: VerifyParams = VerifyParams()) -> CopyFit:
    """The copy evidence of one catalogue image (`pairs`: match_shortlist's for it)."""
    if len(pairs) < 4:
        return CopyFit(index, mirrored, len(pairs))
    source = candidate.points[pairs[:, 0]].astype(np.float32)
    target = query.points[pairs[:, 1]].astype(np.float32)
    affine, mask = cv2.estimateAffine2D(source, target, method=cv2.RANSAC,
                                        ransacReprojThreshold=AFFINE_PX, maxIters=2000,
                                        confidence=0.995, refineIters=10)
    fit = fit_homography(query, candidate, pairs, params)
    homography = fit.inliers if fit is not None else 0
    if affine is None or mask is None:
        return CopyFit(index, mirrored, len(pairs), 0, homography)
    inlier = mask.ravel().astype(bool)
    linear = affine[:, :2]
    det = float(np.linalg.det(linear))
    singular = np.linalg.svd(linear, compute_uv=False)
    scale = float(np.sqrt(abs(det)))
    proper = det > 0 and singular[1] > 1e-6 and singular[0] / singular[1] <= MAX_ANISOTROPY
    errors = np.linalg.norm(source[inlier] @ linear.T + affine[:, 2] - target[inlier], axis=1)
    residual = float(np.median(errors)) / scale if inlier.any() and scale > 1e-6 else float("inf")
    return CopyFit(index, mirrored, len(pairs), int(inlier.sum()), homography, residual,
                   _coverage(affine, query.size, candidate.size) if proper else 0.0, scale, proper,
                   affine)


def undone(rgb: np.ndarray, fit: CopyFit, query: LocalFeatures, candidate: LocalFeatures,
           side: int = 256) -> np.ndarray:
    """The query image (`rgb`, mirrored already when the fit is) pulled back through the
    fit's map into the catalogue image's frame, `side` px on its long side: what the edit did
    undone, so that the global vector can compare the region the keypoints found with the
    original (a screenshot's copy is a small part of it; a shelf photo sharing a pattern with
    another product is not that product there)."""
    cw, ch = candidate.size
    k = max(cw, ch) / side
    out = (max(1, round(cw / k)), max(1, round(ch / k)))
    to_pixels = rgb.shape[1] / query.size[0]  # query keypoint frame -> rgb pixels
    m = np.asarray(fit.transform, np.float64) * to_pixels
    m[:, :2] *= k  # output pixels -> catalogue keypoint frame first
    return cv2.warpAffine(rgb, m, out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def mirror(rgb: np.ndarray) -> np.ndarray:
    """The image flipped left to right (its keypoints are found again on it: a SIFT
    descriptor of a mirrored patch is not the mirrored descriptor's bins permuted, exactly)."""
    return np.ascontiguousarray(rgb[:, ::-1])


def best_fit(query: LocalFeatures, mirrored: LocalFeatures | None,
             candidates: Sequence[LocalFeatures], params: VerifyParams = VerifyParams()
             ) -> CopyFit | None:
    """The strongest evidence over the shortlist, as sent and mirrored: a copy first, then the
    highest score. None when there are no candidates."""
    fits: list[CopyFit] = []
    for features, flipped in ((query, False), (mirrored, True)):
        if features is None:
            continue
        for i, pairs in enumerate(match_shortlist(features, candidates, params.ratio)):
            fits.append(copy_fit(features, candidates[i], pairs, i, flipped, params))
    if not fits:
        return None
    return max(fits, key=lambda f: (f.is_copy, f.score, f.affine, -f.index))


def decide(fit: CopyFit | None, cosines: list[float], region: float | None = None
           ) -> tuple[int, bool, float]:
    """(the candidate named, is a copy, confidence) from the geometric fit, the shortlist's
    global cosines (best first) and the cosine of the region the fit found (`region`, for the
    fit's candidate; None without a proper map of MIN_AFFINE inliers). In order:
    - a geometric copy with a whole-image cosine of at least GEOMETRY_MIN_COSINE;
    - the region at COPY_COSINE or more, or the best candidate's whole image;
    - a near copy: the fit's score at NEAR_SCORE and a cosine at NEAR_COSINE.
    The confidence of a copy by cosine is 0.77 at the bar rising to 0.99 at 0.95 (a line, not a
    fitted curve); of a near copy, 0.77; of a "not a copy", the keypoints' at most 0.5."""
    fitted = fit is not None and fit.proper and fit.affine >= MIN_AFFINE
    whole = cosines[fit.index] if fit is not None and fit.index < len(cosines) else -1.0
    # Not the region here: a photo's region passes 0.5 as often as not.
    if fit is not None and fit.is_copy and whole >= GEOMETRY_MIN_COSINE:
        return fit.index, True, fit.confidence

    def by_vector(cosine: float) -> float:
        return 0.77 + 0.22 * min(1.0, (cosine - COPY_COSINE) / 0.1)

    if fit is not None and fitted and region is not None and region >= COPY_COSINE:
        return fit.index, True, max(by_vector(region), fit.confidence)
    if cosines and cosines[0] >= COPY_COSINE:
        return 0, True, max(by_vector(cosines[0]), fit.confidence if fit and fit.index == 0 else 0.0)
    local = max(whole, region if region is not None and fitted else -1.0)
    if fit is not None and fitted and fit.score >= NEAR_SCORE and local >= NEAR_COSINE:
        return fit.index, True, max(0.77, fit.confidence)
    if fit is not None:
        # The keypoints alone may have looked like a copy that the global vector vetoed (a
        # flat-on photo of the product): a "no" never reads as a likely copy.
        return fit.index, False, min(fit.confidence, NOT_A_COPY_MAX)
    return 0, False, 0.0

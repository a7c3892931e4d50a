"""What every model does to a decoded photo before its forward pass."""

from __future__ import annotations

import cv2
import numpy as np


def to_model_input(rgb: np.ndarray, side: int = 224) -> np.ndarray:
    """Resize policy: the whole image, squashed to side x side (no crop, no padding).

    Cropping would cut off products photographed near the frame edge; squashing
    keeps every pixel and matched padding in quick tests. INTER_AREA avoids aliasing.
    """
    interp = cv2.INTER_AREA if min(rgb.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(rgb, (side, side), interpolation=interp)

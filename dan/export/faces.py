"""The generated faces export draws: int8 calibration faces and ``--backend auto``'s probe faces, in one place.

Both are faces of the shared face drawer (:func:`dan.synthface.prepared_faces`), prepared with the model's
own preprocessing record. The probe faces that check an int8 runtime's agreement must be other faces
than those it was calibrated on, so :data:`PROBE_SEED` is chosen here, from :data:`CALIBRATION_SEED`.
"""

from __future__ import annotations

import numpy as np

from dan.preprocess import Preprocessing
from dan.synthface import prepared_faces

__all__ = [
    "CALIBRATION_FACES",
    "CALIBRATION_SEED",
    "PROBE_FACES",
    "PROBE_SEED",
    "calibration_faces",
    "probe_faces",
]

CALIBRATION_FACES = 256
"""Generated faces ``dan export --int8`` draws when no ``--calib`` folder is given: half calibrate, half check."""

CALIBRATION_SEED = 0
"""Their seed."""

PROBE_FACES = 128
"""Generated faces ``--backend auto`` checks an int8 runtime on (99 % top-1: at most one may differ)."""

PROBE_SEED = CALIBRATION_SEED + 1
"""Their seed: other faces than the calibration faces (an int8 model is not checked on what it was fitted to)."""


def calibration_faces(pre: Preprocessing, n: int | None = None) -> np.ndarray:
    """``n`` (default :data:`CALIBRATION_FACES`) generated calibration faces as the model's input (n, 3, S, S)."""
    return prepared_faces(CALIBRATION_FACES if n is None else n, pre, CALIBRATION_SEED)


def probe_faces(pre: Preprocessing, n: int | None = None) -> np.ndarray:
    """``n`` (default :data:`PROBE_FACES`) generated probe faces, other faces than :func:`calibration_faces`, as the
    model's input (n, 3, S, S)."""
    return prepared_faces(PROBE_FACES if n is None else n, pre, PROBE_SEED)

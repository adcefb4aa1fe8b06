"""How far a model's probabilities can be trusted, and one number that makes them trustworthier.

Scores of class probabilities p (N, C) against true classes y (N,), defined once for ``dan evaluate``
and ``dan calibrate``:

- **ECE** (expected calibration error), top-1, 15 equal-width bins: each sample's confidence is its
  largest probability and it is right when that class is its true class; the bins are
  (0, 1/15], (1/15, 2/15], ..., (14/15, 1]; ECE = sum over bins of (n_b / N) |acc_b - conf_b|, with
  acc_b the share of right samples in the bin and conf_b their mean confidence (Guo et al. 2017,
  "On Calibration of Modern Neural Networks", arXiv 1706.04599). 0 is perfectly calibrated.
- **NLL** (negative log likelihood): mean over samples of -ln p_y (natural log; from the logits'
  log-softmax where the logits are known, so a very confident mistake is not clipped).
- **Brier score**, multi-class: mean over samples of sum over classes of (p_c - [c = y])^2, in
  [0, 2]. Binary problems are often scored with half of it (scikit-learn's ``brier_score_loss``:
  the squared error of the positive class's probability alone).

**Temperature scaling** (Guo et al.): one scalar T > 0 divides every logit before the softmax,
softmax(z / T). It changes no prediction (the order of the logits is kept) and only the confidence:
T > 1 softens an over-confident model. :func:`fit_temperature` finds the T that minimises the NLL on a
validation split, deterministically (bisection on the derivative: the NLL is convex in 1 / T).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BINS",
    "MIN_FACES",
    "T_BOUNDS",
    "Reliability",
    "brier_score",
    "calibration_scores",
    "expected_calibration_error",
    "fit_temperature",
    "log_softmax",
    "negative_log_likelihood",
    "reliability",
]

BINS = 15
"""Equal-width confidence bins of the ECE and the reliability diagram."""

MIN_FACES = 20
"""Fewest faces :func:`fit_temperature` is asked to place T on (``dan calibrate`` refuses fewer): below it one
or two confident faces decide T."""

T_BOUNDS = (0.01, 100.0)
"""The range :func:`fit_temperature` searches (a fit at a bound says the split cannot place T)."""


@dataclass(frozen=True)
class Reliability:
    """Accuracy against confidence per bin (what the reliability diagram draws).

    Attributes:
        edges: Bin edges, (B + 1,), from 0 to 1; bin b holds confidences in (edges[b], edges[b + 1]].
        counts: Samples per bin, (B,).
        confidence: Mean confidence per bin, (B,) (0 for an empty bin).
        accuracy: Share of right predictions per bin, (B,) (0 for an empty bin).
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean of |accuracy - confidence| over the bins."""
        n = self.counts.sum()
        return float((self.counts * np.abs(self.accuracy - self.confidence)).sum() / n) if n else float("nan")

    def to_dict(self) -> dict:
        """Plain types: ``edges``, ``counts``, ``confidence``, ``accuracy`` as lists."""
        return {
            "edges": [round(float(e), 6) for e in self.edges],
            "counts": [int(c) for c in self.counts],
            "confidence": [float(c) for c in self.confidence],
            "accuracy": [float(a) for a in self.accuracy],
        }


def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log-softmax of ``logits / temperature``, float64 (N, C)."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _probabilities(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"expected probabilities of shape (N, C), got {p.shape}")
    return p


def reliability(probs: np.ndarray, targets: np.ndarray, bins: int = BINS) -> Reliability:
    """Top-1 accuracy and mean confidence in ``bins`` equal-width confidence bins.

    Args:
        probs: Class probabilities, (N, C).
        targets: True class indices, (N,).
        bins: Number of bins over (0, 1].
    """
    p = _probabilities(probs)
    y = np.asarray(targets, np.int64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    if len(p) == 0:
        zeros = np.zeros(bins)
        return Reliability(edges, np.zeros(bins, np.int64), zeros, zeros.copy())
    confidence = p.max(axis=1)
    right = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)  # (lo, hi] bins
    counts = np.bincount(index, minlength=bins)
    safe = np.maximum(counts, 1)
    mean_conf = np.where(counts > 0, np.bincount(index, confidence, bins) / safe, 0.0)
    accuracy = np.where(counts > 0, np.bincount(index, right, bins) / safe, 0.0)
    return Reliability(edges, counts, mean_conf, accuracy)


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = BINS) -> float:
    """Top-1 ECE over ``bins`` equal-width bins (see the module docstring); NaN without samples."""
    return reliability(probs, targets, bins).ece


def negative_log_likelihood(log_probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean of -ln p_y, from log-probabilities (N, C); NaN without samples."""
    lp = np.asarray(log_probs, np.float64)
    y = np.asarray(targets, np.int64)
    return float(-lp[np.arange(len(y)), y].mean()) if len(y) else float("nan")


def brier_score(probs: np.ndarray, targets: np.ndarray) -> float:
    """Multi-class Brier score: mean over samples of sum over classes of (p_c - [c = y])^2; NaN without samples."""
    p = _probabilities(probs)
    y = np.asarray(targets, np.int64)
    if not len(y):
        return float("nan")
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def calibration_scores(log_probs: np.ndarray, targets: np.ndarray, bins: int = BINS) -> dict:
    """ECE, NLL and Brier score of log-probabilities (N, C) (rows that are each a distribution).

    Returns:
        ``{"ece", "nll", "brier", "bins", "reliability"}`` in plain types.
    """
    lp = np.asarray(log_probs, np.float64)
    probs = np.exp(lp)
    rel = reliability(probs, targets, bins)
    return {
        "ece": rel.ece,
        "nll": negative_log_likelihood(lp, targets),
        "brier": brier_score(probs, targets),
        "bins": bins,
        "reliability": rel.to_dict(),
    }


def _nll_slope(z: np.ndarray, y: np.ndarray, beta: float) -> float:
    """d NLL / d beta of softmax(beta z): mean over samples of E_p[z] - z_y (non-decreasing in beta)."""
    s = beta * z
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    p = e / e.sum(axis=1, keepdims=True)
    return float(((p * z).sum(axis=1) - z[np.arange(len(y)), y]).mean())


def fit_temperature(
    logits: np.ndarray, targets: np.ndarray, bounds: tuple[float, float] = T_BOUNDS, steps: int = 100
) -> float:
    """The temperature T that minimises the NLL of softmax(logits / T) on ``(logits, targets)``.

    With beta = 1 / T the NLL is convex (a log-sum-exp of linear functions minus a linear one), so
    its derivative is non-decreasing in beta and a bisection on its sign (in log beta, ``steps``
    halvings) finds the minimum; the result is deterministic. A minimum beyond ``bounds`` gives the
    bound (a split the model gets all right pushes T towards 0).

    Args:
        logits: Raw logits (N, C), before any temperature.
        targets: True class indices (N,).
        bounds: Smallest and largest T searched.
        steps: Bisection steps.

    Returns:
        T (1.0 for an empty split).

    Raises:
        ValueError: Logits that are not (N, C) or not finite, or targets that do not fit them.
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(targets, np.int64)
    if z.ndim != 2 or len(z) != len(y):
        raise ValueError(f"expected logits (N, C) and targets (N,), got {z.shape} and {y.shape}")
    if not len(y):
        return 1.0
    if not np.isfinite(z).all():
        raise ValueError("the logits hold NaN or infinite values")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"targets outside 0..{z.shape[1] - 1}")
    lo, hi = np.log(1.0 / bounds[1]), np.log(1.0 / bounds[0])  # log beta
    if _nll_slope(z, y, np.exp(lo)) >= 0:  # the NLL rises from the smallest beta on: largest T
        return float(bounds[1])
    if _nll_slope(z, y, np.exp(hi)) <= 0:  # still falling at the largest beta: smallest T
        return float(bounds[0])
    for _ in range(steps):
        mid = (lo + hi) / 2
        if _nll_slope(z, y, np.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(np.exp(-(lo + hi) / 2))

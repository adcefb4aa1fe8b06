"""Scoring a model on a labelled data set: accuracy, balanced accuracy, per-class scores, calibration.

Any backend runs the model (a PyTorch checkpoint, an ONNX file, a ``.pt2`` program), fed by the data
set's evaluation transform, which is :func:`dan.preprocess.prepare_face` with the model's own
preprocessing record. Probabilities are softmax(logits / T) with the model file's calibrated
temperature T (:meth:`dan.runtime.backend.Backend.probabilities`; T = 1 for a model never calibrated).

Model classes are matched to the data set's classes by canonical name (:func:`dan.vocab.match_classes`, the
matcher ``init_from`` uses too: ``Happy``, ``happy`` and ``happiness`` are one class), so a model trained
with one label order (say RAF-DB's) is scored correctly on a data set with another (say FER2013's),
and a model scored on a data set with another label set is scored on the classes both have:

- the data set's images of a class the model lacks (CK+'s ``contempt`` for the RAF-DB model) are
  left out (the model cannot predict it) and counted in the report;
- a prediction of a class the data set lacks (AffectNet-8's ``contempt`` on 7-class data) counts as
  wrong, as before;
- the calibration scores (ECE, NLL, Brier: :mod:`dan.evaluation.calibration`) use the probabilities
  renormalised over the shared classes (the model's other classes dropped, the rest divided by their
  sum, which is the softmax of the shared logits over T), so their top-1 is the most probable shared
  class.

Accuracy and the per-class scores come from :class:`dan.evaluation.metrics.ClassificationMetrics`,
the same definitions training logs. A model with the valence/arousal output scored on a data set that
has them (AffectNet, ``dan synth``'s faces) is also scored on them: CCC and RMSE of valence and arousal
over the images whose targets are known (:mod:`dan.evaluation.va_metrics`, as training logs them).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from dan.errors import DanError
from dan.evaluation.calibration import calibration_scores, log_softmax
from dan.evaluation.metrics import ClassificationMetrics
from dan.evaluation.va_metrics import va_scores, va_summary
from dan.vocab import ClassMatch, match_classes

if TYPE_CHECKING:
    from dan.data.dataset import FERDataset
    from dan.runtime.backend import Backend

__all__ = ["EvaluationResult", "collect_logits", "evaluate_backend", "prefetched"]

T = TypeVar("T")

CALIBRATION_DEFINITIONS = {
    "ece": "top-1 expected calibration error, 15 equal-width confidence bins (lo, hi], count-weighted |acc - conf|",
    "nll": "mean over samples of -ln p(true class), natural log",
    "brier": "mean over samples of the sum over classes of (p_c - [c = true])^2 (multi-class, in [0, 2])",
    "probabilities": "softmax(logits / T) with the model's calibrated temperature T (1 when not calibrated)",
}


@dataclass
class EvaluationResult:
    """Scores of one evaluation.

    Attributes:
        label_names: The data set's classes that were scored (rows/columns of ``confusion``): all of
            them, or those the model has too.
        model_labels: The model's class names (columns of ``probabilities``).
        targets: True class index (into ``label_names``) of every scored sample, shape (N,).
        predictions: Predicted class index (into ``label_names``) of every sample, -1 for a class the
            data set lacks.
        probabilities: softmax(logits / T) over the model's classes, shape (N, C_model) (with TTA, the
            mean of the image's and its mirror's).
        sources: Path (or ``FILE:LINE``) of every sample.
        logits: The raw logits (N, C_model), or None (with TTA, or when not kept).
        temperature: T the probabilities were computed with.
        left_out: Images left out per data set class the model lacks (``{"contempt": 18}``).
        data_labels: All of the data set's classes (default ``label_names``).
        va: The model's (valence, arousal) of every scored sample, (N, 2), for a model with the output
            (with TTA, the mean of the image's and its mirror's); else None.
        va_targets: The data set's (valence, arousal) of every scored sample, (N, 2), NaN where unknown;
            None when the data set has none.
    """

    label_names: tuple[str, ...]
    model_labels: tuple[str, ...]
    targets: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    sources: list[str] = field(default_factory=list)
    logits: np.ndarray | None = None
    temperature: float = 1.0
    left_out: dict[str, int] = field(default_factory=dict)
    data_labels: tuple[str, ...] | None = None
    va: np.ndarray | None = None
    va_targets: np.ndarray | None = None

    @cached_property
    def va_scores(self) -> dict[str, float | int] | None:
        """CCC and RMSE of valence and arousal (:func:`dan.evaluation.va_metrics.va_scores`) when the model
        has the output and the data set knows at least one target; else None."""
        if self.va is None or self.va_targets is None or not np.isfinite(self.va_targets).any():
            return None
        return va_scores(self.va, self.va_targets)

    @cached_property
    def scores(self) -> dict[str, np.ndarray]:
        """Every score, computed once by :class:`ClassificationMetrics`."""
        metrics = ClassificationMetrics(len(self.label_names))
        if len(self.targets):
            metrics.update(torch.as_tensor(self.predictions), torch.as_tensor(self.targets))
        return {k: v.numpy() for k, v in metrics.compute().items()}

    @property
    def confusion(self) -> np.ndarray:
        """(C, C) counts, rows true class, columns predicted class (predictions outside the set are left out)."""
        return self.scores["confusion"]

    @property
    def support(self) -> np.ndarray:
        """Number of samples of each true class."""
        return self.scores["support"]

    @property
    def accuracy(self) -> float:
        """Correct predictions over all samples."""
        return float(self.scores["acc"])

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the targets (scikit-learn's definition)."""
        return float(self.scores["bacc"])

    @property
    def recall(self) -> np.ndarray:
        """Per-class recall (C,)."""
        return self.scores["recall"]

    @property
    def precision(self) -> np.ndarray:
        """Per-class precision (C,)."""
        return self.scores["precision"]

    @property
    def f1(self) -> np.ndarray:
        """Per-class F1 (C,)."""
        return self.scores["f1"]

    @property
    def match(self) -> ClassMatch:
        """The model's classes against the data set's."""
        return match_classes(self.model_labels, self.data_labels or self.label_names)

    @property
    def renormalised(self) -> bool:
        """Whether the calibration scores use probabilities renormalised over the shared classes."""
        match = match_classes(self.model_labels, self.label_names)
        return bool(match.source_only or match.target_only)

    def shared_log_probabilities(self) -> np.ndarray | None:
        """Log-probabilities over ``label_names`` (N, C), renormalised over them; None when the model lacks one.

        From the logits (log-softmax of the shared logits over T) when they are known, else from
        ``probabilities``.
        """
        match = match_classes(self.model_labels, self.label_names)
        if match.target_only:
            return None
        columns = np.array(match.source_columns, np.int64)  # the model output of each scored class
        if self.logits is not None and len(self.logits) == len(self.targets):
            return log_softmax(np.asarray(self.logits)[:, columns], self.temperature)  # (N, C_shared)
        p = np.asarray(self.probabilities, np.float64).reshape(len(self.targets), -1)[:, columns]  # (N, C_shared)
        total = p.sum(axis=1, keepdims=True)
        uniform = np.full_like(p, 1.0 / max(1, p.shape[1]))
        p = np.divide(p, total, out=uniform, where=total > 0)
        return np.log(np.maximum(p, np.finfo(np.float64).tiny))

    @cached_property
    def calibration(self) -> dict | None:
        """ECE, NLL, Brier score and the reliability bins (:func:`calibration_scores`), or None."""
        lp = self.shared_log_probabilities()
        if lp is None:
            return None
        scores = calibration_scores(lp, self.targets)
        return {"temperature": float(self.temperature), "renormalised": self.renormalised, **scores}

    def left_out_lines(self) -> list[str]:
        """What was left out on each side, one line per class (empty when the label sets agree)."""
        lines = [f"{name}: 0 predictions possible, {n} images left out" for name, n in self.left_out.items()]
        argmax = np.asarray(self.probabilities).argmax(axis=1) if len(self.targets) else np.zeros(0, np.int64)
        for name in self.match.source_only:
            n = int((argmax == self.model_labels.index(name)).sum())
            lines.append(f"{name} (model only): predicted for {n} images, each counted wrong")
        return lines

    def summary(self) -> dict:
        """Plain-type dict of every score (what ``metrics.json`` holds)."""
        per_class = {
            name: {
                "precision": float(self.precision[i]),
                "recall": float(self.recall[i]),
                "f1": float(self.f1[i]),
                "support": int(self.support[i]),
            }
            for i, name in enumerate(self.label_names)
        }
        match = self.match
        argmax = np.asarray(self.probabilities).argmax(axis=1) if len(self.targets) else np.zeros(0, np.int64)
        out = {
            "samples": int(len(self.targets)),
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "predicted_outside_label_set": int((self.predictions < 0).sum()),
            "per_class": per_class,
            "confusion": self.confusion.tolist(),
            "labels": list(self.label_names),
        }
        if match.target_only or match.source_only:
            out["classes"] = {
                "scored": list(self.label_names),
                "data_only": {name: {"images_left_out": int(self.left_out.get(name, 0))} for name in match.target_only},
                "model_only": {
                    name: {"predictions": int((argmax == self.model_labels.index(name)).sum())}
                    for name in match.source_only
                },
            }
        if self.calibration is not None:
            out["calibration"] = {**self.calibration, "definitions": dict(CALIBRATION_DEFINITIONS)}
        if self.va_scores is not None:
            out["valence_arousal"] = va_summary(self.va_scores)
        return out


def collect_logits(
    backend: Backend, dataset, batch_size: int = 64, num_workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The raw logits (N, C_model) and labels (N,) of every sample of ``dataset``, in order.

    Args:
        backend: Anything with the backend interface (:mod:`dan.runtime.backend`).
        dataset: Yields ``(image (3, S, S), label)`` prepared with the backend's preprocessing.
        batch_size: Images per model call.
        num_workers: DataLoader worker processes.
    """
    logits, labels, _ = _run(backend, dataset, batch_size, num_workers, tta=False)
    return logits, labels


def _infer(backend: Backend, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (B, C) and, for a model with the output, valence/arousal (B, 2) of one batch, from one run."""
    out = backend.outputs(batch)
    return np.asarray(out.logits, np.float32), None if out.va is None else np.asarray(out.va, np.float32)


def _run(
    backend: Backend, dataset, batch_size: int, num_workers: int, tta: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Logits (N, C) (with ``tta``: probabilities, the mean of each image's and its mirror's), labels (N,) and,
    for a model with the output, valence/arousal (N, 2) (with ``tta``, the mean of the two), else None."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    batches: Iterable = loader if num_workers > 0 else prefetched(loader)  # worker processes already load ahead
    outs, labels, vas = [], [], []
    try:
        for x, y in batches:
            batch = x.numpy()  # (B, 3, S, S)
            z, va = _infer(backend, batch)  # (B, C), (B, 2) or None
            if tta:
                mirrored, va_m = _infer(backend, np.ascontiguousarray(batch[..., ::-1]))  # (B, C), (B, 2) or None
                z = (backend.probabilities(z) + backend.probabilities(mirrored)) / 2
                va = None if va is None or va_m is None else (va + va_m) / 2
            outs.append(z)
            labels.append(y.numpy())
            if va is not None:
                vas.append(va)
    finally:  # a model error: the loading thread stops now, not when the generator is collected
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    n = len(backend.labels)
    va_out = None
    if backend.has_va:
        va_out = np.concatenate(vas) if vas else np.zeros((0, 2), np.float32)
    return (
        np.concatenate(outs) if outs else np.zeros((0, n), np.float32),
        np.concatenate(labels) if labels else np.zeros(0, np.int64),
        va_out,
    )


def evaluate_backend(
    backend: Backend,
    dataset: FERDataset,
    batch_size: int = 64,
    num_workers: int = 0,
    tta: bool = False,
) -> EvaluationResult:
    """Run a backend over ``dataset`` and score it on the classes both have (see the module docstring).

    Args:
        backend: Anything with the backend interface (:mod:`dan.runtime.backend`): ``labels`` and
            ``__call__(x (N, 3, S, S) float32) -> logits (N, C)``; its ``metadata.temperature``, if
            any, turns logits into probabilities.
        dataset: A :class:`dan.data.dataset.FERDataset`: yields ``(image (3, S, S), label)`` prepared with
            the backend's preprocessing; has ``label_names`` and ``samples`` (and ``data``, whose ``va``
            holds the valence/arousal targets where the data set has them).
        batch_size: Images per model call.
        num_workers: DataLoader worker processes (decoding and resizing in parallel, ahead of the
            model). 0: one background thread loads the next batches while the model runs
            (:func:`prefetched`), so loading and the model still overlap.
        tta: Average the softmax of each image and its horizontal mirror.

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        DanError: The model and the data set share no class.
    """
    data_labels = tuple(dataset.label_names)
    model_labels = tuple(backend.labels)
    match = match_classes(model_labels, data_labels)
    if not match.pairs:
        raise DanError(
            f"the model's classes ({', '.join(model_labels)}) share none with the data set's "
            f"({', '.join(data_labels)}): pass --labels to name the model's classes"
        )
    samples = [(str(s), int(label)) for s, label in getattr(dataset, "samples", [])]
    labels = np.array([label for _, label in samples], np.int64)
    scored = np.array(match.positions("target"), np.int64)  # (C_data,): index among the scored, or -1
    keep = np.flatnonzero(scored[labels] >= 0) if len(labels) else np.zeros(0, np.int64)
    left_out = {name: int((labels == data_labels.index(name)).sum()) for name in match.target_only}
    subset = dataset if len(keep) == len(samples) else Subset(dataset, keep.tolist())
    out, y, va = _run(backend, subset, batch_size, num_workers, tta)
    data = getattr(dataset, "data", None)  # the SplitData: its valence/arousal targets, if any
    targets = getattr(data, "va", None)
    va_targets = targets[keep] if targets is not None and va is not None and len(keep) else None  # (N, 2)
    t = backend.temperature
    probs = out if tta else backend.probabilities(out)
    target = scored[y] if len(y) else np.zeros(0, np.int64)
    predictions = np.array(match.positions("source"), np.int64)[probs.argmax(1)] if len(y) else np.zeros(0, np.int64)
    sources = [samples[i][0] for i in keep] if samples else [str(i) for i in range(len(y))]
    return EvaluationResult(
        match.shared,
        model_labels,
        target,
        predictions,
        probs,
        sources,
        logits=None if tta else out,
        temperature=t,
        left_out=left_out,
        data_labels=data_labels,
        va=va,
        va_targets=va_targets,
    )


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items`` in order, produced by a background thread at most ``depth`` ahead of the consumer.

    Loading (decoding, resizing: OpenCV, PIL and torch release the GIL) overlaps with the consumer's
    work (the model); memory is bounded by ``depth`` items. An error while producing is raised in the
    consumer at that item; when the consumer stops early, the thread stops after its current item.
    """
    done = object()
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put((None, err))
            return
        put((done, None))

    thread = threading.Thread(target=produce, name="dan-eval-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = ready.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()

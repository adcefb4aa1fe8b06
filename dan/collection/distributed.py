"""The same rows from a Ray cluster: Ray Data schedules the inputs, an actor pool scores them.

:func:`run_on_ray` turns the unfinished inputs into a Ray dataset (one row per video or image) and
maps it, one input per call, over a pool of ``workers`` actors (:class:`VideoScorer`). Each actor
loads the model once and scores whole inputs exactly as the single-process run does
(:class:`dan.collection.run._Collection`: the live step with its tracks and smoothing, its own
detector, read-ahead decoding), writing each input's part atomically under its deterministic name in
the shared output folder (:mod:`dan.collection.store`). A video is never split across workers: its
tracks and smoothing need its frames in order, and a collection has many videos to spread.

Fault tolerance is Ray's: a dead actor is restarted and its unfinished call retried
(``max_restarts``, ``max_task_retries``); the retry rewrites the same part from the start under the
same name, and the dead actor's temporary file never becomes a part, so every row is still written
once. A rerun of the same call skips finished parts as the single-process run does. The driver
merges the parts into a one-file output at the end.

Actors ask for ``model_cpus`` CPUs each (default 0.5): on a 2-core machine, two actors asking one CPU
each leave nothing to Ray Data's read tasks, and the pipeline stalls. ``ray`` is an optional extra
(``pip install 'dan-fer[scale]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dan.collection.frames import Sampling
from dan.collection.run import CollectionStats, _Collection
from dan.collection.store import MANIFEST, SKIPPED, PartStore
from dan.errors import DanError
from dan.fileio import remove_stale_temps_in
from dan.inference.predictor import Predictor

__all__ = ["VideoScorer", "run_on_ray"]


class VideoScorer:
    """A Ray Data actor: the model loaded once, whole inputs scored into their parts.

    Args:
        checkpoint: The model file (every node must reach it at this path).
        output: The output (a folder, or a one-file output whose hidden parts folder the actors fill).
        fmt: The parts' format.
        sampling: Which frames are analysed.
        smoothing: Weight of the past in each track's average.
        predictor_options: :class:`~dan.inference.predictor.Predictor` keyword arguments (``backend``,
            ``detector``, ``threads``...).
    """

    def __init__(
        self,
        checkpoint: str,
        output: str,
        fmt: str,
        sampling: Sampling,
        smoothing: float,
        predictor_options: dict[str, Any],
    ) -> None:
        predictor = Predictor(checkpoint, **predictor_options)
        self.collection = _Collection(predictor, PartStore(output, fmt, fresh=False), sampling, smoothing, 32)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Score the inputs of ``batch["path"]``; returns each one's path and whether its part is in place."""
        paths = [str(p) for p in batch["path"]]
        for path in paths:
            if not self.collection.store.done(path):  # a retried call whose part was committed already
                self.collection.score(Path(path))
        return {"path": np.array(paths), "done": np.array([self.collection.store.done(p) for p in paths])}


def run_on_ray(
    checkpoint: str | os.PathLike,
    paths: list[Path],
    output: str | os.PathLike,
    fmt: str = "parquet",
    sampling: Sampling | None = None,
    smoothing: float = 0.6,
    workers: int = 2,
    model_cpus: float = 0.5,
    address: str | None = None,
    **predictor_options: Any,
) -> CollectionStats:
    """Score ``paths`` on a Ray cluster into ``output`` (see the module docstring).

    Args:
        checkpoint: The model file, at a path every node reaches.
        paths: Inputs (videos and images), at paths every node reaches.
        output: A folder of parts or a one-file output, on storage every node shares.
        fmt: The parts' format for a folder output.
        sampling: Which frames are analysed (default: all).
        smoothing: Weight of the past in each track's average.
        workers: Actors scoring at once.
        model_cpus: CPUs each actor asks Ray for.
        address: The cluster to join (None: the one already initialised, else a local one).
        **predictor_options: Further :class:`~dan.inference.predictor.Predictor` arguments.

    Returns:
        The run's :class:`~dan.collection.run.CollectionStats` (frames and rows from the parts' manifest).

    Raises:
        DanError: Ray is not installed, or the output cannot be written.
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise DanError("a Ray run needs ray: pip install 'dan-fer[scale]'") from None
    store = PartStore(output, fmt)
    todo = [p for p in paths if not store.done(p)]
    stats = CollectionStats(inputs=len(paths), already=len(paths) - len(todo))
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        options = {"threads": 1, **predictor_options}
        scorer_args = (str(checkpoint), str(output), store.format, sampling or Sampling(), smoothing, options)
        results = (
            ray.data.from_items([{"path": str(p)} for p in todo])
            .map_batches(
                VideoScorer,
                batch_size=1,
                concurrency=workers,
                num_cpus=model_cpus,
                fn_constructor_args=scorer_args,
                max_restarts=-1,
                max_task_retries=-1,
            )
            .take_all()
        )
        stats.finished = sum(bool(r["done"]) for r in results)
        scored = {str(p) for p in todo}
        for record in store.records(MANIFEST):  # a retried input may have two lines: its last counts
            if record["input"] in scored:
                scored.discard(record["input"])
                stats.frames += record["frames"]
                stats.rows += record["rows"]
    remove_stale_temps_in(store.folder)  # temporary parts of killed actors (their inputs were retried)
    stats.skipped = [(r["input"], r["reason"]) for r in store.records(SKIPPED)]
    written = store.publish(paths)
    stats.output = store.output if (written is not None or not store.single) else None
    return stats

"""The reader options on the command line: one flag per :class:`dan.data.options.ReadOptions` field that
decides which samples a split holds (the same flags for ``dan evaluate``, ``dan calibrate`` and
``dan data check``), and the model's own record of them (:class:`dan.data.provenance.TrainedOn`) as the
defaults of the commands that score or fit a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dan.cli.options import Number
from dan.data.options import ReadOptions
from dan.errors import DanError
from dan.vocab import RAFDB_IMAGES

if TYPE_CHECKING:
    from dan.data.formats import DataFormat
    from dan.data.provenance import TrainedOn
    from dan.runtime.backend import Backend

__all__ = ["add_read_options", "read_options", "recorded_training"]

_FLAGS = ("num_classes", "rafdb_images", "fold", "folds", "split_seed", "peak_frames", "first_frame_neutral")


def add_read_options(p: argparse.ArgumentParser, recorded: bool) -> None:
    """Add ``--num-classes``, ``--rafdb-images``, ``--fold``, ``--folds``, ``--split-seed``, ``--peak-frames``
    and ``--first-frame-neutral`` to ``p``, each None unless given.

    Args:
        p: The parser.
        recorded: Whether an unset flag takes the model's recorded value (evaluate, calibrate) before the default.
    """
    was = "the model's training value, else " if recorded else ""
    classes = "the model's class count" if recorded else "8"
    p.add_argument(
        "--num-classes",
        type=Number("--num-classes", int, minimum=7, maximum=8),
        help=f"AffectNet: 7 or 8 (default: {was}{classes})",
    )
    p.add_argument("--rafdb-images", choices=RAFDB_IMAGES, help=f"RAF-DB image variant (default: {was}aligned)")
    p.add_argument(
        "--fold",
        type=Number("--fold", int, minimum=0),
        help=f"CK+: the test fold; the next one validates (default: {was}0)",
    )
    p.add_argument(
        "--folds",
        type=Number("--folds", int, minimum=2),
        help=f"CK+: how many subject-independent folds (default: {was}10)",
    )
    p.add_argument(
        "--split-seed",
        type=Number("--split-seed", int, minimum=0),
        help=f"CK+ folds, ExpW's split: seed of the assignment (default: {was}0)",
    )
    p.add_argument(
        "--peak-frames",
        type=Number("--peak-frames", int, minimum=1),
        help=f"CK+: last frames of each sequence taken (default: {was}3)",
    )
    p.add_argument(
        "--first-frame-neutral",
        action=argparse.BooleanOptionalAction,
        help=f"CK+: each sequence's first frame as neutral, 8 classes (default: {was}off)",
    )


def read_options(args: argparse.Namespace, base: ReadOptions | None = None, strict: bool = True) -> ReadOptions:
    """``base`` (default: the defaults) with the flags of :func:`add_read_options` that were given applied.

    Raises:
        DanError: A value out of range, named by its flag (``--fold 12: choose 0..9 (folds=10)``).
    """
    given = vars(args)
    try:
        return (base or ReadOptions()).overridden(strict=strict, **{k: given[k] for k in _FLAGS})
    except DanError as err:
        key, _, rest = str(err).partition("=")
        raise DanError(f"--{key.replace('_', '-')} {rest}") from None


def _datamodule_hparams(checkpoint: str) -> dict:
    """The data settings a Lightning checkpoint recorded (``datamodule_hyper_parameters``); empty for other files."""
    path = Path(checkpoint)
    if path.suffix.lower() != ".ckpt" or not path.is_file():
        return {}
    from dan.models.backbone import read_state_dict

    obj = read_state_dict(path)
    hp = obj.get("datamodule_hyper_parameters") if isinstance(obj, dict) else None
    return dict(hp) if isinstance(hp, dict) else {}


def recorded_training(checkpoint: str, backend: Backend, fmt: DataFormat) -> TrainedOn | None:
    """What the model at ``checkpoint`` records of its training on a data set of format ``fmt``; None for
    a model trained on another format or recording nothing (a reference or released file).

    The record is the ``trained_on`` entry of the backend's model record (``backend.trained_on``, from the
    ``metadata`` every runtime keeps, :class:`dan.runtime.backend.Backend`); an older one without reader
    options falls back to a Lightning checkpoint's data settings, and an older file without either says
    so (its reader options are then the defaults, unless flags say otherwise).

    Raises:
        DanError: A damaged record (a value of the wrong type), named by its key.
    """
    from dan.data.provenance import TrainedOn

    where = f"{checkpoint}: "
    record = TrainedOn.from_dict(backend.trained_on, where)
    if record is None or record.options is None:
        hp = _datamodule_hparams(checkpoint)
        if hp.get("format") == fmt.name:
            record = TrainedOn.from_hparams(hp, where)
    if record is None or record.format != fmt.name:
        return None
    if record.options is None:
        print(
            f"note: {checkpoint} does not record how its training read the {fmt.title} data set (an older file): "
            "reading it with the default options unless flags say otherwise (--fold, --folds, --split-seed, ...)"
        )
    return record

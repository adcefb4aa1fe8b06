"""Command-line options that ``dan predict``, ``dan demo`` and ``dan serve`` share: the model, the device and
the face detector (``--device`` is also ``dan evaluate``'s and ``dan export``'s: :func:`add_device_option`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from dan.vocab import BACKENDS, DETECTORS, FORMAT_NAMES, LABEL_SETS, parse_device, parse_labels

if TYPE_CHECKING:
    from dan.runtime.backend import Backend

__all__ = ["add_device_option", "add_model_and_detector_options", "device_arg", "predictor_from_args", "say_device"]


def device_arg(text: str) -> str:
    """``--device``'s type: :func:`dan.vocab.parse_device`, its error as argparse's usage message."""
    try:
        return parse_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_device_option(p: argparse.ArgumentParser, what: str = "the model") -> None:
    """Add ``--device auto|cpu|cuda[:N]`` (default auto) to ``p``; ``what`` says what runs there."""
    p.add_argument(
        "--device",
        type=device_arg,
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N}",
        help=f"where {what} runs (default auto: a CUDA GPU when there is one, else the CPU; ONNX files on a GPU "
        "need onnxruntime-gpu: pip install 'dan-fer[gpu]')",
    )


def say_device(backend: Backend) -> None:
    """Print the backend's one line on where it runs and why (``device: auto -> cpu: no CUDA GPU ...``), and
    under ``--backend auto`` one on what ran the race and why (``backend: auto -> ONNX Runtime float32 (...)``)."""
    print(f"device: {backend.device_reason}", file=sys.stderr)
    if backend.auto_reason:
        print(f"backend: auto -> {backend.auto_reason}", file=sys.stderr)


def add_model_and_data_options(p: argparse.ArgumentParser) -> None:
    """Add ``--checkpoint``, ``--format`` and ``--root``: a model scored on (or fitted to) a data set on disk."""
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a model file (.ckpt/.pt/.safetensors, reference .pth, .onnx, .pt2), a released model name "
        "(rafdb, affectnet7, affectnet8), an https:// URL or an hf:// path",
    )
    p.add_argument("--format", required=True, choices=FORMAT_NAMES, help="data set layout")
    p.add_argument("--root", required=True, help="data set root folder")


def add_model_and_detector_options(p: argparse.ArgumentParser, whole: str, detect_size: int) -> None:
    """Add ``--checkpoint``, ``--labels``, ``--detector``, ``--yunet-model``, ``--backend``, ``--device``,
    ``--int8``, ``--align``, ``--margin`` and ``--detect-size`` to ``p``.

    Args:
        p: The parser.
        whole: What ``--detector none`` takes as the face, for the help text ("image", "frame").
        detect_size: Default of ``--detect-size``.
    """
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a released model (rafdb, affectnet7, affectnet8: downloaded once, then cached), a model file "
        "(.pt/.ckpt/.pth/.safetensors, .onnx, .pt2), an https:// URL or an hf://owner/repo/file path",
    )
    p.add_argument(
        "--labels",
        type=parse_labels,
        help=f"label set ({', '.join(LABEL_SETS)}) or comma-separated class names; overrides the checkpoint's names",
    )
    p.add_argument(
        "--detector",
        default="yunet",
        choices=DETECTORS,
        help=f"face detector (default yunet, shipped with dan; none: the whole {whole} is one face, for aligned crops)",
    )
    p.add_argument("--yunet-model", help="another YuNet ONNX file (default: the one shipped with dan)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="model runtime (auto: the fastest runtime here that agrees with torch, checked and timed once per "
        "machine and model, then cached; an export file runs with its own runtime)",
    )
    p.add_argument(
        "--int8",
        metavar="ONNX",
        help="with --backend auto: an int8 export of the checkpoint to race too, kept when its top-1 "
        "matches torch's on 99%% of probe faces (default: the copy dan export --int8 keeps)",
    )
    add_device_option(p)
    p.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="align each face by its five landmarks when the model was trained on aligned faces (default: on)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="fraction of the face box added on each side of a box crop (default: the model's own setting)",
    )
    p.add_argument(
        "--detect-size", type=int, default=detect_size, help=f"longest side detection runs at (default {detect_size})"
    )


def predictor_from_args(args: argparse.Namespace, **options):
    """The :class:`dan.inference.predictor.Predictor` that the options added above describe.

    ``--backend auto`` (the default) is :func:`dan.auto.open_backend`'s race, as for every command and the
    Python ``Predictor``: with a PyTorch checkpoint on the CPU, the fastest of PyTorch, ONNX Runtime and
    OpenVINO here that agrees with torch (a one-time export and timed probe, both cached).

    Args:
        args: Parsed arguments (with ``threads`` too). Prints where the model runs and why, and what
            ``auto`` picked (one line each).
        **options: Further ``Predictor`` keyword arguments (e.g. ``detector_options``).
    """
    from dan.inference.predictor import Predictor

    predictor = Predictor(
        args.checkpoint,
        detector=args.detector,
        margin=args.margin,
        labels=args.labels,
        backend=args.backend,
        yunet_model=args.yunet_model,
        detect_size=args.detect_size,
        threads=args.threads,
        align=args.align,
        device=args.device,
        int8=args.int8,
        **options,
    )
    backend = predictor.backend
    say_device(backend)
    trained_on = backend.trained_on
    if isinstance(trained_on, dict) and trained_on.get("synthetic"):
        print(
            f"note: {args.checkpoint} was trained on generated faces (dan synth) and is not meant for photographs; "
            "for real faces use a released model: --checkpoint rafdb",
            file=sys.stderr,
        )
    return predictor

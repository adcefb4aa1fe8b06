"""Command-line options that ``dan predict`` and ``dan demo`` share: the model and the face detector."""

from __future__ import annotations

import argparse
import sys

from dan.common import LABEL_SETS, parse_labels

__all__ = ["add_model_and_detector_options", "predictor_from_args"]


def add_model_and_detector_options(p: argparse.ArgumentParser, whole: str, detect_size: int) -> None:
    """Add ``--checkpoint``, ``--labels``, ``--detector``, ``--yunet-model``, ``--backend``, ``--align``,
    ``--margin`` and ``--detect-size`` to ``p``.

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
        choices=("yunet", "haar", "none"),
        help=f"face detector (default yunet, shipped with dan; none: the whole {whole} is one face, for aligned crops)",
    )
    p.add_argument("--yunet-model", help="another YuNet ONNX file (default: the one shipped with dan)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx", "openvino"),
        help="model runtime (auto: by the file; for demo and serve, the faster of torch and ONNX Runtime here)",
    )
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

    Args:
        args: Parsed arguments (with ``threads`` too).
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
        **options,
    )
    reason = getattr(predictor.backend, "auto_reason", None)
    if reason:
        print(f"backend: auto -> {reason}", file=sys.stderr)
    warning = getattr(predictor.backend, "warning", None)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    trained_on = getattr(predictor.backend, "trained_on", None)
    if isinstance(trained_on, dict) and trained_on.get("synthetic"):
        print(
            f"note: {args.checkpoint} was trained on generated faces (dan synth) and is not meant for photographs; "
            "for real faces use a released model: --checkpoint rafdb",
            file=sys.stderr,
        )
    return predictor

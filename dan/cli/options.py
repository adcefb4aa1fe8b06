"""Command-line options that ``dan predict`` and ``dan demo`` share: the model and the face detector."""

from __future__ import annotations

import argparse

from dan.common import LABEL_SETS

__all__ = ["add_model_and_detector_options", "predictor_from_args"]


def add_model_and_detector_options(p: argparse.ArgumentParser, whole: str, detect_size: int) -> None:
    """Add ``--checkpoint``, ``--labels``, ``--detector``, ``--yunet-model``, ``--backend``, ``--margin``
    and ``--detect-size`` to ``p``.

    Args:
        p: The parser.
        whole: What ``--detector none`` takes as the face, for the help text ("image", "frame").
        detect_size: Default of ``--detect-size``.
    """
    p.add_argument("--checkpoint", required=True, help="model file (.pt/.ckpt/.pth/.safetensors, or .onnx)")
    p.add_argument("--labels", help=f"label set ({', '.join(LABEL_SETS)}); overrides the checkpoint's names")
    p.add_argument(
        "--detector",
        default="haar",
        choices=("haar", "yunet", "none"),
        help=f"face detector (none: the whole {whole} is one face, for aligned crops)",
    )
    p.add_argument("--yunet-model", help="face_detection_yunet_2023mar.onnx for --detector yunet")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"), help="model runtime")
    p.add_argument(
        "--margin", type=float, default=0.2, help="fraction of the face box added on each side (default 0.2)"
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

    return Predictor(
        args.checkpoint,
        detector=args.detector,
        margin=args.margin,
        labels=args.labels,
        backend=args.backend,
        yunet_model=args.yunet_model,
        detect_size=args.detect_size,
        threads=args.threads,
        **options,
    )

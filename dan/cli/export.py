"""``dan export``: a checkpoint as ONNX (float32 or int8) or a ``torch.export`` program (.pt2), optionally verified.

Exit status: 0 done; 1 bad input, or a failed ``--verify``, after which the export is kept only as
``NAME.failed-verify.SUFFIX`` (never under the name asked for, where it could be mistaken for a good one).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dan.common import LABEL_SETS, parse_labels

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dan export",
        description="Export a DAN checkpoint (re-parameterised: BatchNorms folded, head branches merged) to ONNX "
        "or a torch.export program (.pt2), with a dynamic batch axis and the label names and preprocessing in "
        "the file's metadata. Every dan command that takes a checkpoint reads both.",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint (.ckpt/.pt/.safetensors, a reference .pth), or a released model name (rafdb, affectnet7, "
        "affectnet8), an https:// URL or an hf:// path",
    )
    p.add_argument(
        "--format",
        choices=("onnx", "pt2"),
        default=None,
        help="output format: onnx, or pt2 (torch.export; replaces TorchScript); default from the --output suffix",
    )
    p.add_argument("--output", required=True, help="file to write (written to a temporary name, then renamed)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the export next to PyTorch on random inputs and on the --calib images; "
        "exit 1 when the largest logit difference exceeds --tolerance",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="write an int8 ONNX model: static QDQ per-channel quantisation calibrated on --calib "
        "(dynamic quantisation without --calib); reports top-1 agreement with float32",
    )
    p.add_argument("--calib", metavar="DIR", help="folder of face images: int8 calibration and verification inputs")
    p.add_argument(
        "--labels",
        type=parse_labels,
        help=f"label set ({', '.join(LABEL_SETS)}) or comma-separated class names",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset version (default 18)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted logit difference (default 1e-3)")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.99,
        help="smallest accepted int8 top-1 agreement with float32 under --verify (default 0.99)",
    )
    return p


def main(argv: list[str]) -> int:
    """Run ``dan export`` with ``argv`` (without the subcommand name); returns the exit status."""
    args = _parser().parse_args(argv)
    from dan.common import DanError
    from dan.fileio import check_writable
    from dan.inference.export import DEFAULT_OPSET, export_checkpoint
    from dan.models.checkpoint import load_model

    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DanError(f"{out}: cannot create the output folder {out.parent}: {err.strerror or err}") from None
    check_writable(out, "export")  # before the model is loaded (or downloaded)
    if args.format is None:
        args.format = "pt2" if Path(args.output).suffix.lower() == ".pt2" else "onnx"
    if args.opset is not None and args.format != "onnx":
        raise DanError("--opset is for ONNX exports only")
    model = load_model(args.checkpoint, labels=args.labels)
    report = export_checkpoint(
        model,
        args.output,
        args.format,
        opset=args.opset or DEFAULT_OPSET,
        int8=args.int8,
        calib=args.calib,
        verify=args.verify,
        tolerance=args.tolerance,
        min_agreement=args.min_agreement,
    )
    if args.int8:
        from dan.inference.auto import has_vnni

        if not has_vnni():
            print(
                "warning: this CPU has no VNNI (AVX2 only): ONNX Runtime's int8 runs slower than float32 here "
                "(measured on an AVX2 EPYC: 141.8 ms against 37.0 ms a face); --backend auto never picks int8",
                file=sys.stderr,
            )
    for line in report.lines:
        print(line)
    if not report.ok:
        output = Path(report.output)
        kept = output.with_name(f"{output.stem}.failed-verify{output.suffix}")
        if output.exists():
            os.replace(output, kept)
        print(f"dan export: verification failed: {output} not written; the failed export is {kept}", file=sys.stderr)
        return 1
    return 0

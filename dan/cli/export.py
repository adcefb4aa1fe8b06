"""``dan export``: a checkpoint as ONNX (float32 or int8) or a ``torch.export`` program (.pt2), optionally verified.

Exit status: 0 done; 1 bad input, or a failed ``--verify``, after which the export is kept only as
``NAME.failed-verify.SUFFIX`` (never under the name asked for, where it could be mistaken for a good one).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dan.cli.options import add_device_option
from dan.vocab import EXPORT_FORMATS, LABEL_SETS, parse_labels

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
        choices=EXPORT_FORMATS,
        default=None,
        help="output format: onnx, or pt2 (torch.export; replaces TorchScript); default from the --output suffix",
    )
    p.add_argument("--output", help="file to write (written to a temporary name, then renamed)")
    p.add_argument(
        "--web",
        metavar="DIR",
        help="instead of --output: write a static web page folder that finds and labels faces in the visitor's "
        "browser (the ONNX model, float32 or --int8, YuNet and onnxruntime-web; serve it with any static server)",
    )
    p.add_argument(
        "--ort-web",
        metavar="FILE.tgz",
        help="with --web: the onnxruntime-web npm tarball to use (checked against its pinned SHA-512) instead of "
        "fetching it with npm once into $DAN_HOME",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the export next to PyTorch on random inputs and on the --calib images; "
        "exit 1 when the largest logit difference exceeds --tolerance",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="write an int8 ONNX model: static QDQ per-channel quantisation calibrated on the --calib faces, or "
        "without --calib on generated faces (dan.export.faces, half of them; the other half checks); reports top-1 "
        "agreement with float32 on faces it was not calibrated on; keeps a copy where --backend auto races it",
    )
    p.add_argument(
        "--int8-mode",
        choices=("static", "dynamic"),
        help="static (the default with --int8); dynamic: no calibration, activations quantised at run time, "
        "several times slower on CPUs without VNNI (implies --int8)",
    )
    p.add_argument("--calib", metavar="DIR", help="folder of face images: int8 calibration and verification inputs")
    p.add_argument(
        "--labels",
        type=parse_labels,
        help=f"label set ({', '.join(LABEL_SETS)}) or comma-separated class names",
    )
    add_device_option(p, "--verify's run of the export")
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
    from dan.errors import DanError

    if (args.output is None) == (args.web is None):
        raise DanError("give one of --output FILE or --web DIR")
    if args.web is not None:
        return _web(args)
    if args.ort_web is not None:
        raise DanError("--ort-web is for --web pages")
    return _export(args)


def _export(args: argparse.Namespace) -> int:
    """The export of ``args.checkpoint`` to ``args.output`` and its report; the exit status."""
    from dan.errors import DanError
    from dan.fileio import check_writable

    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DanError(f"{out}: cannot create the output folder {out.parent}: {err.strerror or err}") from None
    check_writable(out, "export")  # before the model is loaded (or downloaded), before torch is imported
    from dan.export import DEFAULT_OPSET, export_checkpoint
    from dan.models.loading import load_model

    if args.format is None:
        args.format = "pt2" if Path(args.output).suffix.lower() == ".pt2" else "onnx"
    if args.opset is not None and args.format != "onnx":
        raise DanError("--opset is for ONNX exports only")
    if args.verify:  # a GPU asked for where there is none: before the model is loaded
        from dan.system import pick_device

        pick_device(args.device)
    model = load_model(args.checkpoint, labels=args.labels)
    int8 = args.int8 or args.int8_mode is not None
    mode = args.int8_mode or "static"
    calib, source, calib_images = args.calib, "calibration faces", 128
    if int8 and mode == "static" and calib is None:
        from dan.export.faces import CALIBRATION_FACES, CALIBRATION_SEED, calibration_faces

        calib_images = CALIBRATION_FACES // 2
        calib = calibration_faces(model.preprocessing, CALIBRATION_FACES)
        source = f"generated faces (dan synth, seed {CALIBRATION_SEED})"
    report = export_checkpoint(
        model,
        args.output,
        args.format,
        opset=args.opset or DEFAULT_OPSET,
        int8=int8,
        int8_mode=mode,
        calib=calib,
        calib_source=source,
        calib_images=calib_images,
        verify=args.verify,
        tolerance=args.tolerance,
        min_agreement=args.min_agreement,
        device=args.device,
    )
    if int8 and mode == "dynamic":
        print(
            "note: dynamic int8 quantises activations at run time: measured on an AVX2 CPU without VNNI it is "
            "several times slower than float32 and static int8 (dan export --int8 without --int8-mode)",
            file=sys.stderr,
        )
    if int8 and mode == "static" and report.ok:
        from dan.export.export_cache import cache_int8

        try:
            report.lines.append(
                f"kept a copy for --backend auto (it races int8 by top-1 agreement): {cache_int8(model, args.output)}"
            )
        except (DanError, OSError) as err:
            report.lines.append(f"no copy for --backend auto: {err}")
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


def _web(args: argparse.Namespace) -> int:
    """``dan export --web DIR``: the ONNX export (or the given .onnx file) as a static page folder."""
    from dan.errors import DanError
    from dan.web import ort_web_files, write_site

    if args.format not in (None, "onnx") or args.verify:
        raise DanError("--web writes an ONNX page: --format pt2 and --verify are for --output")
    ort_dir = ort_web_files(args.ort_web)  # first: no export work when the runtime cannot be had
    source = Path(args.checkpoint)
    if source.suffix.lower() == ".onnx" and source.is_file():
        if args.int8 or args.int8_mode:
            raise DanError(f"{source}: already an ONNX file: --int8 is for checkpoints")
        folder = write_site(args.web, source, ort_dir, title=source.stem)
    else:
        from dan.export.scratch import scratch_folder

        with scratch_folder() as work:
            args.output = str(work / "model.onnx")
            status = _export(args)
            if status != 0:
                return status
            folder = write_site(args.web, work / "model.onnx", ort_dir, title=source.name)
    print(f"wrote {folder}: serve it with python -m http.server -d {folder} (or dan serve --web {folder})")
    return 0

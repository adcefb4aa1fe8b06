"""``dan calibrate``: fit a temperature on a validation split and write it into a copy of the model.

One scalar T (temperature scaling, :mod:`dan.evaluation.calibration`) minimises the NLL of
softmax(logits / T) on the validation split; it changes no prediction, only how confident each one
is. T goes into the model file's ``dan`` record, and every runtime (torch, ONNX Runtime, OpenVINO,
``.pt2``) applies it wherever probabilities are made: ``dan predict``, ``demo``, ``serve`` and
``evaluate``; ``dan info`` shows it.

Never the test split: ``--split val`` (the default) is the data set's validation split, and a data
set without one (RAF-DB, ``dan synth`` output, class folders without ``val/``) uses the share of its
training split that ``dan fit`` holds out (``data.val_fraction`` and the seed, read from a Lightning
checkpoint when it recorded them, else 0.1 and 0, ``dan fit``'s defaults): the same faces, since the
data module's own hold-out function picks them. A data set whose validation split is also its test
split (AffectNet, SFEW) is refused.

The calibrated model is a new file (``<stem>-calibrated<suffix>`` beside the input, ``--output`` to
choose, ``--in-place`` to replace the input); a reference ``.pth`` or a released model becomes this
project's ``.pt`` with the same weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dan.cli.options import add_device_option, add_model_and_data_options, say_device
from dan.cli.read_options import add_read_options, read_options, recorded_training
from dan.errors import DanError, MissingLabelsError
from dan.vocab import BACKENDS, LABEL_SETS, parse_labels

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dan calibrate", description=__doc__.split("\n\n")[0])
    add_model_and_data_options(p)
    p.add_argument("--split", default="val", help="split to fit T on (default val; never the test split)")
    p.add_argument("--output", help="the calibrated model file (default <stem>-calibrated<suffix> beside the input)")
    p.add_argument("--in-place", action="store_true", help="replace the input file (atomically) instead")
    p.add_argument(
        "--labels",
        type=parse_labels,
        help=f"the model's label set ({', '.join(LABEL_SETS)}) or comma-separated names (7-class reference files)",
    )
    add_read_options(p, recorded=True)
    p.add_argument("--val-fraction", type=float, help="share of train held out (default: the checkpoint's, else 0.1)")
    p.add_argument("--seed", type=int, help="seed of that hold-out (default: the checkpoint's, else 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="model runtime (auto: the fastest float32 runtime here that agrees with torch; an export file runs "
        "with its own runtime)",
    )
    add_device_option(p)
    return p


def _output(args: argparse.Namespace) -> Path:
    """Where the calibrated model goes (see the module docstring)."""
    from dan.export.temperature import CHECKPOINT_SUFFIXES, EXPORT_SUFFIXES
    from dan.hub import is_remote

    spec = str(args.checkpoint)
    local = Path(spec)
    remote = is_remote(spec) or not local.is_file()
    keeps = not remote and local.suffix.lower() in CHECKPOINT_SUFFIXES + EXPORT_SUFFIXES
    if args.in_place:
        if args.output:
            raise DanError("--in-place and --output: choose one")
        if not keeps:
            raise DanError(
                f"--in-place: {spec} has no DAN settings to update (a reference or released model): "
                "the calibrated model is a new .pt file (--output)"
            )
        return local
    if args.output:
        out = Path(args.output)
        if not remote and out.resolve() == local.resolve():
            raise DanError(f"--output {out}: that is the input file; pass --in-place to replace it")
        return out
    stem = Path(spec.rstrip("/").split("/")[-1]).stem or "model"
    suffix = local.suffix if keeps else ".pt"
    return (Path.cwd() if remote else local.parent) / f"{stem}-calibrated{suffix}"


def _renew_checksum(obj: dict) -> None:
    """A Lightning checkpoint's whole-file checksum (training's), renewed after its ``dan`` entry changed."""
    from dan.training.checkpoint_io import CHECKSUM_KEY, checkpoint_checksum

    if CHECKSUM_KEY in obj:
        obj[CHECKSUM_KEY] = checkpoint_checksum(obj)


def main(argv: list[str]) -> int:
    """Run ``dan calibrate``; returns the exit status."""
    args = _parser().parse_args(argv)
    import numpy as np

    from dan.auto.open import open_backend
    from dan.data.dataset import FERDataset
    from dan.data.formats import get_format
    from dan.data.transforms import Transform
    from dan.evaluation.calibration import T_BOUNDS, calibration_scores, fit_temperature, log_softmax
    from dan.evaluation.calibration_split import calibration_split
    from dan.evaluation.evaluate import evaluate_backend
    from dan.export.temperature import write_temperature
    from dan.fileio import check_writable

    fmt = get_format(args.format, "--format")
    out = _output(args)
    check_writable(out, "calibrated model")  # before any work
    try:
        backend = open_backend(args.checkpoint, args.backend, labels=args.labels, device=args.device, int8=False)
    except MissingLabelsError:  # a 7-class reference file: the data set's own label set
        if fmt.eval_labels is None:
            raise
        args.labels = fmt.eval_labels
        backend = open_backend(args.checkpoint, args.backend, labels=args.labels, device=args.device, int8=False)
        print(f"note: {args.checkpoint} carries no class names; assuming the {args.labels} label order (--labels)")
    trained = recorded_training(args.checkpoint, backend, fmt)
    options = read_options(args, trained.options if trained is not None else None)
    val_fraction = args.val_fraction if args.val_fraction is not None else trained.val_fraction if trained else 0.1
    seed = args.seed if args.seed is not None else trained.seed if trained else None
    if seed is None:  # not recorded (an older checkpoint, or not a Lightning one): dan fit's seed_everything
        seed = 0
        if trained:
            print("note: the checkpoint does not record the hold-out seed; assuming 0 (--seed to choose)")
    train_split, val_split = (trained.train_split, trained.val_split) if trained else (None, None)
    chosen = calibration_split(fmt, args.root, args.split, options, val_fraction, seed, train_split, val_split)
    if trained is not None:  # never fit on faces the model trained on
        advice = "fit on the validation split it was trained with (--split val, the recorded options and seed)"
        trained.refuse_trained_faces(fmt, args.root, chosen.data, f"--split {args.split}", advice)
    say_device(backend)  # after every refusal, so a refusal is one line
    dataset = FERDataset(chosen.data, Transform("eval", backend.preprocessing))
    print(f"calibration split: {chosen.description}")
    result = evaluate_backend(backend, dataset, args.batch_size, args.workers)
    for line in result.left_out_lines():
        print(f"note: {line}")
    if result.logits is None or not len(result.targets):
        raise DanError(f"{chosen.data.source}: no image of the model's classes in the calibration split")
    columns = np.array([result.model_labels.index(n) for n in result.label_names])
    logits = result.logits[:, columns]  # (N, C_shared): softmax over them is the renormalised probabilities
    before = calibration_scores(log_softmax(logits, result.temperature), result.targets)
    t = fit_temperature(logits, result.targets)
    after = calibration_scores(log_softmax(logits, t), result.targets)
    calibration = {
        "format": args.format,
        "split": chosen.data.split,
        "samples": int(len(result.targets)),
        "classes": list(result.label_names),
        "seed": int(seed) if chosen.held_out else None,
        "temperature_before": float(result.temperature),
        **{f"{k}_before": float(before[k]) for k in ("nll", "ece")},
        **{f"{k}_after": float(after[k]) for k in ("nll", "ece")},
    }
    print(f"before: T {result.temperature:.4g}, NLL {before['nll']:.4f}, ECE {before['ece']:.4f}")
    print(f"after:  T {t:.4g}, NLL {after['nll']:.4f}, ECE {after['ece']:.4f}  ({len(result.targets)} images)")
    if t in T_BOUNDS:  # the NLL still fell at the end of the range searched
        why = "no better than chance on this split" if t == T_BOUNDS[1] else "right on every face of this split"
        print(f"note: T is at the bound of the range searched ({T_BOUNDS[0]:g} to {T_BOUNDS[1]:g}): the model is {why}")
    record = backend.metadata
    finish = _renew_checksum if out.suffix.lower() == ".ckpt" else None
    written = write_temperature(args.checkpoint, out, t, record, calibration, labels=args.labels, finish=finish)
    print(f"wrote {written} (temperature {t:.4g}; predict, demo, serve and evaluate apply it)")
    return 0

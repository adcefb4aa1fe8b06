"""``dan synth OUT_DIR``: generate the synthetic face-expression data set (RAF-DB basic layout)."""

from __future__ import annotations

import argparse

from dan.cli.options import Number

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dan synth",
        description="Draw a synthetic 7-expression face data set in the RAF-DB basic layout "
        "(EmoLabel/list_patition_label.txt + Image/aligned/), plus preview.jpg.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created)")
    p.add_argument(
        "--per-class",
        type=Number("--per-class", int, minimum=1),
        default=1000,
        help="images per class, train+test (default 1000)",
    )
    p.add_argument(
        "--size",
        type=Number("--size", int, minimum=16, maximum=1024),
        default=100,
        help="image side in pixels (default 100, like RAF-DB aligned)",
    )
    p.add_argument(
        "--seed",
        type=Number("--seed", int, minimum=0),
        default=0,
        help="seed; the same seed writes the same bytes (default 0)",
    )
    p.add_argument(
        "--test-fraction",
        type=Number("--test-fraction", float, minimum=0, below=1),
        default=0.2,
        help="share of each class in test (default 0.2)",
    )
    p.add_argument(
        "--workers",
        type=Number("--workers", int, minimum=0),
        default=None,
        help="worker processes (default: CPU count)",
    )
    p.add_argument(
        "--force", action="store_true", help="draw again even when OUT_DIR already holds this data set, complete"
    )
    return p


def main(argv: list[str]) -> int:
    """Run ``dan synth`` with ``argv`` (without the command name); returns the exit status."""
    args = _parser().parse_args(argv)
    from dan.data.rafdb import RAFDB_VA
    from dan.data.synth import generate, read_manifest

    done = read_manifest(args.out_dir)
    want = {"per_class": args.per_class, "size": args.size, "seed": args.seed, "test_fraction": args.test_fraction}
    want["valence_arousal"] = RAFDB_VA  # a set drawn before dan wrote valence and arousal is drawn again
    if not args.force and done is not None and all(done.get(k) == v for k, v in want.items()):
        print(
            f"{args.out_dir}: already holds this data set ({done['train']} train + {done['test']} test images); "
            "--force draws it again"
        )
        return 0

    result = generate(args.out_dir, args.per_class, args.size, args.seed, args.test_fraction, args.workers)
    print(
        f"wrote {result.train} train + {result.test} test images ({args.size}x{args.size}) to {result.out_dir} "
        f"in {result.seconds:.1f} s; preview: {result.preview}"
    )
    return 0

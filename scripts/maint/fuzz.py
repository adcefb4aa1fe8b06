"""Fuzz every parser of untrusted bytes for a while and report what was tried and found.

    python -m scripts.maint.fuzz --minutes 10                 # all targets, the time split between them
    python -m scripts.maint.fuzz --minutes 2 --target image   # one target

Targets and their seed corpus are in ``scripts/maint/fuzz_targets.py`` and ``tests/fuzz_corpus/``. Each input
must end in a clean result or a ``DanError`` (the served API: a status below 500) within the deadline;
the peak resident memory of the run is printed at the end. Exit status 1 when anything was found.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import traceback

from hypothesis import HealthCheck, given, seed, settings

from scripts.maint.fuzz_targets import TARGETS, mutations, seeds


def fuzz(target: str, seconds: float, deadline_ms: int = 3000) -> tuple[int, list[str]]:
    """Run ``target`` for about ``seconds``; returns (inputs tried, failure descriptions)."""
    fn, tried, found = TARGETS[target], 0, []
    for data in seeds(target):  # first-use costs (imports, ONNX Runtime, torch.export) outside the deadline
        try:
            fn(data)
        except Exception as err:
            return 0, [f"{target}: seed file fails: {type(err).__name__}: {err}"]
    end = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < end and not found:

        @seed(round_)
        @settings(
            max_examples=50,
            deadline=deadline_ms,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=False,
        )
        @given(mutations(target))
        def run(data: bytes) -> None:
            nonlocal tried
            tried += 1
            fn(data)

        try:
            run()
        except Exception as err:  # Hypothesis re-raises the shrunk failure
            found.append(f"{target}: {type(err).__name__}: {err}\n{traceback.format_exc(limit=-4)}")  # innermost frames
        round_ += 1
    return tried, found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.0, help="total time (default 1)")
    p.add_argument("--target", choices=sorted(TARGETS), action="append", help="target(s); default all")
    args = p.parse_args(argv)
    targets = args.target or list(TARGETS)
    per = 60 * args.minutes / len(targets)
    failures = []
    for target in targets:
        start = time.monotonic()
        tried, found = fuzz(target, per)
        failures += found
        status = "FOUND " + str(len(found)) if found else "ok"
        print(f"{target:11s} {tried:6d} inputs in {time.monotonic() - start:5.0f} s: {status}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak:.0f} MiB")
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""What the measurement scripts share: the machine header, timing in interleaved rounds, memory, tables.

Every benchmark prints :func:`machine_header` first (the CPU, its ISA, torch's kernel level, the thread
count, the load, and the versions of the libraries it measures), times the paths it compares in
interleaved rounds (:func:`interleaved`: one call of each in turn, so a change of load on the machine
hits all of them alike), and prints Markdown tables (:func:`markdown_table`) that can go into the README
with the command that made them.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from dan.system import describe_machine

__all__ = ["REPO", "interleaved", "interleaved_rounds", "machine_header", "markdown_table", "median_ms", "rss_mib"]

REPO = Path(__file__).resolve().parents[2]
"""The repository root (configs/, docs/, tests/ are found from it)."""


def machine_header(threads: int | None = None, libraries: Sequence[str] = ()) -> str:
    """One line: :func:`dan.system.describe_machine` and the versions of ``libraries`` and Python.

    Args:
        threads: The thread count the measurement uses (None: torch's current setting).
        libraries: Importable names whose ``__version__`` to add (``onnxruntime``, ``cv2``); one not
            installed is said to be missing.
    """
    parts = [describe_machine(threads)]
    for name in libraries:
        try:
            version = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            version = "not installed"
        parts.append(f"{'OpenCV' if name == 'cv2' else name} {version}")
    parts.append(f"Python {platform.python_version()}")
    return "; ".join(parts)


def interleaved(fns: Mapping[str, Callable[[], object]], iters: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved round-robin after ``warmup`` rounds.

    Args:
        fns: The paths to compare, by name.
        iters: Timed rounds (one call of each function per round).
        warmup: Untimed rounds first.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def interleaved_rounds(
    fns: Mapping[str, Callable[[], object]], rounds: int, iters: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Seconds per call of each function: the smallest of its per-round medians, the rounds interleaved.

    Each round runs every function in turn: one untimed call (warm-up, and caches back to its tensors),
    then ``iters`` timed calls. For paths whose calls are long (a training step), where alternating
    every call would mostly measure cache refills.

    Args:
        fns: The paths to compare, by name.
        rounds: Rounds (each path's figure is its best round).
        iters: Timed calls per path per round.
        clock: ``time.perf_counter`` (wall) or ``time.thread_time`` (this thread's CPU time: steady on a
            shared machine, for one-thread runs).
    """
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            times = []
            for _ in range(iters):
                start = clock()
                fn()
                times.append(clock() - start)
            best[name] = min(best[name], statistics.median(times))
    return best


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 2) -> float:
    """Median milliseconds of ``runs`` calls of ``fn`` after ``warmup`` untimed ones."""
    return 1e3 * interleaved({"fn": fn}, runs, warmup)["fn"]


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of process ``pid`` (default this one) in MiB (Linux /proc; 0 where unreadable)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A Markdown table: ``header``, then one line per row (cells as given, already formatted).

    Args:
        header: Column titles.
        rows: Cells per row.
        right: Indexes of right-aligned (numeric) columns.
    """
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("| " + " | ".join("---:" if i in right else "---" for i in range(len(header))) + " |")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

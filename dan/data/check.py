"""``dan data check``: count a data set per split and class and list every problem in it.

Problems: missing root, list file, column or split; malformed lines; labels out of range;
duplicate entries; missing, unreadable or truncated images; face boxes outside their image.
Each names its file and, where there is one, the line of the list file.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from dan.data.dataset import load_sample_image
from dan.data.formats import get_format
from dan.data.options import ReadOptions
from dan.data.packed_store import is_url
from dan.data.samples import Issue, Sample, SplitData
from dan.errors import DanError
from dan.imaging import ImageReadError

__all__ = ["CheckReport", "check_dataset"]


@dataclass
class CheckReport:
    """The result of :func:`check_dataset`.

    Attributes:
        format: Data set format.
        root: Data set root.
        label_names: Class names (empty when they could not be determined).
        counts: ``{split: {class name: count}}`` for every split that could be read.
        problems: Everything wrong, in the order found.
    """

    format: str
    root: str
    label_names: tuple[str, ...] = ()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def table(self) -> str:
        """Counts as a text table: one row per class, one column per split, plus totals."""
        splits = list(self.counts)
        header = ["class", *splits, "total"]
        rows = [
            [
                name,
                *(str(self.counts[s].get(name, 0)) for s in splits),
                str(sum(self.counts[s].get(name, 0) for s in splits)),
            ]
            for name in self.label_names
        ]
        totals = [sum(c.values()) for c in self.counts.values()]
        rows.append(["total", *map(str, totals), str(sum(totals))])
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])

    def text(self) -> str:
        """The full report: the table, then every problem, then a verdict line."""
        lines = [f"{self.format} data set at {self.root}", ""]
        if self.counts:
            lines += [self.table(), ""]
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems]
        else:
            lines.append("no problems found")
        return "\n".join(lines)


def _decode_problem(data: SplitData, index: int, sample: Sample) -> Issue | None:
    try:
        load_sample_image(sample, data.pixels, index, data.images)
    except ImageReadError as err:
        where = data.source if sample.line is not None else ""
        return Issue(where, sample.line, str(err))
    return None


def check_dataset(
    format: str,
    root: str | Path,
    options: ReadOptions | None = None,
    decode: bool = True,
    workers: int | None = None,
) -> CheckReport:
    """Read every split of a data set, decode every image, and report counts and problems.

    Args:
        format: A data set layout (:data:`dan.vocab.FORMAT_NAMES`).
        root: The data set root.
        options: How to read it (CK+'s folds, AffectNet's class count, ...; default the defaults); every
            problem is collected, whatever its ``strict``.
        decode: Decode every image (slower, finds truncated and corrupt files).
        workers: Decoding threads; default the CPU count.

    Returns:
        The report; ``report.ok`` is False when anything is wrong.
    """
    fmt = get_format(format)
    report = CheckReport(format, str(root))
    if not is_url(root) and not Path(root).exists():
        report.problems.append(Issue(str(root), None, "data set root not found"))
        return report
    options = replace(options or ReadOptions(), strict=False)
    try:
        if fmt.check is not None:
            fmt.check(Path(root))  # not this layout at all: one problem, not one per split
        report.label_names = fmt.label_names(root, options)
        splits = fmt.split_names(root, options)
    except DanError as err:
        report.problems.append(Issue("", None, str(err)))
        return report
    if not splits:
        report.problems.append(Issue(str(root), None, "no split folders found"))
    seen_issue: set[Issue] = set()
    first_seen: dict[str, str] = {}
    for split in splits:
        try:
            data = fmt.read_split(root, split, options)
        except DanError as err:
            issue = Issue("", None, str(err))
            if issue not in seen_issue:  # the same missing file named once, not once per split
                seen_issue.add(issue)
                report.problems.append(issue)
            continue
        report.counts[data.split] = data.class_counts()
        for issue in data.issues:
            if issue not in seen_issue:
                seen_issue.add(issue)
                report.problems.append(issue)
        for s in data.samples:
            if data.pixels is None and s.source in first_seen and first_seen[s.source] != data.split:
                msg = f"{s.source} is in both {first_seen[s.source]} and {data.split}"
                report.problems.append(Issue(data.source, s.line, msg))
            first_seen.setdefault(s.source, data.split)
        if decode and data.pixels is None:
            threads = 1 if data.images is not None else workers or os.cpu_count() or 1  # one chunk reader
            with ThreadPoolExecutor(max_workers=threads) as pool:
                found = pool.map(partial(_decode_problem, data), range(len(data)), data.samples, chunksize=64)
                report.problems += [p for p in found if p is not None]
    report.problems += _class_coverage(report)
    return report


def _class_coverage(report: CheckReport) -> list[Issue]:
    """A class with no image in a split, when other splits have it: a model would train or be scored without it."""
    problems = []
    for name in report.label_names:
        have = [split for split, counts in report.counts.items() if counts.get(name, 0) > 0]
        lack = [split for split in report.counts if split not in have]
        if have and lack:
            problems.append(
                Issue(
                    str(report.root),
                    None,
                    f"class {name!r} has no images in split {', '.join(lack)} (only in {', '.join(have)})",
                )
            )
        elif not have and report.counts:
            problems.append(Issue(str(report.root), None, f"class {name!r} has no images in any split"))
    return problems

"""What a reader returns: the samples of one split, their class names and the problems found.

A reader never decodes images; it lists them. Each :class:`Sample` is a file (or, for FER2013, a row
whose pixels are kept in :attr:`SplitData.pixels`), its label index and an optional face box.
Problems are collected as :class:`Issue` objects so ``dan data check`` can report all of them, while
training raises the first fatal one as a :class:`dan.common.DanError` before any step runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from dan.common import DanError

__all__ = ["Issue", "Sample", "SplitData"]


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        source: The image file path, or ``"FILE:LINE"`` for an image stored in a CSV row.
        label: Class index into the split's ``label_names``.
        box: Face box ``(x, y, w, h)`` in pixels to crop before transforming, or None.
        line: Line of the list/CSV file that named this sample (1-based), or None.
    """

    source: str
    label: int
    box: tuple[int, int, int, int] | None = None
    line: int | None = None


@dataclass(frozen=True)
class Issue:
    """A problem with the data on disk, tied to a file and (where there is one) a line.

    Attributes:
        path: The file (or folder) the problem is in.
        line: 1-based line number in ``path``, or None.
        message: What is wrong, in a few words.
        fatal: False for things that do not stop training (e.g. a duplicate entry).
    """

    path: str
    line: int | None
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        if not self.path:
            return self.message
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


@dataclass
class SplitData:
    """The samples of one split of one data set.

    Attributes:
        format: Reader name (``rafdb``, ``affectnet``, ``fer2013``, ``folder``).
        split: Split name as stored on disk (e.g. ``train``, ``validation``, ``PublicTest``).
        label_names: Class names; index ``i`` names label ``i``.
        samples: The samples, in a fixed order.
        source: The list file or folder the split was read from.
        pixels: In-memory images, ``pixels[i]`` belonging to ``samples[i]`` (FER2013), else None.
        issues: Problems found while reading (lines that were skipped, duplicates).
    """

    format: str
    split: str
    label_names: tuple[str, ...]
    samples: list[Sample]
    source: str
    pixels: np.ndarray | None = None
    issues: list[Issue] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        """The label index of every sample, in order."""
        return [s.label for s in self.samples]

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name (every class listed, zeros included)."""
        counts = Counter(s.label for s in self.samples)
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}

    def raise_on_issues(self) -> None:
        """Raise the first fatal issue as a :class:`DanError` (one line naming file and line).

        Raises:
            DanError: At least one fatal issue was found.
        """
        fatal = [i for i in self.issues if i.fatal]
        if fatal:
            more = f" (and {len(fatal) - 1} more; run 'dan data check' to list them)" if len(fatal) > 1 else ""
            raise DanError(f"{fatal[0]}{more}")

    def require_samples(self) -> None:
        """Raise a :class:`DanError` when the split has no samples."""
        if not self.samples:
            raise DanError(f"{self.source}: split {self.split!r} of the {self.format} data set is empty")

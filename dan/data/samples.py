"""What a reader returns: the samples of one split, their class names and the problems found.

A reader never decodes images; it lists them. Each :class:`Sample` is a file (or, for FER2013, a row
whose pixels are kept in :attr:`SplitData.pixels`), its label index, an optional face box and, where the
data set has them (AffectNet, the generated set), its valence and arousal.
Problems are collected as :class:`Issue` objects so ``dan data check`` can report all of them, while
training raises the first fatal one as a :class:`dan.errors.DanError` before any step runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from dan.errors import DanError

__all__ = ["SPLIT_WORDS", "StoredImages", "Issue", "Sample", "SplitData", "split_role"]

# the words people use for a split -> its role; each reader maps roles to its own split names
SPLIT_WORDS: dict[str, str] = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("val", "valid", "validation", "publictest"), "val"),
    **dict.fromkeys(("test", "testing", "privatetest"), "test"),
}


def split_role(name: str) -> str | None:
    """``"train"``, ``"val"`` or ``"test"`` for a split name in any of its usual spellings, else None."""
    return SPLIT_WORDS.get(name.strip().lower())


class StoredImages(Protocol):
    """Images kept somewhere other than in files of their own (packed chunks: :mod:`dan.data.packed`)."""

    def load(self, index: int) -> np.ndarray:
        """The decoded RGB uint8 (H, W, 3) image of sample ``index``, uncropped."""
        ...

    def take(self, index: np.ndarray) -> StoredImages:
        """The source of the samples ``index`` (a subset, in that order)."""
        ...


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        source: The image file path, or ``"FILE:LINE"`` for an image stored in a CSV row.
        label: Class index into the split's ``label_names``.
        box: Face box ``(x, y, w, h)`` in pixels to crop before transforming, or None.
        line: Line of the list/CSV file that named this sample (1-based), or None.
        va: ``(valence, arousal)`` in [-1, 1], NaN for a value the data set does not know; None when it
            knows neither.
    """

    source: str
    label: int
    box: tuple[int, int, int, int] | None = None
    line: int | None = None
    va: tuple[float, float] | None = None


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
        format: Reader name (a name of :data:`dan.vocab.FORMAT_NAMES`).
        split: Split name as stored on disk (e.g. ``train``, ``validation``, ``PublicTest``).
        label_names: Class names; index ``i`` names label ``i``.
        samples: The samples, in a fixed order.
        source: The list file or folder the split was read from.
        pixels: In-memory images, ``pixels[i]`` belonging to ``samples[i]`` (FER2013), else None.
        issues: Problems found while reading (lines that were skipped, duplicates).
        soft: Soft targets, float32 (N, C): ``soft[i, c]`` is the share of the annotators of
            ``samples[i]`` who voted for class ``c`` (rows sum to 1); FERPlus read with
            ``ReadOptions.soft_targets``, else None. For a loss on vote distributions: the Dataset
            does not return them (yet).
        images: Where the images are when they are not files (packed chunks), ``images.load(i)``
            decoding sample ``i``; else None.
    """

    format: str
    split: str
    label_names: tuple[str, ...]
    samples: list[Sample]
    source: str
    pixels: np.ndarray | None = None
    issues: list[Issue] = field(default_factory=list)
    soft: np.ndarray | None = None
    images: StoredImages | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        """The label index of every sample, in order."""
        return [s.label for s in self.samples]

    @property
    def has_va(self) -> bool:
        """Whether any sample has a valence or an arousal."""
        return any(s.va is not None for s in self.samples)

    @property
    def va(self) -> np.ndarray | None:
        """``(valence, arousal)`` of every sample, float32 (N, 2), NaN where unknown; None when no sample has any."""
        if not self.has_va:
            return None
        nan = (float("nan"), float("nan"))
        return np.array([s.va if s.va is not None else nan for s in self.samples], np.float32).reshape(-1, 2)  # (N, 2)

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

    def checked(self, strict: bool) -> SplitData:
        """The split after a reader's final checks: its first fatal issue raised when ``strict``, and an
        empty split refused either way (:meth:`raise_on_issues`, :meth:`require_samples`); returns ``self``."""
        if strict:
            self.raise_on_issues()
        self.require_samples()
        return self

    def require_samples(self) -> None:
        """Raise a :class:`DanError` when the split has no samples."""
        if not self.samples:
            raise DanError(f"{self.source}: split {self.split!r} of the {self.format} data set is empty")

    def holdout(self, fraction: float, seed: int = 0) -> tuple[SplitData, SplitData]:
        """Split off a stratified, seeded share of the samples (a validation split carved from training).

        Each class gives ``round(fraction * count)`` samples (at least one from a class with two or
        more), drawn with a generator seeded by ``seed``, so the same data and seed always give the
        same two parts. Sample order is kept in both.

        Args:
            fraction: Share to hold out, in (0, 1).
            seed: Seed of the draw.

        Returns:
            ``(rest, held_out)``; ``held_out.split`` is ``"<split>[holdout <fraction>]"``.

        Raises:
            DanError: ``fraction`` outside (0, 1), or nothing would be left to hold out.
        """
        if not 0.0 < fraction < 1.0:
            raise DanError(f"val_fraction={fraction}: must be between 0 and 1 (exclusive)")
        labels = np.asarray(self.labels)
        rng = np.random.default_rng([seed, len(labels)])
        held = np.zeros(len(labels), bool)
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)  # (n_c,)
            take = min(len(members) - 1, max(1 if len(members) > 1 else 0, round(fraction * len(members))))
            held[rng.choice(members, size=take, replace=False)] = True
        if not held.any():
            raise DanError(f"{self.source}: split {self.split!r} is too small to hold out a validation share")
        pixels, soft, images = self.pixels, self.soft, self.images

        def part(mask: np.ndarray, name: str) -> SplitData:
            index = np.flatnonzero(mask)
            return replace(
                self,
                split=name,
                samples=[self.samples[i] for i in index],
                pixels=pixels[index] if pixels is not None else None,
                issues=list(self.issues),
                soft=soft[index] if soft is not None else None,
                images=images.take(index) if images is not None else None,
            )

        return part(~held, self.split), part(held, f"{self.split}[holdout {fraction:g}]")

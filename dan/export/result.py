"""What an export did and measured: the record ``dan export`` prints and tests read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ExportReport"]


@dataclass
class ExportReport:
    """What :func:`dan.export.export_checkpoint` did and measured.

    Attributes:
        output: The file written.
        format: ``onnx`` or ``pt2``.
        int8: Whether the file is int8-quantised (``static`` or ``dynamic``), else None.
        max_abs_diff_random: Largest |export - PyTorch| logit difference on random inputs (verify).
        max_abs_diff_images: The same on the real images of ``calib`` (verify, when given).
        num_images: Number of real images compared.
        int8_agreement: Top-1 agreement of the int8 model with float32 on the images (or random inputs).
        max_abs_diff_va: Largest |export - PyTorch| valence/arousal difference over the random inputs and
            the images (verify, for a model with the output), else None.
        lines: Human-readable report lines.
        ok: False when a check failed.
    """

    output: Path
    format: str
    int8: str | None = None
    max_abs_diff_random: float | None = None
    max_abs_diff_images: float | None = None
    num_images: int = 0
    int8_agreement: float | None = None
    max_abs_diff_va: float | None = None
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def fail(self, line: str) -> None:
        """Record a failed check."""
        self.ok = False
        self.lines.append(f"FAILED: {line}")

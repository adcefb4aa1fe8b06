"""The demo's CSV, streamed row by row and published atomically through :mod:`dan.fileio`.

A reader never sees a half-written CSV: until the rename the target is absent (or still holds its
previous content). ``dan predict``'s writers live in :mod:`dan.collection.writers`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dan.fileio import check_writable, temp_path_for

__all__ = ["CsvStream"]


class CsvStream:
    """A CSV written row by row (one per face per frame) and published whole on :meth:`close`.

    Rows are flushed as they come, so even a killed process leaves the rows so far in the ``.tmp``
    file; :meth:`close` renames it to the target.

    Args:
        path: The target CSV file.
        header: Column names.
    """

    def __init__(self, path: str | os.PathLike, header: Sequence[str]) -> None:
        self.path = Path(path)
        check_writable(self.path, "CSV")
        self.tmp = temp_path_for(self.path)
        self._file = open(self.tmp, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(header)
        self.rows = 0

    def write(self, row: Sequence[Any]) -> None:
        """Append one row."""
        self._writer.writerow(row)
        self.rows += 1

    def flush(self) -> None:
        """Push buffered rows to the temporary file."""
        self._file.flush()

    def abort(self) -> None:
        """Drop the rows written so far (the target, or its previous content, stays as it was)."""
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """Finish the file and move it to its target path (idempotent)."""
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.tmp, self.path)
        return self.path

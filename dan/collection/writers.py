"""Row writers of ``dan predict``: whole CSV / JSON documents, and streaming CSV, JSON Lines and Parquet parts.

:func:`write_csv` and :func:`write_json` write a whole table or document atomically (``dan predict``
over images). A :class:`PartWriter` streams rows to a temporary file as frames are scored and is put in
place by :meth:`PartWriter.commit` (fsync, rename): a reader, or a rerun after a kill, sees a part
whole or not at all. What a part buffers is bounded: CSV and JSON Lines go to the file row by row,
Parquet in row groups of :data:`PARQUET_ROW_GROUP` rows. :func:`concatenate` streams finished parts
into one file, a row group or a line at a time.

Parquet needs ``pyarrow`` (the ``parquet`` or ``scale`` extra); without it asking for Parquet is a one-line
:class:`~dan.errors.DanError`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dan.errors import DanError
from dan.fileio import atomic_path, publish, temp_path_for

__all__ = [
    "FORMATS",
    "PARQUET_ROW_GROUP",
    "PartWriter",
    "concatenate",
    "require_pyarrow",
    "write_csv",
    "write_json",
]

FORMATS = ("csv", "jsonl", "parquet")
"""Streaming row formats, by file suffix."""

PARQUET_ROW_GROUP = 4096
"""Rows a Parquet part keeps in memory before writing them as one row group."""


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV file atomically and return its path."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON (indented, UTF-8) atomically and return its path."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return Path(path)


def require_pyarrow():
    """``(pyarrow, pyarrow.parquet)``, imported (raises a one-line DanError when pyarrow is missing)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DanError("Parquet output needs pyarrow: pip install 'dan-fer[parquet]' (or write .csv, .jsonl)") from None
    return pa, pq


class PartWriter:
    """Rows of one input streamed to a temporary file, published whole by :meth:`commit`.

    Args:
        path: The part's final path; its suffix (``.csv``, ``.jsonl``, ``.parquet``) picks the format.
        columns: Column names, in row order.
        types: Each column's type: ``"str"``, ``"int"`` or ``"float"`` (Parquet's schema; CSV writes text).
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], types: Sequence[str]) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower().lstrip(".")
        if self.format not in FORMATS:
            raise DanError(f"{self.path}: rows are written as {', '.join('.' + f for f in FORMATS)}")
        self.columns, self.types = list(columns), list(types)
        self.tmp = temp_path_for(self.path)
        self.rows = 0
        self._buffer: list[Sequence[Any]] = []
        self._parquet: Any = None
        if self.format == "parquet":
            pa, pq = require_pyarrow()
            kinds = {"str": pa.string(), "int": pa.int64(), "float": pa.float32()}
            self._schema = pa.schema([(c, kinds[t]) for c, t in zip(self.columns, self.types)])
            self._parquet = pq.ParquetWriter(self.tmp, self._schema)
            self._file = None
        else:
            self._file = open(self.tmp, "w", newline="", encoding="utf-8")
            if self.format == "csv":
                self._csv = csv.writer(self._file)
                self._csv.writerow(self.columns)

    def write(self, row: Sequence[Any]) -> None:
        """Append one row (values in column order)."""
        self.rows += 1
        if self.format == "csv":
            self._csv.writerow([f"{v:.4f}" if isinstance(v, float) else v for v in row])
        elif self.format == "jsonl":
            assert self._file is not None  # opened for the text formats
            values = [round(v, 6) if isinstance(v, float) else v for v in row]  # float32's digits, not float64's
            self._file.write(json.dumps(dict(zip(self.columns, values))) + "\n")
        else:
            self._buffer.append(row)
            if len(self._buffer) >= PARQUET_ROW_GROUP:
                self._flush_parquet()

    def _flush_parquet(self) -> None:
        if self._buffer:
            pa, _ = require_pyarrow()
            table = pa.Table.from_pylist([dict(zip(self.columns, r)) for r in self._buffer], schema=self._schema)
            self._parquet.write_table(table)
            self._buffer = []

    def commit(self) -> Path:
        """Finish the file and rename it to :attr:`path` (after an fsync); returns the path."""
        if self._parquet is not None:
            self._flush_parquet()
            self._parquet.close()
        elif self._file is not None:
            self._file.close()
        return publish(self.tmp, self.path)

    def abort(self) -> None:
        """Drop what was written: no part appears."""
        if self._parquet is not None:
            self._buffer = []
            self._parquet.close()
        elif self._file is not None:
            self._file.close()
        self.tmp.unlink(missing_ok=True)


def concatenate(parts: Sequence[Path], path: str | os.PathLike) -> int:
    """Stream ``parts`` (all of one format, with the same columns) into one file, atomically.

    CSV keeps the first part's header once; JSON Lines are joined; Parquet is copied a row group at a
    time. Returns the number of rows written.

    Raises:
        DanError: No parts (nothing to write), or the target cannot be written.
    """
    if not parts:
        raise DanError(f"{path}: no rows to write")
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    rows = 0
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            _, pq = require_pyarrow()
            writer = None
            for part in parts:
                source = pq.ParquetFile(part)
                writer = writer or pq.ParquetWriter(tmp, source.schema_arrow)
                for i in range(source.num_row_groups):
                    group = source.read_row_group(i)
                    writer.write_table(group)
                    rows += group.num_rows
            if writer is not None:
                writer.close()
        else:
            with open(tmp, "wb") as out:
                for k, part in enumerate(parts):
                    with open(part, "rb") as f:
                        if fmt == "csv":
                            header = f.readline()
                            if k == 0:
                                out.write(header)
                        for line in f:  # a line at a time: bounded memory whatever the part's size
                            out.write(line)
                            rows += 1
    return rows

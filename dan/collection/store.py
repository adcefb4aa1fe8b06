"""Where a collection's rows go, and how a run resumes: one part per input, committed whole.

Every input (video or image) writes its rows to its own part, named from the input's absolute path
(``<stem>-<12 hex of its SHA-1>.<format>``, the same in every run and on every worker), through a
temporary file renamed into place when the input is finished (:class:`dan.collection.writers.PartWriter`).
A part that exists is a finished input: a rerun skips it, and the input that was cut off (its
temporary file removed) is scored again from its start, so no row is ever written twice. The parts
are the done-record; nothing else needs to agree with them.

- A folder output (``--output rows/``) keeps the parts, with ``_manifest.jsonl`` (one line per
  finished input: its part, rows, frames, seconds and any frame errors) and ``_skipped.jsonl`` (one
  line per input that could not be read: damaged, not a video, over the pixel limit).
- A one-file output (``--output rows.parquet`` / ``.csv`` / ``.jsonl``) keeps its parts in a hidden
  folder beside it (``.rows.parquet.parts/``) while the run goes on; when every input is finished or
  skipped the parts are streamed into the one file (atomically) and the folder is removed, the skipped
  record moving beside the file as ``rows.parquet.skipped.jsonl``. A later run of the same command on
  a finished output starts afresh and replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from dan.collection.writers import FORMATS, concatenate, require_pyarrow
from dan.errors import DanError
from dan.fileio import check_writable, remove_stale_temps_in

__all__ = ["MANIFEST", "SKIPPED", "PartStore", "part_name"]

MANIFEST, SKIPPED = "_manifest.jsonl", "_skipped.jsonl"


def part_name(source: str | os.PathLike, fmt: str) -> str:
    """The deterministic file name of the part of ``source``."""
    key = str(Path(source).resolve())
    return f"{Path(source).stem}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:12]}.{fmt}"


class PartStore:
    """The parts folder of a collection output (see the module docstring).

    Args:
        output: A file ``*.csv``, ``*.jsonl``, ``*.parquet``, or a folder (an existing one, or a path
            ending in ``/`` or without suffix).
        fmt: The parts' format for a folder output (a file's suffix names its own).
        fresh: A new run over the store (the driver): clear the skipped record and temporary parts of
            dead processes. False for the workers of a distributed run, which share the driver's.

    Raises:
        DanError: An unknown suffix, or a folder that cannot be written.
    """

    def __init__(self, output: str | os.PathLike, fmt: str = "csv", fresh: bool = True) -> None:
        text = os.fspath(output)
        path = Path(text)
        suffix = path.suffix.lower().lstrip(".")
        self.single = not (path.is_dir() or text.endswith(("/", os.sep)) or not suffix)
        if self.single and suffix not in FORMATS:
            raise DanError(f"{path}: --output must end in {', '.join('.' + f for f in FORMATS)}, or be a folder")
        self.output = path
        self.format = suffix if self.single else fmt
        if self.format not in FORMATS:
            raise DanError(f"--format must be one of {', '.join(FORMATS)}, got {fmt}")
        if self.format == "parquet":
            require_pyarrow()  # missing: one line now, before any input is read; present: imported once, here
        self.folder = path.with_name(f".{path.name}.parts") if self.single else path
        if self.single:
            check_writable(self.output)
        if not self.folder.is_dir():
            check_writable(self.folder, "output folder")  # its parent exists and takes new files
            self.folder.mkdir()
        check_writable(self.folder / MANIFEST, "manifest")
        if fresh:
            remove_stale_temps_in(self.folder)  # temporary parts of killed runs: their inputs are redone
            (self.folder / SKIPPED).unlink(missing_ok=True)  # skipped inputs are tried again

    def part(self, source: str | os.PathLike) -> Path:
        """Where the rows of ``source`` go."""
        return self.folder / part_name(source, self.format)

    def done(self, source: str | os.PathLike) -> bool:
        """Whether ``source`` was finished by this run or an earlier one."""
        return self.part(source).is_file()

    def _append(self, name: str, record: dict) -> None:
        with open(self.folder / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def finished(self, source: str | os.PathLike, rows: int, frames: int, seconds: float, errors: list[str]) -> None:
        """Note a committed part in the manifest."""
        record = {"input": str(source), "part": self.part(source).name, "rows": rows, "frames": frames}
        self._append(MANIFEST, {**record, "seconds": round(seconds, 3), "errors": errors})

    def skipped(self, source: str | os.PathLike, reason: str) -> None:
        """Note an input that could not be read (the run goes on)."""
        self._append(SKIPPED, {"input": str(source), "reason": reason})

    def remove_if_empty(self) -> None:
        """Remove the hidden parts folder of a one-file output when nothing is in it (a run that failed before
        its first input leaves no trace)."""
        if self.single and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()

    def records(self, name: str) -> list[dict]:
        """The lines of the manifest (:data:`MANIFEST`) or the skipped record (:data:`SKIPPED`), newest first."""
        path = self.folder / name
        if not path.is_file():
            return []
        return [json.loads(line) for line in reversed(path.read_text(encoding="utf-8").splitlines()) if line]

    def skipped_record(self) -> Path | None:
        """The skipped record of a one-file output (beside it) or a folder (in it), when anything was skipped."""
        if self.single:
            beside = self.output.with_name(self.output.name + ".skipped.jsonl")
            return beside if beside.is_file() else None
        return self.folder / SKIPPED if (self.folder / SKIPPED).is_file() else None

    def publish(self, sources: list[Path]) -> int | None:
        """For a one-file output: stream the parts of ``sources`` (in that order) into it, move the skipped
        record beside it and remove the parts folder; returns the rows written (None: a folder output,
        or nothing finished)."""
        if not self.single:
            return None
        parts = [self.part(s) for s in sources if self.done(s)]
        beside = self.output.with_name(self.output.name + ".skipped.jsonl")
        beside.unlink(missing_ok=True)
        if (self.folder / SKIPPED).is_file():
            os.replace(self.folder / SKIPPED, beside)
        if not parts:
            return None
        rows = concatenate(parts, self.output)
        shutil.rmtree(self.folder)
        return rows

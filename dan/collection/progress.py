"""Progress of long work: a tqdm line on a terminal, plain periodic lines otherwise, nothing when quiet.

``dan predict`` counts frames (and finished inputs of their total), ``dan evaluate`` batches. On a
terminal tqdm shows done of total, the rate and the time left; when stderr is not a terminal (a log
file, a batch job) one plain line is printed every ``interval`` seconds and one at the end, so a log
shows the run moving without a line per frame. Safe to call from several threads.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts done work and shows it (see the module docstring).

    Args:
        total: Units of work in all (None when unknown).
        unit: What a unit is called (``"frame"``, ``"batch"``).
        items: Inputs in all (videos, images), shown as ``done/items``; 0 for none.
        quiet: Show nothing.
        stream: Where to write (default: stderr).
        interval: Seconds between plain lines when ``stream`` is not a terminal.
        terminal: Force the tqdm line on or off (default: whether ``stream`` is a terminal).
    """

    def __init__(
        self,
        total: int | None,
        unit: str = "frame",
        items: int = 0,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 10.0,
        terminal: bool | None = None,
        prefix: str = "dan",
    ) -> None:
        self.total, self.unit, self.items, self.quiet = total, unit, items, quiet
        self.stream = stream or sys.stderr
        self.interval, self.prefix = interval, prefix
        self.done = self.items_done = 0
        self.start = self._last = time.monotonic()
        self._lock = threading.Lock()
        self._bar = None
        tty = self.stream.isatty() if terminal is None else terminal
        if not quiet and tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, file=self.stream, desc=prefix, dynamic_ncols=True)

    def _items(self) -> str:
        return f"{self.items_done}/{self.items} inputs, " if self.items else ""

    def update(self, n: int = 1, item_done: bool = False) -> None:
        """Add ``n`` units done (and one finished input when ``item_done``)."""
        with self._lock:
            self.done += n
            self.items_done += int(item_done)
            if self._bar is not None:
                if item_done:
                    self._bar.set_postfix_str(self._items().rstrip(", "), refresh=False)
                self._bar.update(n)
            elif not self.quiet and time.monotonic() - self._last >= self.interval:
                self._last = time.monotonic()
                self._line()

    def _line(self) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        of = f" of {self.total}" if self.total else ""
        left = ""
        if self.total and rate > 0:
            left = f", {max(self.total - self.done, 0) / rate:.0f} s left"
        units = self.unit + ("es" if self.unit.endswith(("s", "sh", "ch", "x")) else "s")
        line = f"{self.prefix}: {self._items()}{self.done}{of} {units}, {rate:.1f} {units}/s{left}"
        print(line, file=self.stream, flush=True)

    def close(self, finished: bool = True) -> None:
        """End the line (tqdm) or print the last plain line.

        Args:
            finished: False when the work stopped on an error: no last plain line, so the error that
                follows is the run's one line.
        """
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif not self.quiet and finished:
                self._line()
            self.quiet = True  # once

"""A dependency-free progress bar for the demo (stderr, redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self.label, self.total, self.width = label, max(total, 1), width
        self.done = 0
        self.start = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._last_pct = -1

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        pct = int(100 * self.done / self.total)
        if pct != self._last_pct and (self._tty or pct % 25 == 0):
            self._last_pct = pct
            filled = int(self.width * self.done / self.total)
            bar = "█" * filled + "·" * (self.width - filled)
            end = "\r" if self._tty and self.done < self.total else "\n"
            print(f"  {self.label:<28} {bar} {pct:3d}%", end=end, file=sys.stderr, flush=True)

    def finish(self) -> float:
        if self.done < self.total:
            self.advance(self.total - self.done)
        return time.perf_counter() - self.start

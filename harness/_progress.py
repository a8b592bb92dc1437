"""Progress for the long stages (teacher answers, fine-tuning steps).

On a terminal: a tqdm bar (done/total, rate, and stats such as loss and tok/s). Anywhere else (CI,
a log file, a Slurm job): plain lines, one per 10 % of the work or per 30 s, whichever comes first,
so a log shows progress without thousands of carriage returns. Evaluation has inspect's own display.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO


class Progress:
    """`with Progress("generate", 80, "answers") as p: ... p.update(1)`; `p.update(1, loss="1.23")`.
    `done`: work already done before this run (answers kept from an interrupted one); the rate
    counts only what this run does."""

    def __init__(self, label: str, total: int, unit: str, done: int = 0, stream: TextIO | None = None,
                 tty: bool | None = None, every: float = 0.1, seconds: float = 30.0) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.done = self.start = done
        self.stats: dict[str, Any] = {}
        self.t0 = self.last_t = time.monotonic()
        self.step = max(1, round(total * every))
        self.next_at, self.seconds = (done // self.step + 1) * self.step, seconds
        self.bar: Any = None
        if self.tty:
            from tqdm import tqdm

            # a terminal that reports no size (0 x 0: some containers, `script`) would hide tqdm's bar
            cols, rows = shutil.get_terminal_size((100, 24))
            self.bar = tqdm(total=total, initial=done, desc=f"[{label}]", unit=f" {unit}", file=self.stream,
                            ncols=cols, nrows=rows, leave=True)

    def update(self, n: int = 1, **stats: Any) -> None:
        self.done += n
        self.stats.update(stats)
        if self.bar is not None:
            if stats:
                self.bar.set_postfix(stats, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.done >= self.next_at or self.done >= self.total or now - self.last_t >= self.seconds:
            while self.next_at <= self.done:
                self.next_at += self.step
            self.last_t = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        rate = (self.done - self.start) / max(1e-9, time.monotonic() - self.t0)
        extra = "".join(f" {k} {v}" for k, v in self.stats.items())
        return f"[{self.label}] {self.unit} {self.done}/{self.total} ({rate:.2f}/s){extra}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

"""Progress that stays readable in logs: a tqdm bar on a terminal, elsewhere one plain line now and then.

Where stderr is not an interactive terminal (a Kaggle notebook run by nbclient, CI, a pipe, a torchrun
child process), tqdm redraws its bar as carriage-return text many times a second: a notebook cell
collects ~60 KB a minute, 15 MB over a 4-hour run. There `progress` returns a `LineProgress` instead,
with the small part of tqdm's interface the pipeline uses (update, set_postfix, write, close, a context
manager, n and total). It prints one flushed line every `every_s` seconds (hardware.progress_every_s),
checked in update() on a monotonic clock (no thread, and never a device sync: the postfix shown is the
one the caller last set), and one summary line on close. Bars that follow one another (the train loop's
epochs) can share a Pace: together they then print one line per every_s however short each is, a bar's
summary is left out when it printed nothing and a line came less than every_s ago, and the postfix
carries over to the next bar. The choice between tqdm and lines is made per bar, when it is made.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from time import monotonic
from types import TracebackType
from typing import Any, Self, TextIO, TypeVar

from tqdm import tqdm

from .text import duration

T = TypeVar("T")


def interactive(stream: Any) -> bool:
    """Whether `stream` is an interactive terminal (a notebook's stream, a pipe or a closed file is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress(total: int | None, desc: str, unit: str = "it", *, every_s: float, initial: int = 0,
             disable: bool = False, leave: bool = False, pace: Pace | None = None,
             **tqdm_options: Any) -> Bar:
    """A tqdm bar when stderr is a terminal, else a LineProgress printing a line every `every_s` seconds.

    `pace` (LineProgress only) is shared with the bars before and after this one; `tqdm_options`
    (e.g. dynamic_ncols) go to tqdm only.
    """
    if interactive(sys.stderr):
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable, leave=leave,
                    **tqdm_options)
    return LineProgress(total, desc, unit, every_s=every_s, initial=initial, disable=disable, pace=pace)


def track(items: Iterable[T], total: int | None, desc: str, unit: str = "it", *, every_s: float,
          disable: bool = False, leave: bool = False) -> Iterator[T]:
    """`items`, counted by a progress bar as they are taken (tqdm(items, ...) on a terminal)."""
    if interactive(sys.stderr):
        return iter(tqdm(items, total=total, desc=desc, unit=unit, disable=disable, leave=leave))
    return _counted(items, LineProgress(total, desc, unit, every_s=every_s, disable=disable))


def _counted(items: Iterable[T], bar: LineProgress) -> Iterator[T]:
    with bar:
        for item in items:
            yield item
            bar.update()


class Pace:
    """What bars that follow one another share: when the last line was printed, and the latest postfix."""

    def __init__(self) -> None:
        self.last = monotonic()
        self.postfix: dict[str, Any] = {}


class LineProgress:
    """tqdm's interface as plain lines (`desc: unit n/total (p%), rate, ETA, postfix`), one per every_s."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", *, every_s: float, initial: int = 0,
                 disable: bool = False, pace: Pace | None = None, file: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = self.initial = initial
        self.disable = disable
        self.file = file if file is not None else sys.stderr  # as tqdm: the stream of the moment it is made
        self.start = monotonic()
        self._shared = pace is not None
        self._pace = pace if pace is not None else Pace()
        self.postfix = self._pace.postfix
        self._printed = self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable or self._closed:
            return
        now = monotonic()
        if now - self._pace.last >= self.every_s:
            self._print(self._status(now), now)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        """Values shown at the end of the following lines (as given: nothing is computed or synced here)."""
        self.postfix = self._pace.postfix = {**(ordered_dict or {}), **kwargs}

    def refresh(self) -> None:
        """Nothing to redraw: lines come from update() and close()."""

    def write(self, s: str, file: TextIO | None = None, end: str = "\n") -> None:
        """Print a message now (to stdout unless `file`, as tqdm.write does, disabled or not)."""
        fp = file if file is not None else sys.stdout
        fp.write(s + end)
        fp.flush()

    def close(self) -> None:
        """One summary line if the bar counted anything (on a shared Pace: and had a line, or one is due)."""
        if self._closed:
            return
        self._closed = True
        now = monotonic()
        due = not self._shared or self._printed or now - self._pace.last >= self.every_s
        if not self.disable and self.n > self.initial and due:
            self._print(f"{self.desc}: {self._position()} in {duration(now - self.start)}, "
                        f"{self._rate(now)}{self._postfix()}", now)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _status(self, now: float) -> str:
        line = f"{self.desc}: {self._position()}, {self._rate(now)}"
        per_s = self._per_s(now)
        if self.total:
            line += f", ETA {duration((self.total - self.n) / per_s) if per_s else '?'}"
        return line + self._postfix()

    def _position(self) -> str:
        if not self.total:
            return f"{self.unit} {self.n:,}"
        return f"{self.unit} {self.n:,}/{self.total:,} ({100 * self.n // self.total}%)"

    def _per_s(self, now: float) -> float | None:
        """Units a second since the bar was made (None before any or without time passing)."""
        done, elapsed = self.n - self.initial, now - self.start
        return done / elapsed if done > 0 and elapsed > 0 else None

    def _rate(self, now: float) -> str:
        per_s = self._per_s(now)
        if per_s is None:
            return f"? {self.unit}/s"
        return f"{per_s:,.1f} {self.unit}/s" if per_s >= 1 else f"{1 / per_s:,.1f} s/{self.unit}"

    def _postfix(self) -> str:
        if not self.postfix:
            return ""
        shown = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())
        return ", " + " ".join(shown)

    def _print(self, line: str, now: float) -> None:
        self.file.write(line + "\n")
        self.file.flush()  # a notebook shows each line as it comes
        self._pace.last, self._printed = now, True


Bar = tqdm | LineProgress  # what `progress` returns

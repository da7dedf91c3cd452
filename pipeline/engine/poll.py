"""Waiting on something slow and remote (a Kaggle run, a public score, a free GPU session): one helper for
every loop that asks again later.

The pauses start short (a broken kernel fails in its first minute, a score can come back in seconds) and
double up to a longest pause, so hours of waiting cost a few hundred requests; a deadline ends the waiting,
never the thing waited on. The clock and the sleep are attributes so that a test can run hours of polling in
no time.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Poll:
    """Pauses from `longest_s / 8`, doubling up to `longest_s`, until `timeout_s` has passed."""

    timeout_s: float
    longest_s: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    start: float = field(init=False)
    pause: float = field(init=False)

    def __post_init__(self) -> None:
        self.start, self.pause = self.clock(), self.longest_s / 8

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.start

    def wait(self, announce: Callable[[float], None] | None = None) -> bool:
        """Sleep the next pause (`announce(pause)` first, to say so) and return True; False, without sleeping,
        when it would end past the deadline."""
        if self.elapsed_s + self.pause > self.timeout_s:
            return False
        if announce is not None:
            announce(self.pause)
        self.sleep(self.pause)
        self.pause = min(self.pause * 2, self.longest_s)
        return True

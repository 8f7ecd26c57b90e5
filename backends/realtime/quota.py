"""Fixed-window quotas: the spec's limits are "N per minute" with a reset time.

The spec reports `remaining_quota`, `reset_time` and `X-RateLimit-Reset` as an epoch
second at which the allowance comes back, which is what a fixed window (aligned to
the epoch, as in the spec's `1640995260`) gives exactly and in O(1) memory; a
sliding log would need one timestamp per event, too much for a stream allowed
millions of events a minute. The price, a burst of up to 2x at a window edge, is
the one real provider quotas accept too. Windows run on wall-clock epoch seconds so
that counts kept in Redis agree between processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quota:
    """The state of one window after a hit (or a look)."""

    limit: int
    remaining: int
    reset_at: float
    allowed: bool = True

    def retry_after(self, now: float) -> float:
        """Seconds until the window resets; 0 when the hit was allowed."""
        return 0.0 if self.allowed else max(self.reset_at - now, 0.0)

    def retry_after_seconds(self, now: float) -> int:
        """`retry_after` rounded up to whole seconds, at least 1 (for headers and bodies)."""
        return max(math.ceil(self.retry_after(now)), 1)


def window_bounds(now: float, window: float) -> tuple[int, float]:
    """The index of the window holding `now` and the epoch second it ends."""
    index = int(now // window)
    return index, (index + 1) * window


class FixedWindow:
    """One counter: `limit` hits per `window` seconds."""

    __slots__ = ("_count", "_index", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._index = -1
        self._count = 0

    def _roll(self, now: float) -> float:
        index, reset_at = window_bounds(now, self.window)
        if index != self._index:
            self._index, self._count = index, 0
        return reset_at

    def hit(self, now: float) -> Quota:
        """Take one unit if the window has one left."""
        reset_at = self._roll(now)
        if self._count >= self.limit:
            return Quota(self.limit, 0, reset_at, allowed=False)
        self._count += 1
        return Quota(self.limit, self.limit - self._count, reset_at)

    def peek(self, now: float) -> Quota:
        reset_at = self._roll(now)
        remaining = self.limit - self._count
        return Quota(self.limit, remaining, reset_at, allowed=remaining > 0)

    def ended(self, now: float) -> bool:
        return int(now // self.window) != self._index


class KeyedWindows:
    """A `FixedWindow` per key (client address, connection); idle keys are pruned."""

    PRUNE_AT = 1024

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, FixedWindow] = {}

    def hit(self, key: str, now: float) -> Quota:
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.PRUNE_AT:
                self._windows = {k: w for k, w in self._windows.items() if not w.ended(now)}
            window = self._windows[key] = FixedWindow(self.limit, self.window)
        return window.hit(now)

    def forget(self, key: str) -> None:
        self._windows.pop(key, None)

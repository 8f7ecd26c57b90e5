"""Sliding-window rate limits, as the specs state them ("5 requests per 60 seconds").

A sliding log (not a fixed window) so that a burst at a window edge cannot double
the allowance; memory is bounded by `limit` timestamps per key.
"""

from __future__ import annotations

from collections import deque

from backends.common.clock import Clock


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_seconds: float, clock: Clock) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def acquire(self, key: str) -> float:
        """Record a request; 0.0 when allowed, else the seconds until one would be."""
        now = self._clock.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(self.window - (now - hits[0]), 0.001)
        hits.append(now)
        return 0.0

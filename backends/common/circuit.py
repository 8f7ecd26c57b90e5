"""A small circuit breaker, so a dead destination costs one probe per interval, not every batch.

closed --(failure_threshold consecutive failed batches)--> open
open --(reset_seconds elapsed; the next `allow()` is the probe)--> half_open
half_open --(success)--> closed, --(failure)--> open again (another trip).

Several batches may be in flight when the breaker trips; their late results are
ignored while it is open, since they say nothing newer than the failure that
opened it. In half-open only one probe is let through per `reset_seconds`: if a
probe's result never comes back (say its batch was cancelled), the next one goes
after another interval instead of the breaker staying stuck.
"""

from __future__ import annotations

from typing import Literal

from backends.common.clock import Clock

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_seconds: float, clock: Clock) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_seconds <= 0:
            raise ValueError("reset_seconds must be positive")
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._state: CircuitState = "closed"
        self._failures = 0
        self._next_probe_at = 0.0
        self.trips = 0

    @property
    def state(self) -> CircuitState:
        """`half_open` as soon as a probe may go, even before anyone asked `allow()`."""
        if self._state == "open" and self._clock.monotonic() >= self._next_probe_at:
            return "half_open"
        return self._state

    def allow(self) -> bool:
        """May a batch be sent now? In half-open, True exactly once per interval (the probe)."""
        if self._state == "closed":
            return True
        now = self._clock.monotonic()
        if now < self._next_probe_at:
            return False
        self._state = "half_open"
        self._next_probe_at = now + self._reset
        return True

    def record_success(self) -> None:
        if self._state == "open":
            return
        self._state = "closed"
        self._failures = 0

    def record_failure(self) -> None:
        if self._state == "open":
            return
        if self._state == "half_open":
            self._trip()
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._trip()

    def _trip(self) -> None:
        self._state = "open"
        self._failures = 0
        self._next_probe_at = self._clock.monotonic() + self._reset
        self.trips += 1

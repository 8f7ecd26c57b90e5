"""How late the UI loop runs: the responsiveness figure of the console benches."""

from __future__ import annotations

import statistics
import time

from textual.app import App

TICK = 0.02


class LagProbe:
    """A timer on the UI loop that records how late each tick fires."""

    def __init__(self, app: App[None]) -> None:
        self.app = app
        self.lags: list[float] = []
        self._expected = 0.0
        self._timer = None

    def start(self) -> None:
        self.lags.clear()
        self._expected = time.perf_counter() + TICK
        self._timer = self.app.set_interval(TICK, self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lags.append(max(now - self._expected, 0.0))
        self._expected = now + TICK

    def stop(self) -> dict[str, float]:
        if self._timer is not None:
            self._timer.stop()
        lags = sorted(self.lags) or [0.0]
        return {
            "ticks": len(self.lags),
            "median_ms": statistics.median(lags) * 1000,
            "p99_ms": lags[int(len(lags) * 0.99) - 1 if len(lags) > 1 else 0] * 1000,
            "max_ms": lags[-1] * 1000,
        }

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


def lag_line(name: str, messages: int, seconds: float, lag: dict[str, float]) -> str:
    """One row of a bench table: rate and how late the UI loop ran."""
    return (
        f"  {name:<26} {seconds:6.2f} s {messages / seconds:>10,.0f} msg/s   UI lag: "
        f"median {lag['median_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms, "
        f"max {lag['max_ms']:.1f} ms ({lag['ticks']:.0f} ticks)"
    )

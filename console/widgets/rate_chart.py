"""Events per second over the last minutes, from deltas of the server's counters.

Rates come from successive statistics samples rather than the server's
`events_per_second` (a session average that hides bursts and stalls). Each point
spans a short smoothing window: bursts and polls tick at similar periods, and
single-poll deltas would alias into a saw of zeros and peaks. Both histories are
bounded deques, so a console left open for days uses constant memory.
"""

from __future__ import annotations

from collections import deque

from textual_plotext import PlotextPlot


class RateChart(PlotextPlot):
    def __init__(
        self,
        *,
        window_seconds: float = 300.0,
        smoothing_seconds: float = 2.0,
        max_points: int = 600,
        id: str,
    ) -> None:
        super().__init__(id=id)
        self.window_seconds = window_seconds
        self.smoothing_seconds = smoothing_seconds
        self._points: deque[tuple[float, float]] = deque(maxlen=max_points)
        self._readings: deque[tuple[float, int]] = deque(maxlen=64)

    @property
    def points(self) -> list[tuple[float, float]]:
        return list(self._points)

    def sample(self, at: float, total: int) -> None:
        """Feed a counter reading taken at monotonic time `at`; a reset restarts the baseline."""
        readings = self._readings
        if readings and total < readings[-1][1]:
            readings.clear()
        readings.append((at, total))
        while len(readings) > 2 and readings[1][0] <= at - self.smoothing_seconds:
            readings.popleft()
        first_at, first_total = readings[0]
        if at <= first_at:
            return
        self._points.append((at, (total - first_total) / (at - first_at)))
        while self._points and self._points[0][0] < at - self.window_seconds:
            self._points.popleft()
        self.replot()

    def on_mount(self) -> None:
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlim(-self.window_seconds, 0)
        if self._points:
            now = self._points[-1][0]
            plt.plot([t - now for t, _ in self._points], [r for _, r in self._points], marker="hd")
            plt.ylim(0, max(r for _, r in self._points) * 1.1 or 1)
            plt.title("events/s · seconds ago")
        else:
            plt.ylim(0, 1)
            plt.title("events/s — no samples yet")
        self.refresh()

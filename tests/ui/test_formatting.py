"""Pure helpers of the console: formatting, form parsing, rate computation."""

from __future__ import annotations

import pytest

from console.tabs.disruptions import parse_products, severity_text, short_id
from console.tabs.streams import event_ident, event_where
from console.widgets import formatting as fmt
from console.widgets.rate_chart import RateChart
from console.widgets.severity import severity_markup


def test_durations_and_counts() -> None:
    assert fmt.hms(451.9) == "00:07:31"
    assert fmt.mmss(750) == "12:30"
    assert fmt.mmss(-3) == "00:00"
    assert fmt.mmss(7 * 24 * 3600) == "10080:00"
    assert fmt.count(4812) == "4,812"
    assert fmt.rate(33.84) == "33.8"
    assert fmt.rate(4812.4) == "4,812"
    assert fmt.clock_time("2024-01-15T10:40:15.123Z") == "10:40:15.123"
    assert fmt.clock_time(None) == ""


@pytest.mark.parametrize(
    ("state", "tone"),
    [("healthy", "good"), ("degraded", "warn"), ("unhealthy", "bad"), ("whatever", "off")],
)
def test_tones(state: str, tone: str) -> None:
    assert fmt.tone_of(state) == tone


def test_products_and_ids() -> None:
    assert parse_products("101, 102 103") == [101, 102, 103]
    assert parse_products("  ") is None
    with pytest.raises(ValueError):
        parse_products("101, x")
    assert short_id("disruption_x7y8z9") == "disr_x7y8z9"
    assert [severity_text(s) for s in (1.0, 0.7, 0.75)] == ["1.0", "0.7", "0.75"]


def test_event_columns() -> None:
    receipt = {"event_type": "receipt_created", "payload": {"store_id": 42, "receipt_id": "RCT_1"}}
    assert (event_where(receipt), event_ident(receipt)) == ("store 42", "RCT_1")
    stockout = {"payload": {"store_id": None, "dc_id": 5, "product_id": 1523}}
    assert (event_where(stockout), event_ident(stockout)) == ("dc 5", "product 1523")
    bare = {"trace_id": "TR_1", "partition_key": "store_7", "payload": {}}
    assert (event_where(bare), event_ident(bare)) == ("store 7", "TR_1")


def test_severity_bar() -> None:
    assert severity_markup(0.7).count("$error") == 1
    assert severity_markup(None) == "[$text-muted]▁▂▃▅▇[/]"


def test_rate_chart_smooths_and_bounds_its_history() -> None:
    chart = RateChart(id="chart", window_seconds=10, smoothing_seconds=2)
    for step in range(100):
        chart.sample(step * 0.5, step * 50)
    assert all(rate == pytest.approx(100.0) for _, rate in chart.points)
    assert chart.points[0][0] >= 49.5 - 10
    chart.sample(50.0, 10)  # a new session resets the counters
    chart.sample(51.0, 110)
    assert chart.points[-1][1] == pytest.approx(100.0)

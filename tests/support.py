"""Helpers shared by the test suites."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy and return it; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def assert_accounted(stats: dict[str, Any]) -> None:
    """The statistics invariant: every generated event is sent, failed or in flight."""
    assert stats["events_generated"] == (
        stats["events_sent_successfully"] + stats["events_failed"] + stats["events_in_flight"]
    ), stats

"""The circuit breaker's state machine, driven by a ManualClock."""

from __future__ import annotations

import pytest

from backends.common.circuit import CircuitBreaker
from backends.common.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, reset_seconds=30.0, clock=clock)


def test_starts_closed_and_allows(breaker: CircuitBreaker) -> None:
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.trips == 0


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.trips == 1
    assert not breaker.allow()


def test_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.trips == 0


def test_half_open_after_reset_lets_exactly_one_probe(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.advance(29.9)
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert not breaker.allow()
    assert not breaker.allow()


def test_probe_success_closes(breaker: CircuitBreaker, clock: ManualClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.trips == 1


def test_probe_failure_reopens_and_counts_a_trip(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.trips == 2
    assert not breaker.allow()
    clock.advance(30)
    assert breaker.allow()


def test_late_results_while_open_are_ignored(breaker: CircuitBreaker, clock: ManualClock) -> None:
    for _ in range(3):
        breaker.record_failure()
    breaker.record_success()  # a batch admitted before the trip finishing late
    assert breaker.state == "open"
    breaker.record_failure()
    assert breaker.trips == 1
    clock.advance(30)
    assert breaker.state == "half_open"


def test_lost_probe_allows_another_after_an_interval(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30)
    assert breaker.allow()  # the probe, whose result never arrives
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    assert breaker.trips == 1


def test_threshold_of_one(clock: ManualClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=1.0, clock=clock)
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.trips == 1


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0)])
def test_rejects_bad_parameters(clock: ManualClock, threshold: int, reset: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, reset_seconds=reset, clock=clock)

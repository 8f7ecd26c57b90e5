"""RetailService accounting, failure handling and circuit breaking.

The sinks here are test doubles of the `Sink` interface that fail or stall on
purpose; the real sinks are tested against real Kafka and Redis elsewhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backends.common.clock import ManualClock, SystemClock
from backends.common.errors import BadRequest, Conflict, ServiceError
from backends.retail.models import StartRequest
from backends.retail.service import RetailService
from backends.retail.sinks.base import Event, SendResult, Sink, SinkNotConfigured, SinkTestResult
from backends.settings import Settings
from tests.support import assert_accounted


class ScriptedSink(Sink):
    """Delivers, fails or stalls as a test tells it to."""

    kind = "scripted"

    def __init__(
        self,
        *,
        fail: str | None = None,
        gate: asyncio.Event | None = None,
        open_error: Exception | None = None,
        raise_in_send: bool = False,
    ) -> None:
        self.fail = fail
        self.gate = gate
        self.open_error = open_error
        self.raise_in_send = raise_in_send
        self.received: list[Event] = []
        self.closed = False

    async def open(self) -> None:
        if self.open_error:
            raise self.open_error

    async def send(self, events: list[Event]) -> SendResult:
        if self.gate is not None:
            await self.gate.wait()
        if self.raise_in_send:
            raise RuntimeError("sink bug")
        result = SendResult()
        if self.fail:
            result.fail(len(events), self.fail)
            result.connection_failure = True
            return result
        self.received.extend(events)
        result.sent = len(events)
        result.bytes_sent = 100 * len(events)
        return result

    async def close(self) -> None:
        self.closed = True

    async def test(self) -> SinkTestResult:
        return SinkTestResult(True, "ok", 1.0)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


def make_service(sink: Sink, clock: Any = None, **retail: Any) -> RetailService:
    settings = Settings()
    settings.retail = settings.retail.model_copy(update=retail)
    return RetailService(settings, clock=clock or SystemClock(), sink_factory=lambda *_: sink)


async def wait_until(predicate: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_every_event_reaches_the_sink_and_is_counted() -> None:
    sink = ScriptedSink()
    service = make_service(sink, max_batch_size=64)
    await service.start(StartRequest(emit_interval_ms=1, burst=200))
    await wait_until(lambda: service.statistics().events_generated >= 2000)
    await service.stop()
    stats = service.statistics()
    assert_accounted(stats.model_dump())
    assert stats.events_sent_successfully == stats.events_generated == len(sink.received)
    assert stats.bytes_sent == 100 * len(sink.received)
    assert stats.batches_sent >= stats.events_generated // 64
    assert sink.closed


async def test_in_flight_events_are_accounted_while_the_sink_stalls() -> None:
    gate = asyncio.Event()
    sink = ScriptedSink(gate=gate)
    service = make_service(sink, max_batch_size=50, max_in_flight_batches=3)
    await service.start(StartRequest(emit_interval_ms=1, burst=100))
    # three batches are at the sink, the fourth waits for a slot; all count as in flight
    await wait_until(lambda: service.statistics().events_in_flight == 200)
    await asyncio.sleep(0.05)
    stats = service.statistics()
    assert stats.events_in_flight == 200
    assert stats.events_generated == 200
    assert stats.events_sent_successfully == 0
    assert_accounted(stats.model_dump())
    gate.set()
    await service.stop()
    final = service.statistics()
    assert final.events_in_flight == 0
    assert final.events_sent_successfully == final.events_generated
    assert_accounted(final.model_dump())


async def test_failures_are_counted_and_the_circuit_opens() -> None:
    clock = ManualClock()
    sink = ScriptedSink(fail="connection_timeout")
    service = make_service(
        sink,
        clock=clock,
        max_batch_size=10,
        circuit_breaker_failure_threshold=3,
        max_in_flight_batches=1,
    )
    await service.start(StartRequest(emit_interval_ms=1, burst=10))
    await wait_until(lambda: service.statistics().error_counts.get("circuit_open", 0) >= 50)
    await service.stop()
    stats = service.statistics()
    assert_accounted(stats.model_dump())
    assert stats.events_sent_successfully == 0
    assert stats.error_counts["connection_timeout"] == 30  # three batches before it opened
    assert stats.connection_failures == 3
    assert stats.circuit_breaker_trips == 1
    assert stats.events_failed == stats.events_generated
    health = service.health()
    assert health.status == "unhealthy"
    assert health.checks["sink"]["circuit_breaker"] == "open"

    sink.fail = None
    clock.advance(31)  # the breaker lets a probe through, which now succeeds
    await service.start(StartRequest(emit_interval_ms=1, burst=10))
    await wait_until(lambda: service.statistics().events_sent_successfully >= 100)
    await service.stop()
    assert service.health().checks["sink"]["circuit_breaker"] == "closed"


async def test_a_sink_that_raises_loses_no_accounting() -> None:
    service = make_service(ScriptedSink(raise_in_send=True), circuit_breaker_enabled=False)
    await service.start(StartRequest(emit_interval_ms=1, burst=20))
    await wait_until(lambda: service.statistics().events_failed >= 100)
    await service.stop()
    stats = service.statistics()
    assert_accounted(stats.model_dump())
    assert stats.error_counts["unexpected_RuntimeError"] == stats.events_failed


async def test_sink_open_errors() -> None:
    service = make_service(ScriptedSink(open_error=SinkNotConfigured("x not configured")))
    with pytest.raises(BadRequest, match="x not configured"):
        await service.start(StartRequest())
    service = make_service(ScriptedSink(open_error=ConnectionRefusedError("refused")))
    with pytest.raises(ServiceError) as caught:
        await service.start(StartRequest())
    assert caught.value.status_code == 503
    assert not service.is_streaming


async def test_start_uses_configured_defaults_and_conflicts() -> None:
    service = make_service(ScriptedSink(), emit_interval_ms=3_600_000, burst=7)
    await service.start(StartRequest.model_validate({}))
    await wait_until(lambda: service.statistics().events_generated == 7)
    with pytest.raises(Conflict):
        await service.start(StartRequest())
    await service.stop()


async def test_same_seed_same_events() -> None:
    async def run() -> list[Event]:
        service = make_service(ScriptedSink(), clock=ManualClock(), emit_interval_ms=3_600_000)
        await service.start(StartRequest(burst=300))
        await wait_until(lambda: service.statistics().events_generated == 300)
        await service.stop()
        return service.recent_events(100).events

    assert await run() == await run()

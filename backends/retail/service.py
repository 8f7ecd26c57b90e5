"""The retail streaming service: the domain core behind `api.py`, with no HTTP in it.

One streaming session at a time. Each tick generates `burst` events, records them
in the memory buffer and statistics, and hands them to the sink in batches of
`max_batch_size`, keeping up to `max_in_flight_batches` deliveries running at
once so network sinks pipeline. Stopping lets the current tick and its deliveries
finish (within a grace period), so a stop loses nothing. Every generated event is
accounted for:
`events_generated == events_sent_successfully + events_failed + events_in_flight`.

Choices where the spec is silent:
- fields a start request leaves out come from the configuration (`PUT /stream/config`);
- statistics describe the current (or last) session and reset at each start;
- `events_per_second` is the session average, as in the spec's example;
- recent events are returned newest first, each envelope with a `timestamp` field;
- a sink that cannot connect at start answers 503 (the spec's 400 is kept for a
  missing Event Hub connection string and other missing settings);
- health counts an unconfigured Event Hub as degraded only when it is the chosen sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from backends.common.circuit import CircuitBreaker
from backends.common.clock import Clock, iso_z
from backends.common.errors import BadRequest, Conflict, ServiceError
from backends.retail.disruptions import DisruptionManager
from backends.retail.events import EVENT_TYPES
from backends.retail.generator import RetailGenerator
from backends.retail.models import (
    ConfigResponse,
    ConfigUpdate,
    DisruptionCreate,
    DisruptionCreated,
    DisruptionList,
    EventTypesResponse,
    HealthResponse,
    OperationResponse,
    RealtimeConfig,
    RecentEventsResponse,
    SinkTestResponse,
    StartRequest,
    StartResponse,
    StatisticsResponse,
    StatusResponse,
    StopResponse,
    SuccessResponse,
)
from backends.retail.sinklog import SinkLog, SinkPage
from backends.retail.sinks.base import Event, SendResult, Sink, SinkNotConfigured
from backends.retail.sinks.factory import build_sink
from backends.retail.world import World
from backends.settings import Settings

log = logging.getLogger(__name__)

SinkFactory = Callable[[str, Settings], Sink]
STOP_GRACE_SECONDS = 15.0  # a graceful stop lets deliveries finish; after this, cancel
_event_type = itemgetter("event_type")


@dataclass
class _Stats:
    generated: int = 0
    sent: int = 0
    failed: int = 0
    in_flight: int = 0
    batches: int = 0
    bytes_sent: int = 0
    connection_failures: int = 0
    type_counts: Counter[str] = field(default_factory=Counter)
    error_counts: Counter[str] = field(default_factory=Counter)
    last_event_time: str | None = None


@dataclass
class _Session:
    operation_id: str
    request: StartRequest
    event_types: frozenset[str] | None
    sink: Sink
    started_at: str
    started_mono: float
    stopped_mono: float | None = None
    task: asyncio.Task[None] | None = None
    error: str | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def _mask_connection_string(value: str | None) -> str | None:
    """Show where a connection string points, never its key."""
    if not value:
        return None
    parts = [p for p in value.split(";") if p]
    shown = [
        p if not p.lower().startswith("sharedaccesskey=") else "SharedAccessKey=***" for p in parts
    ]
    return ";".join(shown)


class RetailService:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        seed: int | None = None,
        sink_factory: SinkFactory = build_sink,
    ) -> None:
        self._settings = settings.model_copy(deep=True)
        self._clock = clock
        self._sink_factory = sink_factory
        seed = settings.retail.seed if seed is None else seed
        self._ids = random.Random(seed ^ 0x5EED)
        world = World.build(random.Random(seed))
        self.world = world
        self.disruptions = DisruptionManager(world=world, clock=clock, rng=random.Random(seed + 1))
        self._generator = RetailGenerator(
            world=world, clock=clock, rng=random.Random(seed + 2), disruptions=self.disruptions
        )
        retail = self._settings.retail
        self._breaker = CircuitBreaker(
            retail.circuit_breaker_failure_threshold, retail.circuit_breaker_reset_seconds, clock
        )
        self._recent: deque[Event] = deque(maxlen=retail.recent_events_buffer)
        self._sink_log = SinkLog(retail.memory_sink_retention)
        self._taps: list[Callable[[list[Event]], None]] = []
        self._stats = _Stats()
        self._session: _Session | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    def add_tap(self, tap: Callable[[list[Event]], None]) -> Callable[[], None]:
        """Hand every generated batch to `tap` too (in-process readers: the jobs reports);
        returns the function that removes it. A tap must be quick and must not raise."""
        self._taps.append(tap)
        return lambda: self._taps.remove(tap) if tap in self._taps else None

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def is_streaming(self) -> bool:
        session = self._session
        return session is not None and session.task is not None and not session.task.done()

    # -- streaming control -------------------------------------------------

    async def start(self, request: StartRequest) -> StartResponse:
        if self.is_streaming:
            raise Conflict("Streaming already active")
        retail = self._settings.retail
        defaults = {"emit_interval_ms": retail.emit_interval_ms, "burst": retail.burst}
        request = request.model_copy(
            update={k: v for k, v in defaults.items() if k not in request.model_fields_set}
        )
        event_types: frozenset[str] | None = None
        if request.event_types is not None:
            unknown = sorted(set(request.event_types) - set(EVENT_TYPES))
            if unknown:
                raise BadRequest(
                    f"Invalid event types: {', '.join(unknown)}. "
                    f"Valid types: {', '.join(EVENT_TYPES)}"
                )
            if not request.event_types:
                raise BadRequest("event_types must name at least one event type, or be null")
            event_types = frozenset(request.event_types)
        sink = await self._open_sink()
        self._stats = _Stats()
        self._recent.clear()
        self._slots = asyncio.Semaphore(self._settings.retail.max_in_flight_batches)
        session = _Session(
            operation_id=f"streaming_{self._token(8)}",
            request=request,
            event_types=event_types,
            sink=sink,
            started_at=iso_z(self._clock.now()),
            started_mono=self._clock.monotonic(),
        )
        self._session = session
        session.task = asyncio.create_task(self._run(session), name=session.operation_id)
        return StartResponse(
            success=True,
            message="Event streaming started",
            operation_id=session.operation_id,
            started_at=session.started_at,
        )

    async def stop(self) -> StopResponse:
        session = self._session
        if session is None or not self.is_streaming:
            raise BadRequest("No active streaming session")
        assert session.task is not None
        session.stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(session.task), STOP_GRACE_SECONDS)
        except TimeoutError:
            session.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.task
        return StopResponse(
            success=True, message="Event streaming stopped", operation_id=session.operation_id
        )

    async def aclose(self) -> None:
        if self.is_streaming:
            await self.stop()

    async def _open_sink(self) -> Sink:
        kind = self._settings.retail.sink
        sink = self._sink_factory(kind, self._settings)
        try:
            await sink.open()
        except SinkNotConfigured as exc:
            raise BadRequest(str(exc)) from exc
        except Exception as exc:
            with contextlib.suppress(Exception):
                await sink.close()
            raise ServiceError(
                f"Cannot connect to {kind} sink: {type(exc).__name__}: {exc}", status_code=503
            ) from exc
        return sink

    async def _run(self, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        request = session.request
        interval = request.emit_interval_ms / 1000
        deadline = (
            session.started_mono + request.duration_minutes * 60
            if request.duration_minutes
            else None
        )
        next_tick = loop.time()
        try:
            while deadline is None or self._clock.monotonic() < deadline:
                await self._tick(session, request.burst)
                next_tick += interval
                delay = next_tick - loop.time()
                if delay < -1.0:  # far behind: do not try to catch up in a burst storm
                    next_tick = loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(session.stopping.wait(), delay)
                else:
                    await asyncio.sleep(0)
                if session.stopping.is_set():
                    break
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.exception("streaming session %s failed", session.operation_id)
            session.error = f"{type(exc).__name__}: {exc}"
        finally:
            session.stopped_mono = self._clock.monotonic()
            await self._drain()
            with contextlib.suppress(Exception):
                await session.sink.close()

    async def _tick(self, session: _Session, burst: int) -> None:
        events = self._generator.generate(burst, session.event_types)
        if not events:
            return
        stats = self._stats
        stats.generated += len(events)
        stats.type_counts.update(map(_event_type, events))
        stats.last_event_time = events[-1]["ingest_timestamp"]
        self._recent.extend(events)
        if session.sink.kind == "memory":
            self._sink_log.append(events)
        for tap in self._taps:
            tap(events)
        size = self._settings.retail.max_batch_size
        assert self._slots is not None
        stats.in_flight += len(events)
        for start in range(0, len(events), size):
            batch = events[start : start + size]
            try:
                await self._slots.acquire()
            except asyncio.CancelledError:  # hard stop: what never left is failed, not lost
                unsent = len(events) - start
                stats.in_flight -= unsent
                stats.failed += unsent
                stats.error_counts["cancelled"] += unsent
                raise
            task = asyncio.create_task(self._deliver(session.sink, batch))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _deliver(self, sink: Sink, batch: list[Event]) -> None:
        count = len(batch)
        use_breaker = self._settings.retail.circuit_breaker_enabled
        try:
            if use_breaker and not self._breaker.allow():
                result = SendResult()
                result.fail(count, "circuit_open")
            else:
                try:
                    result = await sink.send(batch)
                except Exception as exc:  # a sink bug must not lose the accounting
                    log.exception("sink %s raised", sink.kind)
                    result = SendResult()
                    result.fail(count, f"unexpected_{type(exc).__name__}")
                if use_breaker:
                    if result.connection_failure or (result.failed and not result.sent):
                        self._breaker.record_failure()
                    else:
                        self._breaker.record_success()
            self._account(count, result)
        finally:
            assert self._slots is not None
            self._slots.release()

    def _account(self, count: int, result: SendResult) -> None:
        stats = self._stats
        unaccounted = count - result.sent - result.failed
        if unaccounted:
            result.fail(unaccounted, "unaccounted")
        stats.in_flight -= count
        stats.sent += result.sent
        stats.failed += result.failed
        stats.bytes_sent += result.bytes_sent
        stats.error_counts.update(result.errors)
        if result.sent:
            stats.batches += 1
        if result.connection_failure:
            stats.connection_failures += 1

    async def _drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # -- status and statistics ---------------------------------------------

    def _elapsed(self) -> float:
        session = self._session
        if session is None:
            return 0.0
        end = session.stopped_mono if session.stopped_mono is not None else self._clock.monotonic()
        return max(end - session.started_mono, 0.0)

    def _rate(self) -> float:
        elapsed = self._elapsed()
        return round(self._stats.sent / elapsed, 1) if elapsed > 0 else 0.0

    def status(self) -> StatusResponse:
        session = self._session
        streaming = self.is_streaming
        state = "running" if streaming else ("error" if session and session.error else "stopped")
        return StatusResponse(
            is_streaming=streaming,
            status=state,
            uptime_seconds=round(self._elapsed(), 1) if streaming else 0.0,
            events_sent=self._stats.sent,
            events_per_second=self._rate(),
            last_event_time=self._stats.last_event_time,
            error=session.error if session and session.error else None,
        )

    def statistics(self) -> StatisticsResponse:
        stats = self._stats
        return StatisticsResponse(
            events_generated=stats.generated,
            events_sent_successfully=stats.sent,
            events_failed=stats.failed,
            batches_sent=stats.batches,
            total_streaming_time=round(self._elapsed(), 1),
            events_per_second=self._rate(),
            bytes_sent=stats.bytes_sent,
            last_event_time=stats.last_event_time,
            event_type_counts=dict(stats.type_counts),
            error_counts=dict(stats.error_counts),
            connection_failures=stats.connection_failures,
            circuit_breaker_trips=self._breaker.trips,
            events_in_flight=stats.in_flight,
        )

    def recent_events(self, limit: int) -> RecentEventsResponse:
        if not 1 <= limit <= 100:
            raise BadRequest("limit must be between 1 and 100")
        newest = list(self._recent)[-limit:]
        newest.reverse()
        events = [{"timestamp": e["ingest_timestamp"], **e} for e in newest]
        return RecentEventsResponse(
            events=events, count=len(events), timestamp=iso_z(self._clock.now())
        )

    def sink_events(self, after: int, limit: int) -> SinkPage:
        """Events held by the memory sink after sequence number `after` (see sinklog.py)."""
        if after < 0:
            raise BadRequest("after must be >= 0")
        if not 1 <= limit <= 10_000:
            raise BadRequest("limit must be between 1 and 10000")
        return self._sink_log.read(after, limit)

    def health(self) -> HealthResponse:
        session = self._session
        streaming = self.is_streaming
        retail = self._settings.retail
        eventhub = self._settings.eventhub
        stats = self._stats
        done = stats.sent + stats.failed
        failure_rate = round(stats.failed / done, 4) if done else 0.0
        task_check: dict[str, Any] = {
            "status": "active"
            if streaming
            else ("error" if session and session.error else "inactive"),
            "task_status": self.status().status,
            "uptime_seconds": round(self._elapsed(), 1) if streaming else 0,
        }
        if session and session.error:
            task_check["error"] = session.error
        hub_configured = bool(eventhub.connection_string)
        azure_check = {
            "status": "configured" if hub_configured else "not_configured",
            "hub_name": eventhub.eventhub_name,
        }
        sink_check: dict[str, Any] = {
            "status": "healthy" if self._breaker.state == "closed" else "unhealthy",
            "kind": retail.sink,
            "circuit_breaker": self._breaker.state
            if retail.circuit_breaker_enabled
            else "disabled",
        }
        if session is not None:
            sink_check.update(session.sink.describe())
        stats_status = (
            "healthy" if failure_rate < 0.05 else "degraded" if failure_rate < 0.5 else "unhealthy"
        )
        stats_check = {
            "status": stats_status,
            "events_generated": stats.generated,
            "events_per_second": self._rate(),
            "failure_rate": failure_rate,
        }
        if (
            task_check["status"] == "error"
            or stats_status == "unhealthy"
            or (streaming and self._breaker.state == "open")
        ):
            overall = "unhealthy"
        elif (
            stats_status == "degraded"
            or self._breaker.state != "closed"
            or (retail.sink == "eventhub" and not hub_configured)
        ):
            overall = "degraded"
        else:
            overall = "healthy"
        return HealthResponse(
            status=overall,
            timestamp=iso_z(self._clock.now()),
            checks={
                "streaming_task": task_check,
                "azure_config": azure_check,
                "sink": sink_check,
                "statistics": stats_check,
            },
        )

    # -- configuration -----------------------------------------------------

    def get_config(self) -> ConfigResponse:
        retail = self._settings.retail
        stream: dict[str, Any] = {"hub": self._settings.eventhub.eventhub_name, "sink": retail.sink}
        if retail.sink == "kafka":
            stream["kafka_topic"] = self._settings.kafka.topic
        elif retail.sink == "redis":
            stream["redis_stream"] = self._settings.redis.retail_stream
        return ConfigResponse(
            realtime=RealtimeConfig(
                emit_interval_ms=retail.emit_interval_ms,
                burst=retail.burst,
                azure_connection_string=_mask_connection_string(
                    self._settings.eventhub.connection_string
                ),
                max_batch_size=retail.max_batch_size,
                batch_timeout_ms=retail.batch_timeout_ms,
                retry_attempts=retail.retry_attempts,
                circuit_breaker_enabled=retail.circuit_breaker_enabled,
                monitoring_interval=retail.monitoring_interval,
                sink=retail.sink,
            ),
            stream=stream,
            available_event_types=list(EVENT_TYPES),
        )

    def update_config(self, update: ConfigUpdate) -> SuccessResponse:
        if self.is_streaming:
            raise Conflict("Cannot update configuration while streaming is active")
        changes = update.model_dump(exclude_none=True)
        self._settings.retail = self._settings.retail.model_copy(update=changes)
        return SuccessResponse(success=True, message="Streaming configuration updated successfully")

    async def test_sink(self) -> SinkTestResponse:
        kind = self._settings.retail.sink
        session = self._session
        if session is not None and self.is_streaming:
            result = await session.sink.test()
        else:
            sink = self._sink_factory(kind, self._settings)
            started = self._clock.monotonic()
            try:
                await sink.open()
            except Exception as exc:
                elapsed = (self._clock.monotonic() - started) * 1000
                return SinkTestResponse(
                    success=False,
                    message=f"Connection test failed: {exc}",
                    response_time_ms=round(elapsed, 1),
                    details={"exception_type": type(exc).__name__, "sink": kind},
                )
            try:
                result = await sink.test()
            finally:
                with contextlib.suppress(Exception):
                    await sink.close()
        return SinkTestResponse(
            success=result.success,
            message=result.message,
            response_time_ms=round(result.response_time_ms, 1),
            details={"sink": kind, **result.details},
        )

    @staticmethod
    def event_types() -> EventTypesResponse:
        return EventTypesResponse(
            event_types=list(EVENT_TYPES),
            count=len(EVENT_TYPES),
            description="Available event types for real-time streaming",
        )

    # -- disruptions -------------------------------------------------------

    def create_disruption(self, request: DisruptionCreate) -> DisruptionCreated:
        disruption = self.disruptions.create(request)
        return DisruptionCreated(
            success=True,
            disruption_id=disruption.disruption_id,
            message=f"Created {disruption.type} disruption for target {disruption.target_id}",
            active_until=iso_z(disruption.active_until),
        )

    def list_disruptions(self) -> DisruptionList:
        items = [self.disruptions.info(d) for d in self.disruptions.active()]
        return DisruptionList(
            disruptions=items, count=len(items), timestamp=iso_z(self._clock.now())
        )

    def cancel_disruption(self, disruption_id: str) -> OperationResponse:
        disruption = self.disruptions.cancel(disruption_id)
        return OperationResponse(
            success=True,
            message=f"Cancelled disruption {disruption.disruption_id}",
            operation_id=disruption.disruption_id,
        )

    def clear_disruptions(self) -> SuccessResponse:
        count = self.disruptions.clear_all()
        noun = "disruption" if count == 1 else "disruptions"
        return SuccessResponse(success=True, message=f"Cleared {count} active {noun}")

    def _token(self, length: int) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._ids.choice(alphabet) for _ in range(length))

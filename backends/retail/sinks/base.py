"""The sink interface: where generated events go besides the always-on memory buffer.

A sink takes a batch of envelope dicts and reports what happened to every one of
them, so the service can keep `events_generated == sent + failed + in flight`.
Sinks never raise for delivery problems; they classify them into `errors`
(kinds such as `connection_timeout`, `throttling`, `connection_error`,
`serialization`, `message_too_large`) and the service counts them.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0
    bytes_sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    connection_failure: bool = False

    def fail(self, count: int, kind: str) -> None:
        self.failed += count
        self.errors[kind] = self.errors.get(kind, 0) + count

    def fail_with(
        self,
        count: int,
        exc: BaseException,
        classify: Callable[[BaseException], tuple[str, bool]],
        log: logging.Logger,
    ) -> bool:
        """Account `count` events failed by `exc`; True when the destination is unreachable."""
        kind, unreachable = classify(exc)
        if kind == "unknown":
            log.warning("unclassified delivery error", exc_info=exc)
        self.fail(count, kind)
        self.connection_failure |= unreachable
        return unreachable


@dataclass
class SinkTestResult:
    success: bool
    message: str
    response_time_ms: float
    details: dict[str, Any] = field(default_factory=dict)


async def timed_probe(probe: Callable[[], Awaitable[dict[str, Any]]]) -> SinkTestResult:
    """Run a sink's real round trip, timed, and answer as `POST /stream/test` does."""
    started = time.perf_counter()
    try:
        details = await probe()
    except Exception as exc:
        first_line = str(exc).split("\n", 1)[0] or type(exc).__name__
        return SinkTestResult(
            success=False,
            message=f"Connection test failed: {first_line}",
            response_time_ms=_ms_since(started),
            details={"exception_type": type(exc).__name__},
        )
    return SinkTestResult(
        success=True,
        message="Connection test successful",
        response_time_ms=_ms_since(started),
        details=details,
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class SinkNotConfigured(Exception):
    """Raised by `open()` when the sink lacks required settings (the API answers 400)."""


class Sink(ABC):
    kind: str

    @abstractmethod
    async def open(self) -> None:
        """Connect; raise `SinkNotConfigured` when settings are missing."""

    @abstractmethod
    async def send(self, events: list[Event]) -> SendResult:
        """Deliver a batch and account for every event in it."""

    @abstractmethod
    async def close(self) -> None:
        """Flush what is pending and disconnect."""

    @abstractmethod
    async def test(self) -> SinkTestResult:
        """A real round trip to the destination, timed."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What health and config report about this sink (never secrets)."""

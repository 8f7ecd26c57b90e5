"""The `memory` sink: events go nowhere beyond the service's own recent-events buffer.

It is the embedded default and the bench's ceiling (250k events/s end to end), so
`send()` does constant work per batch. It reports `bytes_sent = 0`: nothing is
serialised or delivered, and serialising only to count bytes would cost more per
event than everything else this sink does.
"""

from __future__ import annotations

from typing import Any

from backends.retail.sinks.base import Event, SendResult, Sink, SinkTestResult, timed_probe


class MemorySink(Sink):
    kind = "memory"

    async def open(self) -> None:
        return None

    async def send(self, events: list[Event]) -> SendResult:
        return SendResult(sent=len(events))

    async def close(self) -> None:
        return None

    async def test(self) -> SinkTestResult:
        async def probe() -> dict[str, Any]:
            return {"kind": self.kind}

        return await timed_probe(probe)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

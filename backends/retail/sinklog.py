"""What the memory sink holds: the last N events delivered to it, numbered 1, 2, 3, ...

The memory sink itself keeps nothing (see sinks/memory.py: it is the bench's
ceiling). When the `memory` sink is chosen the service also appends every generated
batch here, by reference and in O(1) per batch, so readers in any process can page
through it over `GET /api/stream/sink/events?after=SEQ&limit=N` (NDJSON; the
validation engine's `memory` source). Sequence numbers never restart while the
service lives, so `after` stays valid across sessions; the oldest batches are
dropped once more than `capacity` events are held (whole batches, so a little
more may be kept).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from backends.retail.sinks.base import Event


@dataclass
class SinkPage:
    first_seq: int  # sequence number of events[0]; latest_seq + 1 when empty
    events: list[Event]
    oldest_seq: int  # the oldest event still held (latest_seq + 1 when none)
    latest_seq: int  # the newest event ever appended (0 before the first)


class SinkLog:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: deque[tuple[int, list[Event]]] = deque()  # (first seq, events)
        self._held = 0
        self.latest_seq = 0

    @property
    def oldest_seq(self) -> int:
        return self._chunks[0][0] if self._chunks else self.latest_seq + 1

    def append(self, events: list[Event]) -> None:
        if not events or self.capacity <= 0:
            return
        self._chunks.append((self.latest_seq + 1, events))
        self.latest_seq += len(events)
        self._held += len(events)
        while self._held - len(self._chunks[0][1]) >= self.capacity:
            self._held -= len(self._chunks.popleft()[1])

    def read(self, after: int, limit: int) -> SinkPage:
        """Up to `limit` events with sequence numbers > `after`, oldest first."""
        start = max(after + 1, self.oldest_seq)
        events: list[Event] = []
        for first, chunk in self._chunks:
            if first + len(chunk) <= start:
                continue
            skip = max(start - first, 0)
            events.extend(chunk[skip : skip + limit - len(events)])
            if len(events) >= limit:
                break
        first_seq = start if events else self.latest_seq + 1
        return SinkPage(first_seq, events, self.oldest_seq, self.latest_seq)

"""What every validation source yields and reports (see sources.py for the sources).

A source is an async context manager whose `batches()` yields `Batch`es: a polars
frame of decoded rows plus row-aligned partition and offset columns, so a failing
value can always be traced to the message it came from. `stats` is complete once
`batches()` is exhausted.

`messages` counts every message consumed, decoded or skipped; skipped ones are
also listed in `skipped` with their partition, offset and the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

import polars as pl

ProgressCallback = Callable[[int, int | None], None]


@dataclass
class Batch:
    frame: pl.DataFrame
    partitions: pl.Series  # Int32, row-aligned (0 for sources without partitions)
    offsets: pl.Series  # Int64, row-aligned: Kafka offset, sequence number, line number


@dataclass
class Skipped:
    partition: int
    offset: int
    reason: str


@dataclass
class PartitionStats:
    partition: int
    messages: int = 0
    first_offset: int | None = None
    last_offset: int | None = None


@dataclass
class ConsumptionStats:
    source: str
    partitions: dict[int, PartitionStats] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    messages: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    stopped_by: str = ""  # "end" | "max_messages" | "timeout" | "closed"
    assigned_partitions: list[int] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(self.finished_at - self.started_at, 0.0)

    def count(self, partition: int, first: int, last: int, messages: int) -> None:
        """Account `messages` consumed from `partition` with offsets in [first, last]."""
        stats = self.partitions.get(partition)
        if stats is None:
            stats = self.partitions[partition] = PartitionStats(partition)
        stats.messages += messages
        stats.first_offset = first if stats.first_offset is None else min(stats.first_offset, first)
        stats.last_offset = last if stats.last_offset is None else max(stats.last_offset, last)
        self.messages += messages


@runtime_checkable
class ValidationSource(Protocol):
    stats: ConsumptionStats

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: Any) -> None: ...

    def batches(
        self,
        *,
        max_messages: int | None = None,
        batch_size: int = 10_000,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[Batch]: ...


def empty_batch() -> Batch:
    return Batch(
        pl.DataFrame(), pl.Series("partition", [], pl.Int32), pl.Series("offset", [], pl.Int64)
    )

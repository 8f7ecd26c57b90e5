"""Decode a run of raw messages into a `Batch`: shared by every source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import polars as pl

from backends.validation.base import Batch, ConsumptionStats, Skipped
from backends.validation.deserializers import MessageDeserializer
from backends.validation.errors import DeserializationError

ExtraColumns = Callable[[list[int] | None], list[pl.Series]]


async def assemble(
    deserializer: MessageDeserializer,
    values: Sequence[bytes | None],
    partitions: list[int],
    offsets: list[int],
    *,
    strict: bool,
    stats: ConsumptionStats,
    extra: ExtraColumns | None = None,
) -> Batch:
    """Decode `values`; skip (or, strict, raise on) bad ones; account them in `stats`.

    `extra(kept)` returns metadata columns for the kept rows (`kept` None = all).
    """
    await deserializer.prepare(values)
    # polars releases the GIL: decoding in a thread lets the next fetch run meanwhile
    decoded = await asyncio.to_thread(deserializer.decode_batch, values)
    kept = decoded.kept
    for index, reason in decoded.errors:
        if strict:
            raise DeserializationError(
                f"message at partition {partitions[index]} offset {offsets[index]} "
                f"does not decode: {reason}",
                offset=offsets[index],
                partition=partitions[index],
            )
        stats.skipped.append(Skipped(partitions[index], offsets[index], reason))
    part_series = pl.Series("partition", partitions, dtype=pl.Int32)
    offset_series = pl.Series("offset", offsets, dtype=pl.Int64)
    if kept is not None:
        part_series = part_series.gather(kept)
        offset_series = offset_series.gather(kept)
    frame = decoded.frame
    if extra is not None:
        columns = extra(kept)
        if columns:
            frame = frame.with_columns(columns) if frame.width else pl.DataFrame(columns)
    return Batch(frame, part_series, offset_series)

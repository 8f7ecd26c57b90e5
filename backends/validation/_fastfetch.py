"""Batch-granular record delivery for one aiokafka consumer: the fetch hot path.

Profiling a bare `getmany` loop on retail envelopes puts ~80 % of the time in
aiokafka's per-record Python: a generator step, a `ConsumerRecord` built from ten
fields, `tuple(headers)`, sizes of key and value, and the list append and
`max_records` test in `FetchResult.getall`. Validation needs none of it per record.

`install(consumer)` makes that consumer's fetcher hand out one item per Kafka
record batch instead: a plain list of the C-decoded records (`offset`, `value`,
`key`, `timestamp`, `headers`), skipping records below the fetch position and
control batches exactly as aiokafka does, and keeping `next_fetch_offset` right so
positions, pausing and seeking behave as before. It swaps the iterator of each
`PartitionRecords` as the fetcher stores it (a dict subclass on
`Fetcher._records`); nothing global is patched, so other consumers in the process
are untouched. The consumer must use isolation_level read_uncommitted (aborted
transactional batches are not filtered here).

aiokafka internals used: `AIOKafkaConsumer._fetcher`, `Fetcher._records`,
`FetchResult._partition_records`, `PartitionRecords._records`, `._check_crcs`,
`._records_iterator`, `.next_fetch_offset`. When any is missing `install` returns
False and the caller reads `ConsumerRecord`s (same attribute names, slower).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import FetchResult, PartitionRecords
from aiokafka.errors import CorruptRecordException

_REQUIRED = ("_records", "_check_crcs", "_records_iterator", "next_fetch_offset")


def _chunks(partition_records: PartitionRecords) -> Iterator[list[Any]]:
    records = partition_records._records
    check_crcs = partition_records._check_crcs
    while records.has_next():
        batch = records.next_batch()
        if check_crcs and not batch.validate_crc():
            raise CorruptRecordException(f"Invalid CRC - {partition_records._tp}")
        if batch.is_control_batch:
            partition_records.next_fetch_offset = batch.next_offset
            continue
        chunk = list(batch)
        position = partition_records.next_fetch_offset
        if chunk and chunk[0].offset < position:  # a batch that starts before a seek
            chunk = [record for record in chunk if record.offset >= position]
        partition_records.next_fetch_offset = batch.next_offset
        if chunk:
            yield chunk


class _ChunkingRecords(OrderedDict[Any, Any]):
    def __setitem__(self, key: Any, value: Any) -> None:
        if type(value) is FetchResult:
            partition_records = getattr(value, "_partition_records", None)
            if type(partition_records) is PartitionRecords:
                partition_records._records_iterator = _chunks(partition_records)
        super().__setitem__(key, value)


def install(consumer: AIOKafkaConsumer) -> bool:
    """Switch a started consumer to per-batch delivery; False when aiokafka differs."""
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_records", None)
    probe = PartitionRecords.__init__.__code__.co_names
    if not isinstance(current, OrderedDict) or current or "_records_iterator" not in probe:
        return False
    if not all(name in probe for name in _REQUIRED):
        return False
    fetcher._records = _ChunkingRecords()  # type: ignore[union-attr]
    return True

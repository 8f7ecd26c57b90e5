"""Every validation source behind one interface: Kafka, the retail memory sink, a Redis
stream, a JSONL file. `open_source(spec, **options)` picks one from a spec string.

Specs:
- `kafka://b1:9092,b2:9092/topic[?field=value]` — `KafkaDataSource`; options are
  `KafkaDataSourceConfig` fields (`group_id`, `partitions`, `use_group_assignment`,
  security, ...). Here, unlike the spec's config defaults, `group_id` defaults to None
  (re-running a validation re-reads the topic) and `max_messages` to None (bounded
  by the end offsets only); pass `group_id=` for consumer-group semantics.
- `memory` — the embedded retail generator's memory sink, read over the retail HTTP
  API (`GET {retail_url}/stream/sink/events?after=SEQ&limit=N`, NDJSON); offsets are
  the sink's sequence numbers; `retail_url` defaults to STREAMOPS_RETAIL_URL, else
  `http://localhost:8000/api`.
- `redis://host:port/db?stream=KEY[&field=data]` — a Redis stream read with XRANGE
  pages; the JSON is in field `data` (as the retail Redis sink writes it); offsets
  count entries from 0 in the run, and `include_metadata` adds the entry id.
- `file:PATH`, or a path ending .jsonl/.ndjson/.json — JSON lines (offsets are 1-based
  line numbers, blank lines ignored); a .json file holding an array is read whole
  (offsets are array indices).
Each source stops at what existed when it started (the stream's last id, the sink's
latest sequence, the end of the file), at `max_messages`, or after `consume_timeout`
seconds without progress.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import orjson
import polars as pl
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from backends.common.clock import Clock, SystemClock
from backends.validation.assemble import assemble
from backends.validation.base import (
    Batch,
    ConsumptionStats,
    PartitionStats,
    ProgressCallback,
    Skipped,
    ValidationSource,
)
from backends.validation.config import StreamingDataSourceConfig
from backends.validation.deserializers import build_deserializer
from backends.validation.errors import SourceError, StreamingDataSourceError
from backends.validation.kafka_source import KafkaDataSource

__all__ = [
    "BaseStreamingDataSource",
    "Batch",
    "ConsumptionStats",
    "FileSource",
    "MemorySinkSource",
    "PartitionStats",
    "RedisStreamSource",
    "Skipped",
    "ValidationSource",
    "open_source",
]

DEFAULT_RETAIL_URL = "http://localhost:8000/api"
RETAIL_URL_ENV = "STREAMOPS_RETAIL_URL"
SINK_PAGE_LIMIT = 10_000  # the retail API's largest page
_COMMON = set(StreamingDataSourceConfig.model_fields)


class BaseStreamingDataSource:
    """Base of custom streaming sources (and of the non-Kafka ones here).

    A subclass implements `_pages(limit, page)`, yielding (raw values, offsets,
    metadata columns) pages; this class decodes, counts, bounds and reports them.
    """

    kind = "paged"

    def __init__(self, config: StreamingDataSourceConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or SystemClock()
        self._deserializer = build_deserializer(config)
        self.stats = ConsumptionStats(source=self.describe())

    def describe(self) -> str:
        return self.kind

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def _pages(
        self, limit: int | None, page: int
    ) -> AsyncIterator[tuple[list[bytes | None], list[int], list[pl.Series]]]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def batches(
        self,
        *,
        max_messages: int | None = None,
        batch_size: int = 10_000,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[Batch]:
        limit = max_messages if max_messages is not None else self.config.max_messages
        clock = self._clock
        stats = self.stats = ConsumptionStats(source=self.describe(), started_at=clock.monotonic())
        stats.assigned_partitions = [0]
        stats.stopped_by = "end"
        consumed = 0
        try:
            async for values, offsets, extra in self._pages(limit, max(1, batch_size)):
                if not values:
                    continue

                def columns(
                    kept: list[int] | None, extra: list[pl.Series] = extra
                ) -> list[pl.Series]:
                    return extra if kept is None else [c.gather(kept) for c in extra]

                batch = await assemble(
                    self._deserializer,
                    values,
                    [0] * len(values),
                    offsets,
                    strict=self.config.strict,
                    stats=stats,
                    extra=columns if extra else None,
                )
                stats.count(0, offsets[0], offsets[-1], len(values))
                consumed += len(values)
                if on_progress is not None:
                    on_progress(consumed, limit)
                yield batch
                if limit is not None and consumed >= limit:
                    stats.stopped_by = "max_messages"
                    break
        finally:
            stats.finished_at = clock.monotonic()


class FileSource(BaseStreamingDataSource):
    """JSON lines from a file (or a JSON array in a .json file)."""

    kind = "file"

    def __init__(
        self, path: str | Path, config: StreamingDataSourceConfig, *, clock: Clock | None = None
    ) -> None:
        self.path = Path(path)
        super().__init__(config, clock=clock)

    def describe(self) -> str:
        return f"file:{self.path}"

    async def __aenter__(self) -> Self:
        if not self.path.is_file():
            raise SourceError(f"no such file: {self.path}")
        return self

    async def _pages(
        self, limit: int | None, page: int
    ) -> AsyncIterator[tuple[list[bytes | None], list[int], list[pl.Series]]]:
        prefix = self.config.metadata_prefix
        if self.path.suffix == ".json" and _starts_with_bracket(self.path):
            try:
                items = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise StreamingDataSourceError(f"{self.path} is not valid JSON: {exc}") from exc
            if not isinstance(items, list):
                raise StreamingDataSourceError(f"{self.path}: expected a JSON array")
            items = items if limit is None else items[:limit]
            for start in range(0, len(items), page):
                chunk = items[start : start + page]
                values: list[bytes | None] = [orjson.dumps(item) for item in chunk]
                offsets = list(range(start, start + len(chunk)))
                yield values, offsets, self._meta(prefix, offsets)
            return
        remaining = limit
        values, offsets = [], []
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                values.append(line)
                offsets.append(number)
                if remaining is not None:
                    remaining -= 1
                if len(values) >= page or remaining == 0:
                    yield values, offsets, self._meta(prefix, offsets)
                    values, offsets = [], []
                    if remaining == 0:
                        return
        if values:
            yield values, offsets, self._meta(prefix, offsets)

    def _meta(self, prefix: str, offsets: list[int]) -> list[pl.Series]:
        if not self.config.include_metadata:
            return []
        return [pl.Series(f"{prefix}line", offsets, dtype=pl.Int64)]


def _starts_with_bracket(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4096).lstrip()[:1] == b"["


class RedisStreamSource(BaseStreamingDataSource):
    """A Redis stream, read with XRANGE pages up to the last entry present at start."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        stream: str,
        config: StreamingDataSourceConfig,
        *,
        field: str = "data",
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.field = field.encode()
        self._client: aioredis.Redis | None = None
        super().__init__(config, clock=clock)

    def describe(self) -> str:
        return f"{self.url}?stream={self.stream}"

    async def __aenter__(self) -> Self:
        client = aioredis.from_url(
            self.url, socket_connect_timeout=self.config.consume_timeout, socket_timeout=30
        )
        try:
            await client.ping()
        except (redis_errors.RedisError, OSError) as exc:
            await client.aclose()
            raise SourceError(f"cannot connect to Redis at {self.url}: {exc}") from exc
        self._client = client
        return self

    async def __aexit__(self, *exc: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _pages(
        self, limit: int | None, page: int
    ) -> AsyncIterator[tuple[list[bytes | None], list[int], list[pl.Series]]]:
        client = self._client
        if client is None:
            raise SourceError("the source is not open: use `async with source:`")
        try:
            last = await client.xrevrange(self.stream, count=1)
        except redis_errors.ResponseError as exc:
            raise StreamingDataSourceError(f"{self.stream}: {exc}") from exc
        if not last:
            return
        stop_id = last[0][0]
        start = b"-"
        ordinal = 0
        prefix = self.config.metadata_prefix
        while limit is None or ordinal < limit:
            count = page if limit is None else min(page, limit - ordinal)
            entries = await client.xrange(self.stream, min=start, max=stop_id, count=count)
            if not entries:
                return
            values = [fields.get(self.field) for _, fields in entries]
            offsets = list(range(ordinal, ordinal + len(entries)))
            ordinal += len(entries)
            extra = []
            if self.config.include_metadata:
                ids = [entry_id.decode() for entry_id, _ in entries]
                extra = [pl.Series(f"{prefix}id", ids, dtype=pl.String)]
            yield values, offsets, extra
            if entries[-1][0] == stop_id:
                return
            start = b"(" + entries[-1][0]


class MemorySinkSource(BaseStreamingDataSource):
    """The retail memory sink, paged over `GET /stream/sink/events` (NDJSON)."""

    kind = "memory"

    def __init__(
        self, retail_url: str, config: StreamingDataSourceConfig, *, clock: Clock | None = None
    ) -> None:
        self.retail_url = retail_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None
        super().__init__(config, clock=clock)

    def describe(self) -> str:
        return f"memory ({self.retail_url})"

    async def __aenter__(self) -> Self:
        self._client = httpx.AsyncClient(
            base_url=self.retail_url, timeout=self.config.consume_timeout
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _page(self, after: int, limit: int) -> httpx.Response:
        assert self._client is not None
        try:
            response = await self._client.get(
                "/stream/sink/events", params={"after": after, "limit": limit}
            )
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach the retail API at {self.retail_url}: {exc}") from exc
        if response.is_error:
            raise SourceError(
                f"retail API {response.status_code} on /stream/sink/events: {response.text[:200]}"
            )
        return response

    async def _pages(
        self, limit: int | None, page: int
    ) -> AsyncIterator[tuple[list[bytes | None], list[int], list[pl.Series]]]:
        if self._client is None:
            raise SourceError("the source is not open: use `async with source:`")
        page = min(page, SINK_PAGE_LIMIT)
        after = 0
        latest: int | None = None
        taken = 0
        prefix = self.config.metadata_prefix
        while limit is None or taken < limit:
            want = page if limit is None else min(page, limit - taken)
            if latest is not None:
                want = min(want, latest - after)
                if want <= 0:
                    return
            response = await self._page(after, want)
            if latest is None:
                latest = int(response.headers["X-Sink-Latest-Seq"])
            lines = [line for line in response.content.split(b"\n") if line]
            if not lines:
                return
            first = int(response.headers["X-Sink-First-Seq"])
            seqs = list(range(first, first + len(lines)))
            keep = [i for i, seq in enumerate(seqs) if seq <= latest]
            if len(keep) < len(lines):
                lines = [lines[i] for i in keep]
                seqs = [seqs[i] for i in keep]
            if not lines:
                return
            taken += len(lines)
            after = seqs[-1]
            extra = (
                [pl.Series(f"{prefix}seq", seqs, dtype=pl.Int64)]
                if self.config.include_metadata
                else []
            )
            yield list(lines), seqs, extra


def open_source(spec: str, *, clock: Clock | None = None, **options: Any) -> ValidationSource:
    """A validation source from a spec string (see the module docstring)."""
    if spec.startswith("kafka://"):
        options.setdefault("group_id", None)
        options.setdefault("max_messages", None)
        if "group" in options:
            options["group_id"] = options.pop("group")
        return KafkaDataSource(
            KafkaDataSource.from_connection_string(spec, **options).config, clock=clock
        )
    retail_url = options.pop("retail_url", None)
    field = options.pop("field", None)
    options.setdefault("max_messages", None)
    unknown = set(options) - _COMMON
    if unknown:
        raise SourceError(f"unknown options for {spec!r}: {sorted(unknown)}")
    if spec == "memory" or spec.startswith("memory:"):
        options.setdefault("metadata_prefix", "_memory_")
        url = retail_url or os.environ.get(RETAIL_URL_ENV) or DEFAULT_RETAIL_URL
        return MemorySinkSource(url, StreamingDataSourceConfig(**options), clock=clock)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        parts = urlsplit(spec)
        query = parse_qs(parts.query)
        stream = (query.pop("stream", [None]))[0]
        if not stream:
            raise SourceError(f"a Redis source needs ?stream=KEY: {spec!r}")
        field = field or (query.pop("field", ["data"]))[0]
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
        options.setdefault("metadata_prefix", "_redis_")
        return RedisStreamSource(
            url, stream, StreamingDataSourceConfig(**options), field=field, clock=clock
        )
    path = spec.removeprefix("file:")
    if spec.startswith("file:") or path.endswith((".jsonl", ".ndjson", ".json")):
        options.setdefault("metadata_prefix", "_file_")
        return FileSource(path, StreamingDataSourceConfig(**options), clock=clock)
    raise SourceError(
        f"unknown source {spec!r}: use kafka://host:port/topic, memory, "
        "redis://host:port/db?stream=KEY, or file:PATH / a .jsonl file"
    )

"""ExportStore on a real redis-server: trimming, XINFO-based state, atomic pages, XREAD."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from backends.export.store import BEGINNING, ExportStore, Position, StreamState, parse_id


@pytest.fixture
def store(redis_client: aioredis.Redis) -> ExportStore:
    return ExportStore(redis_client, prefix=f"t-{uuid.uuid4().hex[:8]}:")


def position(entry_id: str) -> Position:
    parsed = parse_id(entry_id)
    assert parsed is not None
    return parsed


def payloads(count: int, every_test: int = 0) -> list[tuple[bool, bytes]]:
    return [(bool(every_test) and i % every_test == 0, b'{"i":%d}' % i) for i in range(count)]


async def test_append_returns_ids_in_order_and_keeps_the_entry_layout(
    store: ExportStore, redis_client: aioredis.Redis
) -> None:
    ids = await store.append("s", payloads(5, every_test=2), max_length=100, min_id=None)
    positions = [position(i) for i in ids]
    assert positions == sorted(positions) and len(set(ids)) == 5
    raw = await redis_client.xrange(store.data_key("s"))
    assert [fields for _, fields in raw][:2] == [
        {b"t": b"1", b"d": b'{"i":0}'},
        {b"t": b"0", b"d": b'{"i":1}'},
    ]
    page = await store.page("s", BEGINNING, desc=False, count=10)
    assert [e.is_test for e in page] == [True, False, True, False, True]
    assert [e.id.decode() for e in page] == ids


async def test_approximate_maxlen_keeps_at_least_max_length(store: ExportStore) -> None:
    for _ in range(10):
        await store.append("s", payloads(100), max_length=150, min_id=None)
    state = await store.state("s")
    assert 150 <= state.length < 1000 and state.entries_added == 1000
    first = await store.page("s", BEGINNING, desc=False, count=1)
    assert state.first == first[0].pos and state.lost_after(BEGINNING)
    assert not state.lost_after(first[0].pos)


async def test_min_id_trimming_and_exact_trim(store: ExportStore) -> None:
    ids = await store.append("s", payloads(300), max_length=10_000, min_id=None)
    cut = position(ids[200])
    await store.trim("s", max_length=10_000, min_id=cut)
    state = await store.state("s")
    assert (state.length, state.first) == (100, cut)
    await store.trim("s", max_length=7, min_id=None)
    state = await store.state("s")
    assert state.length == 7 and state.first == position(ids[-7])
    assert state.last == position(ids[-1]) and state.entries_added == 300
    assert state.lost_after(position(ids[10])) and not state.lost_after(position(ids[-7]))


async def test_state_of_a_missing_stream(store: ExportStore) -> None:
    assert await store.state("missing") == StreamState()
    state, entries = await store.state_and_page("missing", None, desc=True, count=5)
    assert (state, entries) == (StreamState(), [])


async def test_pages_both_ways_with_bounds(store: ExportStore) -> None:
    ids = await store.append("s", payloads(10), max_length=100, min_id=None)
    pos = [position(i) for i in ids]
    after = await store.page("s", pos[2], desc=False, count=3)
    assert [e.id.decode() for e in after] == ids[3:6]
    until = await store.page("s", pos[2], desc=False, count=100, until=pos[4])
    assert [e.id.decode() for e in until] == ids[3:5]
    before = await store.page("s", pos[5], desc=True, count=3)
    assert [e.id.decode() for e in before] == [ids[4], ids[3], ids[2]]
    newest = await store.page("s", None, desc=True, count=2)
    assert [e.id.decode() for e in newest] == [ids[9], ids[8]]
    state, page = await store.state_and_page("s", pos[7], desc=False, count=5)
    assert state.length == 10 and state.last == pos[9]
    assert [e.id.decode() for e in page] == ids[8:]


async def test_read_new_blocks_until_an_append(store: ExportStore) -> None:
    [first] = await store.append("s", payloads(1), max_length=100, min_id=None)
    after = position(first)
    assert await store.read_new("s", after, block_ms=50, count=10) == []
    reader = asyncio.create_task(store.read_new("s", after, block_ms=5_000, count=10))
    await asyncio.sleep(0.05)
    assert not reader.done()
    ids = await store.append("s", payloads(3), max_length=100, min_id=None)
    async with asyncio.timeout(2):
        entries = await reader
    assert entries and [e.id.decode() for e in entries] == ids[: len(entries)]  # woken at once


async def test_records_cursors_and_keys(store: ExportStore) -> None:
    assert await store.add_stream("ck1", "name", {"name": "name", "data_type": "identifier"})
    assert not await store.add_stream("ck2", "name", {"name": "name"})
    assert await store.stream("ck2") is None
    assert await store.consumer_key_for("name") == "ck1"
    await store.save_cursor("ck1", "key-a", "5-0")
    fields, cursor = await store.stream_and_cursor("ck1", "key-a")
    assert fields == {"name": "name", "data_type": "identifier"} and cursor == "5-0"
    assert (await store.stream_and_cursor("ck1", "key-b"))[1] is None
    await store.put_api_key("k", {"name": "one", "salt": "00", "digest": "aa"})
    await store.put_api_key("k", {"name": "two", "salt": "11"})
    assert await store.api_key("k") == {"name": "two", "salt": "11"}  # replaced, not merged

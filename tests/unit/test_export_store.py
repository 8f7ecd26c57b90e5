"""Cursor parsing, message rendering and the trimmed-data rule of the store."""

from __future__ import annotations

import fakeredis
import orjson
import pytest

from backends.export.store import (
    BEGINNING,
    Entry,
    ExportStore,
    StreamState,
    cursor_text,
    parse_id,
    render,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", (0, 0)),
        ("0-0", (0, 0)),
        ("1735689600000-5", (1735689600000, 5)),
        ("1735689600000", (1735689600000, 0)),
        ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
    ],
)
def test_parse_id(text: str, expected: tuple[int, int]) -> None:
    assert parse_id(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "$x", "abc", "1-2-3", "-1", "1-", "1 -2", "18446744073709551616-0", "\u0661\u0662\u0663"],
)
def test_parse_id_rejects(text: str) -> None:
    assert parse_id(text) is None


def test_cursor_text() -> None:
    assert cursor_text(BEGINNING) == "0"
    assert cursor_text((5, 0)) == "5-0"


def test_render_splices_the_cursor_without_reparsing() -> None:
    data = orjson.dumps({"id": "x", "is_test": False, "text": "line\nbreak"})
    entry = Entry(b"17-3", False, data)
    assert entry.pos == (17, 3)
    journal = orjson.loads(render(entry, journal=True))
    assert list(journal)[:2] == ["message_id", "cursor"]
    assert journal == {
        "message_id": "17-3",
        "cursor": "17-3",
        "id": "x",
        "is_test": False,
        "text": "line\nbreak",
    }
    identifier = orjson.loads(render(entry, journal=False))
    assert next(iter(identifier)) == "cursor" and "message_id" not in identifier
    assert b"\n" not in render(entry, journal=True)


def test_lost_after() -> None:
    untouched = StreamState(length=3, first=(10, 0), last=(12, 0), entries_added=3)
    assert not untouched.lost_after((1, 0))  # before the start, but nothing was trimmed
    trimmed = StreamState(length=3, first=(10, 0), last=(12, 0), entries_added=9)
    assert trimmed.lost_after((9, 5))
    assert not trimmed.lost_after((10, 0)) and not trimmed.lost_after((12, 0))
    emptied = StreamState(length=0, first=None, last=(12, 0), entries_added=9)
    assert emptied.lost_after((11, 0)) and not emptied.lost_after((12, 0))
    assert emptied.first_cursor is None and emptied.last_cursor == "12-0"
    assert StreamState().last_cursor is None


async def test_missing_stream_reads_as_empty() -> None:
    store = ExportStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))
    assert await store.state("nope") == StreamState()
    state, entries = await store.state_and_page("nope", BEGINNING, desc=False, count=10)
    assert state == StreamState() and entries == []
    assert await store.page("nope", None, desc=True, count=10) == []

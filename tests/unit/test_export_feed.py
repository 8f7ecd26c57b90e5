"""The synthetic feed: deterministic, spec-shaped, typed-model compatible; the runner's pacing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from backends.common.clock import ManualClock
from backends.export.feed import (
    IDENTIFIER_TYPES,
    FeedRunner,
    FeedTarget,
    SyntheticFeed,
)
from backends.export.models import (
    DETAILS_BY_TYPE,
    IdentifierStreamMessage,
    JournalEntryStreamMessage,
    parse_identifier_details,
)

JOURNAL_FIELDS = {
    "id",
    "type",
    "description",
    "details",
    "performed_at",
    "confidence",
    "start_time",
    "end_time",
    "is_test",
    "originator",
    "identifiers",
    "evidence",
}
IDENTIFIER_FIELDS = {
    "identifier_id",
    "type",
    "display_value",
    "details",
    "confidence",
    "modified_at",
    "is_test",
    "originator_id",
    "originator",
    "tags",
    "evidence",
    "triggering_journal_entry",
    "journal_entries",
}


def feed(seed: int = 1, share: float = 0.05) -> SyntheticFeed:
    return SyntheticFeed(random.Random(seed), ManualClock(), test_share=share)


def test_same_seed_same_messages() -> None:
    a, b = feed(3), feed(3)
    for data_type in ["journal_entry", "identifier"] * 50:
        assert a.message(data_type) == b.message(data_type)
    assert feed(3).journal_entry() != feed(4).journal_entry()


def test_journal_entries_have_the_spec_fields() -> None:
    source = feed()
    for _ in range(300):
        raw = source.journal_entry()
        assert set(raw) == JOURNAL_FIELDS
        assert raw["performed_at"].endswith("Z") and "." in raw["performed_at"]
        assert set(raw["originator"]) == {"id", "type", "name"}
        for identifier in raw["identifiers"]:
            assert set(identifier) == {
                "id",
                "type",
                "display_value",
                "confidence",
                "is_ours",
                "data",
                "created_at",
                "updated_at",
            }
        for item in raw["evidence"]:
            assert set(item) == {"id", "type", "description", "source", "collected_at"}
        typed = JournalEntryStreamMessage.from_dict(raw)
        assert typed.to_dict() == raw
        assert (raw["end_time"] is not None) == (raw["type"] == "phone_call")


def test_identifier_changes_cover_every_type_with_typed_details() -> None:
    source = feed()
    seen: Counter[str] = Counter()
    for _ in range(1500):
        raw = source.identifier_change()
        assert set(raw) == IDENTIFIER_FIELDS
        typed = IdentifierStreamMessage.from_dict(raw)
        assert typed.to_dict() == raw
        details = parse_identifier_details(typed.type, typed.details)
        assert type(details) is DETAILS_BY_TYPE[raw["type"]]
        expected = set(type(details).model_fields)
        assert set(raw["details"]) == expected, raw["type"]
        assert raw["triggering_journal_entry"] in raw["journal_entries"]
        assert raw["originator_id"] == raw["originator"]["id"]
        titles = {tag["tag_title"] for tag in raw["tags"]}
        assert titles and titles <= {"Threat Type", "Status", "Source"}
        seen[raw["type"]] += 1
    assert set(seen) == set(IDENTIFIER_TYPES)


def test_phone_details() -> None:
    source = feed(11)
    phones = [
        m["details"]
        for m in (source.identifier_change() for _ in range(2000))
        if m["type"] == "phone"
    ]
    assert any(p["is_toll_free"] for p in phones) and not all(p["is_toll_free"] for p in phones)
    for phone in phones:
        assert phone["number"].startswith(phone["area_code"])
        assert phone["country_code"].startswith("+")


def test_test_share() -> None:
    source = feed(5, share=0.2)
    entries = [source.journal_entry() for _ in range(2000)]
    share = sum(e["is_test"] for e in entries) / len(entries)
    assert 0.15 < share < 0.25
    assert all(e["description"].startswith("[TEST]") for e in entries if e["is_test"])
    assert not any(feed(5, share=0).journal_entry()["is_test"] for _ in range(200))


async def test_runner_paces_by_the_injected_clock() -> None:
    clock = ManualClock()
    published: dict[str, list[dict[str, Any]]] = {"j": [], "i": []}

    async def publish(stream: str, messages: Sequence[dict[str, Any]]) -> list[str]:
        published[stream].extend(messages)
        return [str(i) for i in range(len(messages))]

    runner = FeedRunner(
        SyntheticFeed(random.Random(1), clock),
        publish,
        [FeedTarget("j", "journal_entry"), FeedTarget("i", "identifier")],
        rate=100,
        clock=clock,
    )
    runner.start()
    try:
        await asyncio.sleep(0.15)
        assert published == {"j": [], "i": []}  # no time has passed
        clock.advance(0.5)
        await asyncio.sleep(0.15)
        assert len(published["j"]) == len(published["i"]) == 50
        assert all("identifiers" in m for m in published["j"])
        assert all("identifier_id" in m for m in published["i"])
        clock.advance(60)  # far behind: skips ahead instead of a 6000-message burst
        await asyncio.sleep(0.15)
        assert len(published["j"]) <= 60
        assert runner.published == len(published["j"]) + len(published["i"])
    finally:
        await runner.stop()
    assert not runner.running


async def test_runner_survives_publish_failures() -> None:
    clock = ManualClock()
    calls = 0

    async def publish(stream: str, messages: Sequence[dict[str, Any]]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis gone")
        return ["1-0"] * len(messages)

    runner = FeedRunner(
        SyntheticFeed(random.Random(1), clock),
        publish,
        [FeedTarget("j", "journal_entry")],
        rate=100,
        clock=clock,
    )
    runner.start()
    try:
        for _ in range(2):
            clock.advance(0.1)
            await asyncio.sleep(0.12)
        assert calls >= 2 and runner.running and runner.published > 0
    finally:
        await runner.stop()

"""Synthetic provider data: deterministic, shaped per provider, and really filtered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backends.realtime.filters import FilterError, parse_datetime
from backends.realtime.models import PROVIDER_STREAM_TYPES
from backends.realtime.providers import KINDS, Dataset

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def items(stream_type: str, filters: dict[str, Any], *, provider: str | None = None) -> list[Any]:
    kind = KINDS[stream_type]
    dataset = Dataset(
        kind,
        provider or kind.providers[0],
        seed=42,
        anchor=NOW,
        size=1500,
        filters=filters,
        now=NOW,
    )
    return list(dataset.history())


def test_every_spec_stream_type_has_a_provider_and_a_data_type() -> None:
    assert set(KINDS) == {t for types in PROVIDER_STREAM_TYPES.values() for t in types}
    assert KINDS["gmail_messages"].data_type == "gmail_messages_message"
    assert KINDS["calendar_events"].data_type == "calendar_events_event"


def test_same_seed_same_items_and_history_runs_back_in_time() -> None:
    first, second = items("gmail_messages", {}), items("gmail_messages", {})
    assert first == second
    dates = [parse_datetime(m["date"]) for m in first]
    assert dates == sorted(dates, reverse=True)
    assert all(d is not None and d <= NOW for d in dates)


def test_gmail_spec_filter_example() -> None:
    filters = {
        "query": "is:unread from:important@example.com",
        "label_ids": ["INBOX", "IMPORTANT"],
        "include_spam_trash": False,
    }
    found = items("gmail_messages", filters)
    assert found
    for message in found:
        assert message["from"] == "important@example.com"
        assert {"UNREAD", "INBOX", "IMPORTANT"} <= set(message["labelIds"])


def test_gmail_spam_and_trash_only_when_asked() -> None:
    def has_junk(found: list[dict[str, Any]]) -> bool:
        return any({"SPAM", "TRASH"} & set(m["labelIds"]) for m in found)

    assert not has_junk(items("gmail_messages", {}))
    assert has_junk(items("gmail_messages", {"include_spam_trash": True}))
    spam = items("gmail_messages", {"query": "in:spam"})
    assert spam and all("SPAM" in m["labelIds"] for m in spam)


def test_gmail_threads_take_the_same_filters() -> None:
    found = items("gmail_threads", {"query": "from:important@example.com is:unread"})
    assert found
    assert all("important@example.com" in t["participants"] for t in found)
    assert all("UNREAD" in t["labelIds"] for t in found)


def test_calendar_spec_filter_example() -> None:
    filters = {
        "time_min": "2024-01-01T00:00:00Z",
        "time_max": "2024-03-31T23:59:59Z",
        "query": "meeting",
    }
    found = items("calendar_events", filters)
    assert found
    low, high = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 31, 23, 59, 59, tzinfo=UTC)
    starts = []
    for event in found:
        start = parse_datetime(event["start"]["dateTime"])
        end = parse_datetime(event["end"]["dateTime"])
        assert start and end and end > low and start < high
        assert "meeting" in f"{event['summary']} {event['description']}".lower()
        starts.append(start)
    assert starts == sorted(starts)  # calendars list in start order


def test_outlook_spec_filter_example() -> None:
    found = items("outlook_messages", {"filter": "isRead eq false", "search": "subject:important"})
    assert found
    assert all(m["isRead"] is False and "important" in m["subject"].lower() for m in found)
    everything = items("outlook_messages", {})
    assert len(found) < len(everything)


def test_outlook_events_filter_and_time_window() -> None:
    found = items(
        "outlook_events",
        {"filter": "showAs eq 'busy' and not isCancelled", "time_min": "2024-02-01T00:00:00Z"},
    )
    assert found
    for event in found:
        assert event["showAs"] == "busy" and event["isCancelled"] is False
        assert event["end"]["timeZone"] == "UTC"
        end = parse_datetime(event["end"]["dateTime"])
        assert end and end > datetime(2024, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("provider", ["google", "microsoft"])
def test_contacts_and_files_for_both_providers(provider: str) -> None:
    contacts = items("contacts", {"query": "company:acme"}, provider=provider)
    assert contacts and all(c["companyName"] == "Acme" for c in contacts)
    files = items(
        "files", {"filter": "mimeType eq 'application/pdf' and not trashed"}, provider=provider
    )
    assert files and all(f["mimeType"] == "application/pdf" and not f["trashed"] for f in files)


def test_unknown_filter_names_the_allowed_ones() -> None:
    with pytest.raises(FilterError) as caught:
        items("calendar_events", {"label_ids": ["INBOX"]})
    assert caught.value.field == "filters.label_ids"
    assert caught.value.allowed_values == ["time_min", "time_max", "query"]


def test_bad_filter_value_names_its_field() -> None:
    with pytest.raises(FilterError) as caught:
        items("calendar_events", {"time_min": "next tuesday"})
    assert caught.value.field == "filters.time_min"
    assert caught.value.value == "next tuesday"


def test_arrivals_are_new_and_filtered() -> None:
    kind = KINDS["outlook_messages"]
    dataset = Dataset(
        kind,
        "microsoft",
        seed=42,
        anchor=NOW,
        size=0,
        filters={"filter": "isRead eq false"},
        now=NOW,
    )
    assert list(dataset.history()) == []
    later = datetime(2024, 1, 15, 11, tzinfo=UTC)
    arrived = [dataset.arrival(later) for _ in range(50)]
    kept = [m for m in arrived if m is not None]
    assert 0 < len(kept) < 50
    assert all(
        m["isRead"] is False and m["receivedDateTime"] == "2024-01-15T11:00:00Z" for m in kept
    )
    assert dataset.arrival_gap(5.0) > 0

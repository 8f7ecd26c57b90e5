"""How realtime events read as lines, and how typed stream types and filters are understood."""

from __future__ import annotations

from typing import Any

import pytest

from backends.realtime.models import STREAM_TYPES
from console.realtime_format import (
    TYPE_ALIASES,
    format_event,
    is_notice,
    parse_stream_filters,
    payload_summary,
    resolve_type,
)


def event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_type": kind,
        "session_id": "your-session-id",
        "provider": "google",
        "timestamp": 1705314600.0,
        "data": data,
    }


def test_lines_and_highlights_of_each_event_type() -> None:
    update = event(
        "data_update",
        {
            "data_type": "gmail_messages_message",
            "payload": {"id": "m1", "subject": "Email subject", "from": "sender@example.com"},
        },
    )
    assert format_event(update) == (
        "10:30:00 data_update  gmail_messages_message   Email subject · sender@example.com"
    )
    assert not is_notice(update)
    refresh = event("token_refresh", {"new_expires_at": 1705318200.0, "expires_in": 3600})
    assert format_event(refresh) == (
        "10:30:00 token_refresh  google  token refreshed · expires in 3600 s (at 11:30:00)"
    )
    warning = event(
        "rate_limit_warning",
        {
            "remaining_quota": 10,
            "reset_time": 1705314660.0,
            "warning_message": "Rate limit approaching. 10 requests remaining.",
        },
    )
    assert format_event(warning) == (
        "10:30:00 rate_limit_warning  google  Rate limit approaching. 10 requests remaining. "
        "(quota resets 10:31:00)"
    )
    assert is_notice(refresh) and is_notice(warning)
    assert format_event({"event_type": "other", "timestamp": "soon"}) == "--:--:-- other  "
    assert "\n" not in format_event(event("data_update", {"payload": "not an object"}))


def test_summaries_of_every_provider_shape() -> None:
    outlook = {"subject": "Q3", "from": {"emailAddress": {"name": "A", "address": "a@x.org"}}}
    assert payload_summary(outlook) == "Q3 · a@x.org"
    calendar = {"summary": "Standup", "organizer": {"email": "o@x.org"}}
    assert payload_summary(calendar) == "Standup · o@x.org"
    contact = {"displayName": "Ada L", "emailAddresses": [{"name": "Ada L", "address": "ada@x"}]}
    assert payload_summary(contact) == "Ada L · ada@x"
    assert payload_summary({"name": "plan.pdf", "path": "/Docs/plan.pdf"}) == (
        "plan.pdf · /Docs/plan.pdf"
    )
    assert payload_summary({}) == ""
    assert payload_summary({"subject": "x" * 80}).endswith("…")


def test_stream_types_by_spec_name_or_short_name() -> None:
    assert {resolve_type(name) for name in TYPE_ALIASES} == set(STREAM_TYPES)
    assert [resolve_type(t) for t in STREAM_TYPES] == list(STREAM_TYPES)
    assert resolve_type(" Gmail ") == "gmail_messages"
    with pytest.raises(ValueError, match=r"unknown stream type 'mail'.*gmail \(gmail_messages\)"):
        resolve_type("mail")


def test_stream_filters_as_typed() -> None:
    assert parse_stream_filters("  ") == {}
    assert parse_stream_filters(
        'query="is:unread from:important@example.com" label_ids=INBOX,IMPORTANT '
        "include_spam_trash=false"
    ) == {
        "query": "is:unread from:important@example.com",
        "label_ids": ["INBOX", "IMPORTANT"],
        "include_spam_trash": False,
    }
    assert parse_stream_filters('filter="isRead eq false" search=subject:important') == {
        "filter": "isRead eq false",
        "search": "subject:important",
    }
    assert parse_stream_filters('{"time_min": "2024-01-01T00:00:00Z"}') == {
        "time_min": "2024-01-01T00:00:00Z"
    }
    for bad, why in (
        ("query", "not key=value"),
        ("=x", "not key=value"),
        ("{nope", "not valid JSON"),
        ('{"a": 1', "not valid JSON"),
        ('query="open', "No closing quotation"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_stream_filters(bad)

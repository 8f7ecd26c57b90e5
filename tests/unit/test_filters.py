"""Tail filters: free text, field=value, nested paths, lists, AND, and what does not match."""

from __future__ import annotations

from typing import Any

import pytest

from console.widgets.filters import FieldTerm, FilterError, TextTerm, parse_filter

IDENTIFIER: dict[str, Any] = {
    "cursor": "1735689600000-5",
    "identifier_id": "550e8400",
    "type": "phone",
    "display_value": "+12345678888",
    "confidence": 0.95,
    "is_test": False,
    "tags": [
        {"tag_title": "Threat Type", "value": "Phishing"},
        {"tag_title": "Channel", "value": "SMS"},
    ],
    "triggering_journal_entry": {"type": "detection", "description": "Phishing detected"},
    "journal_entries": [],
}
JOURNAL: dict[str, Any] = {
    "type": "phone_call",
    "description": "",
    "originator": {"id": "f47ac10b", "type": "user", "name": "James D"},
    "identifiers": [
        {"type": "email", "display_value": "a@example.com"},
        {"type": "phone", "display_value": "+12345678888", "data": {"country_code": "+1"}},
    ],
    "confidence": 1,
}


def matches(source: str, message: dict[str, Any]) -> bool:
    return parse_filter(source).matches(message)


def test_parse_splits_terms_and_keeps_quoted_spaces() -> None:
    parsed = parse_filter('type=phone  originator.name="James D" phishing')
    assert parsed.terms == (
        FieldTerm(("type",), "phone"),
        FieldTerm(("originator", "name"), "james d"),
        TextTerm("phishing"),
    )
    assert parsed.source == 'type=phone  originator.name="James D" phishing'


def test_something_that_is_not_a_field_path_is_text() -> None:
    assert parse_filter("https://x.example/?q=1").terms == (TextTerm("https://x.example/?q=1"),)


def test_empty_filter_matches_everything_and_is_falsy() -> None:
    empty = parse_filter("   ")
    assert not empty
    assert empty.matches(IDENTIFIER) and empty.matches({})


def test_free_text_searches_keys_and_values_ignoring_case() -> None:
    assert matches("PHISHING", IDENTIFIER)
    assert matches("+1234567", IDENTIFIER)
    assert matches("triggering_journal", IDENTIFIER)
    assert not matches("bank", IDENTIFIER)


def test_field_equals_value() -> None:
    assert matches("type=phone", IDENTIFIER)
    assert matches("type=PHONE", IDENTIFIER)
    assert not matches("type=email", IDENTIFIER)
    assert not matches("type=pho", IDENTIFIER)  # equality, not substring


def test_nested_paths() -> None:
    assert matches("triggering_journal_entry.type=detection", IDENTIFIER)
    assert matches('originator.name="James D"', JOURNAL)
    assert not matches("originator.name=James", JOURNAL)
    assert not matches("originator.missing.deeper=x", JOURNAL)


def test_list_fields_match_any_element() -> None:
    assert matches("tags.value=Phishing", IDENTIFIER)
    assert matches("tags.value=sms", IDENTIFIER)
    assert matches("identifiers.type=phone", JOURNAL)
    assert matches("identifiers.data.country_code=+1", JOURNAL)
    assert not matches("tags.value=Smishing", IDENTIFIER)
    assert not matches("journal_entries.type=x", IDENTIFIER)


def test_scalars_compare_by_their_json_meaning() -> None:
    assert matches("confidence=0.95", IDENTIFIER)
    assert matches("confidence=1.0", JOURNAL)
    assert not matches("confidence=abc", JOURNAL)
    assert matches("is_test=false", IDENTIFIER)
    assert not matches("is_test=true", IDENTIFIER)
    assert matches("description=", JOURNAL)


def test_terms_are_and_ed() -> None:
    assert matches("type=phone tags.value=Phishing sms", IDENTIFIER)
    assert not matches("type=phone tags.value=Phishing bank", IDENTIFIER)
    assert not matches("type=email tags.value=Phishing", IDENTIFIER)


def test_text_is_computed_only_when_a_text_term_needs_it() -> None:
    calls: list[int] = []

    def text() -> str:
        calls.append(1)
        return "phishing"

    assert parse_filter("type=phone").matches(IDENTIFIER, text)
    assert calls == []
    assert parse_filter("phishing").matches(IDENTIFIER, text)
    assert calls == [1]


def test_unclosed_quote_is_a_clear_error() -> None:
    with pytest.raises(FilterError, match="cannot parse filter"):
        parse_filter('originator.name="James')

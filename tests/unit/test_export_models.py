"""Typed export messages: spec samples, both casings, unknown fields, every identifier type."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.export.models import (
    DETAILS_BY_TYPE,
    IDENTIFIER_TYPES,
    BankAccountDetails,
    IdentifierDetails,
    IdentifierEmailDetails,
    IdentifierStreamMessage,
    JournalEntryStreamMessage,
    PhoneDetails,
    parse_identifier_details,
    parse_stream_message,
    to_snake,
)

# Verbatim from export-stream.md, "Message Formats".
JOURNAL_ENTRY_SAMPLE: dict[str, Any] = {
    "message_id": "1735689600000-5",
    "cursor": "1735689600000-5",
    "id": "7c9e6679-...",
    "type": "phone_call",
    "description": "",
    "details": {"platform": "pstn", "direction": "inbound"},
    "performed_at": "2025-10-27T12:35:36.158925Z",
    "confidence": 1,
    "start_time": "2025-10-27T12:35:36.158925Z",
    "end_time": "2025-10-27T12:40:00.000000Z",
    "is_test": False,
    "originator": {"id": "f47ac10b-...", "type": "user", "name": "James D"},
    "identifiers": [
        {
            "id": "550e8400-...",
            "type": "phone",
            "display_value": "+12345678888",
            "confidence": 1,
            "is_ours": False,
            "data": {"country_code": "+1", "number": "2345678888"},
            "created_at": "2025-10-27T12:35:36Z",
            "updated_at": "2026-02-06T19:19:18Z",
        }
    ],
    "evidence": [
        {
            "id": "a1b2c3d4-...",
            "type": "screenshot",
            "description": "Screenshot of phishing page",
            "source": "Automated Scanner",
            "collected_at": "2025-01-15T10:30:00Z",
        }
    ],
}
IDENTIFIER_SAMPLE: dict[str, Any] = {
    "cursor": "1735689600000-5",
    "identifier_id": "550e8400-...",
    "type": "email",
    "display_value": "scammer@example.com",
    "confidence": 0.95,
    "modified_at": "2025-01-15T10:30:00Z",
    "is_test": False,
    "originator_id": "f47ac10b-...",
    "tags": [
        {
            "tag_id": "a1b2c3d4-...",
            "tag_title": "Threat Type",
            "value": "Phishing",
            "value_id": "b2c3d4e5-...",
        }
    ],
    "triggering_journal_entry": {
        "id": "7c9e6679-...",
        "type": "detection",
        "description": "Phishing detected",
        "performed_at": "2025-01-15T10:30:00Z",
    },
    "journal_entries": [],
}
FREE_FORM = {"details", "data"}  # data, not schema: never re-cased


def to_camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def camelize(value: Any, key: str | None = None) -> Any:
    """The same message as a camelCase server would send it (free-form objects untouched)."""
    if key in FREE_FORM:
        return value
    if isinstance(value, dict):
        return {to_camel(k): camelize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(item) for item in value]
    return value


@pytest.mark.parametrize("casing", ["snake", "camel"])
def test_journal_entry_sample_round_trips(casing: str) -> None:
    raw = JOURNAL_ENTRY_SAMPLE if casing == "snake" else camelize(JOURNAL_ENTRY_SAMPLE)
    msg = JournalEntryStreamMessage.from_dict(raw)
    assert msg.cursor == "1735689600000-5" and msg.type == "phone_call"
    assert msg.originator is not None and msg.originator.name == "James D"
    assert msg.identifiers[0].display_value == "+12345678888"
    assert msg.identifiers[0].is_ours is False
    assert msg.evidence[0].collected_at == "2025-01-15T10:30:00Z"
    assert msg.performed_at == "2025-10-27T12:35:36.158925Z"  # kept as sent, precision and Z
    assert msg.to_dict() == JOURNAL_ENTRY_SAMPLE
    details = parse_identifier_details(msg.identifiers[0].type, msg.identifiers[0].data)
    assert isinstance(details, PhoneDetails) and details.number == "2345678888"


@pytest.mark.parametrize("casing", ["snake", "camel"])
def test_identifier_sample_round_trips(casing: str) -> None:
    raw = IDENTIFIER_SAMPLE if casing == "snake" else camelize(IDENTIFIER_SAMPLE)
    if casing == "camel":
        assert "displayValue" in raw and "tagTitle" in raw["tags"][0]
    msg = IdentifierStreamMessage.from_dict(raw)
    assert msg.display_value == "scammer@example.com" and msg.confidence == 0.95
    assert msg.tags[0].tag_title == "Threat Type" and msg.tags[0].value == "Phishing"
    assert msg.triggering_journal_entry is not None
    assert msg.triggering_journal_entry.description == "Phishing detected"
    assert msg.details is None and msg.journal_entries == []
    assert msg.to_dict() == IDENTIFIER_SAMPLE


def test_spec_typed_message_samples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The spec's "Typed Stream Messages" and "Typed Identifier Details" loops, verbatim."""
    phone = {
        **IDENTIFIER_SAMPLE,
        "type": "phone",
        "display_value": "+18005551234",
        "details": {"countryCode": "+1", "number": "8005551234", "isTollFree": True},
    }
    bank = {
        **IDENTIFIER_SAMPLE,
        "type": "bank_account",
        "display_value": "First Bank 1234",
        "details": {"institution": "First Bank", "account_number": "1234"},
    }
    result = {"messages": [phone, bank, IDENTIFIER_SAMPLE], "next_cursor": None, "has_more": False}

    for raw_msg in result.get("messages", []):
        msg = IdentifierStreamMessage.from_dict(raw_msg)
        print(f"Identifier: {msg.display_value} (confidence: {msg.confidence})")
        print(f"Type: {msg.type}, Modified: {msg.modified_at}")
        for tag in msg.tags:
            print(f"  Tag: {tag.tag_title} = {tag.value}")

    for raw_msg in result.get("messages", []):
        msg = IdentifierStreamMessage.from_dict(raw_msg)
        details = parse_identifier_details(msg.type, msg.details)

        if isinstance(details, PhoneDetails):
            print(f"Phone: {details.country_code} {details.number}")
            if details.is_toll_free:
                print("  (toll-free)")

        elif isinstance(details, BankAccountDetails):
            print(f"Bank: {details.institution} - {details.account_number}")

    for raw_msg in [JOURNAL_ENTRY_SAMPLE]:
        msg = JournalEntryStreamMessage.from_dict(raw_msg)
        print(f"Entry: {msg.description} ({msg.type})")
        for ident in msg.identifiers:
            print(f"  Identifier: {ident.display_value}")

    printed = capsys.readouterr().out
    assert "Identifier: +18005551234 (confidence: 0.95)" in printed
    assert "  Tag: Threat Type = Phishing" in printed
    assert "Phone: +1 8005551234\n  (toll-free)" in printed
    assert "Bank: First Bank - 1234" in printed
    assert "Entry:  (phone_call)\n  Identifier: +12345678888" in printed


def test_unknown_fields_are_kept_at_every_level() -> None:
    raw = copy.deepcopy(JOURNAL_ENTRY_SAMPLE)
    raw["severity"] = "high"
    raw["originator"]["orgUnit"] = "fraud-desk"
    raw["identifiers"][0]["riskScore"] = 0.7
    raw["evidence"][0]["hash"] = {"sha256": "ab"}
    msg = JournalEntryStreamMessage.from_dict(raw)
    assert msg.severity == "high"  # type: ignore[attr-defined]
    dumped = msg.to_dict()
    assert dumped["severity"] == "high"
    assert dumped["originator"]["org_unit"] == "fraud-desk"
    assert dumped["identifiers"][0]["risk_score"] == 0.7
    assert dumped["evidence"][0]["hash"] == {"sha256": "ab"}
    assert JournalEntryStreamMessage.from_dict(dumped).to_dict() == dumped


def test_snake_case_key_wins_over_its_camel_case_twin() -> None:
    for raw in (
        {"display_value": "snake", "displayValue": "camel"},
        {"displayValue": "camel", "display_value": "snake"},
    ):
        assert IdentifierStreamMessage.from_dict(raw).display_value == "snake"


def test_loose_server_types_are_accepted() -> None:
    details = parse_identifier_details("phone", {"number": 2345678888, "is_toll_free": "true"})
    assert isinstance(details, PhoneDetails)
    assert details.number == "2345678888" and details.is_toll_free is True


def test_unknown_identifier_type_keeps_the_dict() -> None:
    raw = {"network": "tor", "onionAddress": "abc.onion", "nested": {"keyName": 1}}
    details = parse_identifier_details("onion_service", raw)
    assert type(details) is IdentifierDetails
    assert details.onion_address == "abc.onion"  # type: ignore[attr-defined]
    assert details.to_dict() == {
        "network": "tor",
        "onion_address": "abc.onion",
        "nested": raw["nested"],
    }


def test_missing_details_give_an_empty_object() -> None:
    details = parse_identifier_details("email", None)
    assert isinstance(details, IdentifierEmailDetails) and details.email is None
    assert details.to_dict() == {}


def test_parse_stream_message_picks_the_class_by_data_type() -> None:
    assert isinstance(
        parse_stream_message("identifier", IDENTIFIER_SAMPLE), IdentifierStreamMessage
    )
    assert isinstance(
        parse_stream_message("journal_entry", JOURNAL_ENTRY_SAMPLE), JournalEntryStreamMessage
    )
    with pytest.raises(ValueError, match="unknown data_type"):
        parse_stream_message("tweets", {})


@pytest.mark.parametrize(
    ("key", "snake"),
    [
        ("displayValue", "display_value"),
        ("display_value", "display_value"),
        ("isTollFree", "is_toll_free"),
        ("iban", "iban"),
        ("ID", "id"),
        ("swiftBIC", "swift_bic"),
        ("accountNumber2", "account_number2"),
    ],
)
def test_to_snake(key: str, snake: str) -> None:
    assert to_snake(key) == snake


# -- every identifier type, both casings (property-based) --------------------------------

# Words of two letters or more: "a_a_a" -> "aAA" cannot be told from an acronym.
SNAKE_KEY = st.from_regex(re.compile(r"[a-z]{2,8}(_[a-z]{2,8}){0,2}"), fullmatch=True)
SCALAR = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


@st.composite
def details_case(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """An identifier type and a snake_case details dict: known fields plus unknown ones."""
    identifier_type = draw(st.sampled_from(IDENTIFIER_TYPES))
    cls = DETAILS_BY_TYPE[identifier_type]
    raw: dict[str, Any] = {}
    for name in cls.model_fields:
        if draw(st.booleans()):
            is_bool = name == "is_toll_free"  # the one boolean detail field
            raw[name] = draw(st.none() | st.booleans() if is_bool else st.none() | st.text())
    extras = draw(st.dictionaries(SNAKE_KEY, SCALAR, max_size=3))
    raw |= {k: v for k, v in extras.items() if k not in cls.model_fields}
    return identifier_type, raw


@given(details_case(), st.booleans())
def test_every_identifier_type_round_trips_in_both_casings(
    case: tuple[str, dict[str, Any]], camel: bool
) -> None:
    identifier_type, snake = case
    sent = {to_camel(k): v for k, v in snake.items()} if camel else snake
    details = parse_identifier_details(identifier_type, sent)
    assert type(details) is DETAILS_BY_TYPE[identifier_type]
    assert details.to_dict() == snake
    for key, value in snake.items():
        assert getattr(details, key) == value
    assert type(details).from_dict(details.to_dict()) == details


@given(details_case(), st.booleans())
def test_identifier_messages_carry_typed_details(
    case: tuple[str, dict[str, Any]], camel: bool
) -> None:
    identifier_type, details = case
    snake = {**IDENTIFIER_SAMPLE, "type": identifier_type, "details": details, "data": details}
    msg = IdentifierStreamMessage.from_dict(camelize(snake) if camel else snake)
    assert msg.to_dict() == snake
    parsed = parse_identifier_details(msg.type, msg.details)
    assert parsed.to_dict() == details

"""The filter languages: Gmail search, OData $filter and free-text search."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backends.realtime.filters import (
    GMAIL_OPERATORS,
    FilterError,
    MailView,
    compile_gmail_query,
    compile_odata,
    compile_search,
)

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def mail(**fields: Any) -> MailView:
    base: dict[str, Any] = {
        "subject": "quarterly report",
        "senders": ("important@example.com important person",),
        "recipients": ("you@example.com",),
        "labels": frozenset({"INBOX", "UNREAD"}),
        "text": "quarterly report numbers attached important@example.com",
        "date": datetime(2024, 1, 10, tzinfo=UTC),
        "has_attachment": True,
    }
    return MailView(**{**base, **fields})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("is:unread", True),
        ("is:read", False),
        ("-is:unread", False),
        ("is:unread from:important@example.com", True),
        ("from:someone@example.com", False),
        ("to:you@", True),
        ('subject:"quarterly report"', True),
        ("subject:invoice", False),
        ("label:inbox", True),
        ("in:inbox has:attachment", True),
        ("in:sent", False),
        ("after:2024/01/01 before:2024-01-11", True),
        ("after:2024/01/11", False),
        ("newer_than:7d", True),
        ("older_than:7d", False),
        ("newer_than:1m", True),
        ("numbers", True),
        ('"report numbers"', True),
        ("-numbers", False),
        ("is:unread AND numbers", True),
        ("", True),
    ],
)
def test_gmail_query_terms(query: str, expected: bool) -> None:
    matches, _ = compile_gmail_query(query, NOW)
    assert matches(mail()) is expected


def test_gmail_query_says_when_it_selects_spam_or_trash() -> None:
    assert compile_gmail_query("in:spam", NOW)[1] is True
    assert compile_gmail_query("in:anywhere is:unread", NOW)[1] is True
    assert compile_gmail_query("-in:trash", NOW)[1] is False
    assert compile_gmail_query("is:unread", NOW)[1] is False


@pytest.mark.parametrize(
    ("query", "message", "allowed"),
    [
        ("foo:bar", "Unknown search operator 'foo:'", list(GMAIL_OPERATORS)),
        ("is:shiny", "Unknown is: value", ["unread", "starred", "important", "read"]),
        ("has:drive", "Unknown has: value", ["attachment"]),
        ("a OR b", "'OR' is not supported: terms are ANDed", None),
        ("(a b)", "'(a' is not supported: terms are ANDed", None),
        ('subject:"open', "Unbalanced quote in query", None),
        ("after:yesterday", "Invalid date 'yesterday': use YYYY/MM/DD", None),
        ("newer_than:3w", "Use a number and d, m or y, e.g. 2d", None),
    ],
)
def test_gmail_query_errors_name_the_problem(
    query: str, message: str, allowed: list[str] | None
) -> None:
    with pytest.raises(FilterError) as caught:
        compile_gmail_query(query, NOW)
    assert caught.value.field == "filters.query"
    assert caught.value.message == message
    assert caught.value.allowed_values == allowed


MESSAGE = {
    "subject": "Important: budget",
    "isRead": False,
    "importance": "high",
    "hasAttachments": True,
    "receivedDateTime": "2024-01-12T08:00:00Z",
    "from": {"emailAddress": {"name": "Ada", "address": "Ada@Example.com"}},
    "toRecipients": [
        {"emailAddress": {"address": "you@example.com"}},
        {"emailAddress": {"address": "boss@example.com"}},
    ],
    "categories": [],
    "flag": {"flagStatus": "notFlagged"},
    "size": 1200,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("isRead eq false", True),
        ("isRead eq true", False),
        ("isRead ne true", True),
        ("IsRead eq false", True),
        ("importance eq 'HIGH'", True),
        ("isRead eq false and importance eq 'low'", False),
        ("isRead eq true or importance eq 'high'", True),
        ("not (isRead eq true)", True),
        ("not isRead", True),
        ("hasAttachments and not isRead", True),
        ("from/emailAddress/address eq 'ada@example.com'", True),
        ("toRecipients/emailAddress/address eq 'boss@example.com'", True),
        ("receivedDateTime ge 2024-01-10T00:00:00Z", True),
        ("receivedDateTime lt '2024-01-12T00:00:00Z'", False),
        ("size gt 1000 and size le 1200", True),
        ("contains(subject, 'budget')", True),
        ("startswith(subject, 'important')", True),
        ("endswith(subject, 'x')", False),
        ("flag/flagStatus eq 'notFlagged'", True),
        ("importance eq null", False),
        ("subject eq 'it''s'", False),
    ],
)
def test_odata_filter(expression: str, expected: bool) -> None:
    assert compile_odata(expression, MESSAGE)(MESSAGE) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("isRed eq false", "Unknown property 'isRed'"),
        ("isRead eq", "Filter ends where a value was expected"),
        ("isRead is false", "Unknown operator 'is'"),
        ("isRead eq false and", "Filter ends where a property was expected"),
        ("(isRead eq false", "Filter ends where ')' was expected"),
        ("isRead eq false)", "Unexpected ')'"),
        ("contains(subject, 3)", "String functions take a 'quoted' argument"),
        ("subject eq 'a' @", "Cannot parse filter at '@'"),
    ],
)
def test_odata_errors(expression: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_odata(expression, MESSAGE)
    assert caught.value.message == message
    assert caught.value.field == "filters.filter"
    assert caught.value.value == expression


def test_odata_unknown_property_lists_the_known_ones() -> None:
    with pytest.raises(FilterError) as caught:
        compile_odata("colour eq 'red'", MESSAGE)
    assert caught.value.allowed_values == sorted(MESSAGE)


def test_free_text_search() -> None:
    fields = {
        "subject": lambda i: i["subject"],
        "from": lambda i: i["from"]["emailAddress"]["address"],
    }
    search = lambda text: compile_search(text, fields, ["subject"], "filters.search")  # noqa: E731
    assert search("subject:important")(MESSAGE)
    assert search("budget")(MESSAGE)
    assert not search("ada")(MESSAGE)  # bare words look at the default fields only
    assert search("from:ada -subject:invoice")(MESSAGE)
    with pytest.raises(FilterError) as caught:
        search("body:x")
    assert caught.value.allowed_values == ["subject", "from"]

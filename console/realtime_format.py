"""Realtime `stream_event`s as one line of text, and what users type for stream types and filters.

Shared by the Socket.IO pane of the Tails tab and `streamops realtime`, so an event
reads the same in both. Choices where the spec is silent:

- Stream types have short names for typing and for narrow screens (`gmail` for
  `gmail_messages`, `calendar` for `calendar_events`, …); the spec's names work too.
- A line is `time event_type …`: a `data_update` shows its `data_type` and the item's
  title (subject, summary, name) and sender or path; `token_refresh` the new lifetime;
  `rate_limit_warning` the server's `warning_message` verbatim. Times are UTC, as the
  spec's epoch timestamps are.
- Stream filters are typed as `key=value` terms (`query="is:unread" label_ids=INBOX,IMPORTANT`)
  or as the spec's JSON object; `label_ids` splits on commas, `true`/`false` are booleans.
  The server judges the filter itself (`STREAM_CONFIG_ERROR` names the field).
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

import orjson

from backends.realtime.models import STREAM_TYPES

TYPE_ALIASES: dict[str, str] = {
    "gmail": "gmail_messages",
    "threads": "gmail_threads",
    "calendar": "calendar_events",
    "outlook": "outlook_messages",
    "outlook-events": "outlook_events",
    "contacts": "contacts",
    "files": "files",
}
SHORT_NAMES: dict[str, str] = {full: short for short, full in TYPE_ALIASES.items()}
NOTICES = frozenset({"token_refresh", "rate_limit_warning"})
LIST_FILTERS = frozenset({"label_ids"})


def resolve_type(name: str) -> str:
    """`gmail` or `gmail_messages` → `gmail_messages`; anything else is a ValueError."""
    wanted = name.strip().lower()
    if wanted in STREAM_TYPES:
        return wanted
    if wanted in TYPE_ALIASES:
        return TYPE_ALIASES[wanted]
    known = ", ".join(f"{short} ({full})" for short, full in TYPE_ALIASES.items())
    raise ValueError(f"unknown stream type {name!r}; one of: {known}")


def short_name(stream_type: str) -> str:
    return SHORT_NAMES.get(stream_type, stream_type)


def parse_stream_filters(text: str) -> dict[str, Any]:
    """What the user typed → the `filters` object of `POST /api/stream/start`."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            parsed: dict[str, Any] = orjson.loads(text)  # "{" starts an object or nothing
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"filters: not valid JSON: {exc}") from None
        return parsed
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"filters: {exc}") from None
    filters: dict[str, Any] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise ValueError(f"filters: {token!r} is not key=value (e.g. query=is:unread)")
        if key in LIST_FILTERS:
            filters[key] = [part for part in value.split(",") if part]
        elif value.lower() in ("true", "false"):
            filters[key] = value.lower() == "true"
        else:
            filters[key] = value
    return filters


def clock_of(timestamp: Any) -> str:
    """`HH:MM:SS` (UTC) of an epoch timestamp; dashes when there is none."""
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S")
        except (OverflowError, OSError, ValueError):
            pass
    return "--:--:--"


def _clip(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _address(value: Any) -> str:
    """A sender as Gmail (`"a@b"`) or Microsoft Graph (`{"emailAddress": {...}}`) gives it."""
    if isinstance(value, dict):
        inner = value.get("emailAddress")
        if isinstance(inner, dict):
            return str(inner.get("address") or inner.get("name") or "")
        return str(value.get("email") or value.get("address") or "")
    return "" if value is None else str(value)


def payload_summary(payload: dict[str, Any]) -> str:
    """The item's title and who or where it is from, whatever the provider."""
    title = next(
        (payload[k] for k in ("subject", "summary", "displayName", "name") if payload.get(k)), ""
    )
    who = _address(payload.get("from")) or _address(payload.get("organizer"))
    if not who and isinstance(payload.get("emailAddresses"), list) and payload["emailAddresses"]:
        who = _address(payload["emailAddresses"][0])
    if not who:
        who = str(payload.get("path") or "")
    if who and who != title:
        return f"{_clip(title, 48)} · {who}" if title else who
    return _clip(title, 48)


def format_event(event: dict[str, Any]) -> str:
    """One `stream_event` as one line (the tail's and `realtime listen`'s)."""
    kind = str(event.get("event_type") or "?")
    time = clock_of(event.get("timestamp"))
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    if kind == "data_update":
        payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
        return (
            f"{time} data_update  {_clip(data.get('data_type'), 24):<24} {payload_summary(payload)}"
        )
    provider = event.get("provider") or ""
    if kind == "token_refresh":
        expires = clock_of(data.get("new_expires_at"))
        return (
            f"{time} token_refresh  {provider}  token refreshed · expires in "
            f"{data.get('expires_in')} s (at {expires})"
        )
    if kind == "rate_limit_warning":
        return (
            f"{time} rate_limit_warning  {provider}  {data.get('warning_message', '')} "
            f"(quota resets {clock_of(data.get('reset_time'))})"
        )
    return f"{time} {kind}  {provider}"


def is_notice(event: dict[str, Any]) -> bool:
    """Token refreshes and rate-limit warnings: highlighted among the data updates."""
    return event.get("event_type") in NOTICES

"""Formatting shared by every view, so numbers, durations and states read the same everywhere."""

from __future__ import annotations

from typing import Literal

Tone = Literal["good", "warn", "bad", "off"]

_GOOD = frozenset({"healthy", "active", "running", "configured", "closed", "ok"})
_WARN = frozenset({"degraded", "inactive", "not_configured", "half_open", "stopped"})
_BAD = frozenset({"unhealthy", "error", "open", "unreachable", "failed"})
_TONE_STYLE: dict[Tone, str] = {
    "good": "$success",
    "warn": "$warning",
    "bad": "$error",
    "off": "$text-muted",
}


def tone_of(state: str) -> Tone:
    """Map a server's status word onto green/yellow/red/grey without knowing each check."""
    word = state.lower()
    if word in _GOOD:
        return "good"
    if word in _WARN:
        return "warn"
    if word in _BAD:
        return "bad"
    return "off"


def dot(state: str) -> str:
    """A coloured status dot as Textual markup; theme variables keep it readable in 16 colours."""
    tone = tone_of(state)
    return f"[{_TONE_STYLE[tone]}]{'○' if tone == 'off' else '●'}[/]"


def count(value: float) -> str:
    return f"{value:,.0f}"


def rate(value: float) -> str:
    """Events per second: one decimal while small, thousands separators when large."""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def hms(seconds: float) -> str:
    total = max(int(seconds), 0)
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def mmss(seconds: float) -> str:
    """Minutes may exceed 59 (a week-long disruption reads 10080:00); never negative."""
    total = max(int(seconds + 0.5), 0)
    return f"{total // 60:02d}:{total % 60:02d}"


def clock_time(iso: str | None) -> str:
    """`HH:MM:SS.mmm` out of an ISO-8601 timestamp; the date is noise in a live view."""
    if not iso or "T" not in iso:
        return iso or ""
    clock = iso.split("T", 1)[1].rstrip("Z")
    for sep in ("+", "-"):
        clock = clock.split(sep, 1)[0]
    return clock[:12]

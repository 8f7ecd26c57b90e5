"""Tail filters: free text, `field=value` and nested `a.b=value` terms, all AND-ed.

The grammar is what operators type into k9s or kaskade, nothing more:

- a bare word matches when it occurs anywhere in the message's JSON (keys and
  values), so `phishing` finds a tag value and `+1234` a phone number;
- `field=value` compares a field, `a.b=value` a nested one; a list on the way
  matches when any element does (`tags.value=Phishing`, `identifiers.type=phone`);
- quotes keep spaces in one term (`originator.name="James D"`).

Matching ignores case everywhere: an operator hunting a value rarely knows how
the server capitalised it. Numbers also compare as numbers (`confidence=1`
matches `1.0`). Filters are pure functions of a message, so they run on buffered
and new messages alike; the message and its JSON text are both asked for lazily,
so a tail can keep messages serialised and load only what a term looks at.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


class FilterError(ValueError):
    """A filter that cannot be parsed; the message says what to fix."""


def searchable_text(message: dict[str, Any]) -> str:
    """The message as compact JSON, lower-cased: what free-text terms search."""
    return orjson.dumps(message, default=str).decode().lower()


@dataclass(frozen=True)
class TextTerm:
    needle: str

    def matches(self, message: Callable[[], dict[str, Any]], text: Callable[[], str]) -> bool:
        return self.needle in text()


@dataclass(frozen=True)
class FieldTerm:
    path: tuple[str, ...]
    value: str

    def matches(self, message: Callable[[], dict[str, Any]], text: Callable[[], str]) -> bool:
        return any(_equal(found, self.value) for found in field_values(message(), self.path))


Term = TextTerm | FieldTerm


def field_values(node: Any, path: tuple[str, ...]) -> Iterator[Any]:
    """Every value at `path`, descending into each element of the lists met on the way."""
    if isinstance(node, list):
        for item in node:
            yield from field_values(item, path)
    elif not path:
        yield node
    elif isinstance(node, dict) and path[0] in node:
        yield from field_values(node[path[0]], path[1:])


def _equal(found: Any, wanted: str) -> bool:
    """Case-insensitive text equality, JSON spelling for bools and null, numbers by value."""
    if found is None:
        return wanted in ("null", "none", "")
    if isinstance(found, bool):
        return wanted == ("true" if found else "false")
    if isinstance(found, int | float):
        try:
            return math.isclose(float(wanted), float(found))
        except ValueError:
            return False
    if isinstance(found, str):
        return found.lower() == wanted
    return False


def _term(token: str) -> Term:
    key, sep, value = token.partition("=")
    if sep and _FIELD_PATH.fullmatch(key):
        return FieldTerm(tuple(key.split(".")), value.lower())
    return TextTerm(token.lower())


@dataclass(frozen=True)
class TailFilter:
    """A parsed filter; the empty filter matches everything."""

    source: str = ""
    terms: tuple[Term, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, message: dict[str, Any], text: Callable[[], str] | None = None) -> bool:
        """True when every term matches; `text` may supply `searchable_text` more cheaply."""
        return self.matches_lazy(lambda: message, text or (lambda: searchable_text(message)))

    def matches_lazy(self, message: Callable[[], dict[str, Any]], text: Callable[[], str]) -> bool:
        """`matches` for a stored message: it is loaded only if a field term needs it."""
        return all(term.matches(message, text) for term in self.terms)


def parse_filter(source: str) -> TailFilter:
    """Parse what the user typed; raises `FilterError` (e.g. for an unclosed quote)."""
    try:
        tokens = shlex.split(source)
    except ValueError as exc:
        raise FilterError(f"cannot parse filter: {exc}") from None
    return TailFilter(source.strip(), tuple(_term(token) for token in tokens if token))

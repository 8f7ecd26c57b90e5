"""The query languages of the spec's stream filters, compiled to predicates over items.

- Gmail search (`filters.query` of gmail streams): terms are ANDed; `-term` negates;
  operators `is:` (unread, read, starred, important), `in:` (inbox, sent, spam, trash,
  starred, important, anywhere), `label:`, `from:`, `to:`, `subject:`,
  `has:attachment`, `after:`/`before:` (YYYY/MM/DD), `newer_than:`/`older_than:`
  (Nd, Nm, Ny), `category:`; bare words and "quoted phrases" search subject, snippet
  and addresses. `OR` and grouping are refused rather than silently misread, and so
  is an unknown operator, naming the known ones.
- OData `$filter` (`filters.filter` of Microsoft streams, contacts and files):
  `eq ne gt ge lt le`, `and`, `or`, `not`, parentheses, `contains()`,
  `startswith()`, `endswith()`; literals 'strings', numbers, true/false/null and
  ISO date-times. Properties are paths (`from/emailAddress/address`), matched
  case-insensitively as Graph does; a path through a list matches if any element
  does (Graph would want `any()`). String comparison ignores case. A property the
  stream's items do not have is a configuration error naming the ones they have.
- Free-text search (`search`, and `query` outside Gmail): words and "phrases",
  optionally `property:value` for the properties a stream type names; ANDed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Item = dict[str, Any]
Predicate = Callable[[Item], bool]
_MISSING = object()


class FilterError(ValueError):
    """An invalid filter; becomes STREAM_CONFIG_ERROR with the same details."""

    def __init__(
        self,
        field: str,
        value: Any,
        message: str,
        allowed_values: Sequence[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message
        self.allowed_values = list(allowed_values) if allowed_values is not None else None


def parse_datetime(value: str) -> datetime | None:
    """ISO-8601 (with `Z`, an offset, or none meaning UTC), or None if it is not one."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- search terms shared by Gmail queries and free-text search ----------------

_TERM = re.compile(r'(-?)(?:([A-Za-z_]+):)?("[^"]*"|[^\s"]+)')


@dataclass(frozen=True, slots=True)
class _Term:
    negated: bool
    operator: str | None
    value: str


def _terms(text: str, field: str) -> Iterator[_Term]:
    position = 0
    for match in _TERM.finditer(text):
        if text[position : match.start()].strip():
            raise FilterError(field, text, "Unbalanced quote in query")
        position = match.end()
        negated, op, raw = match.groups()
        if op is None and raw == "AND":  # explicit AND is what juxtaposition means anyway
            continue
        if (op is None and raw == "OR") or raw[0] in "({":
            raise FilterError(field, text, f"'{raw}' is not supported: terms are ANDed")
        value = raw[1:-1] if raw.startswith('"') else raw
        yield _Term(bool(negated), op.lower() if op else None, value.lower())
    if text[position:].strip():
        raise FilterError(field, text, "Unbalanced quote in query")


def _negatable(check: Callable[[Any], bool], negated: bool) -> Callable[[Any], bool]:
    return (lambda x: not check(x)) if negated else check


def _all(checks: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return lambda x: all(check(x) for check in checks)


# -- Gmail -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailView:
    """What a Gmail query sees of a message or a thread; text fields lower-cased."""

    subject: str
    senders: tuple[str, ...]
    recipients: tuple[str, ...]
    labels: frozenset[str]
    text: str
    date: datetime
    has_attachment: bool


GMAIL_OPERATORS: tuple[str, ...] = (
    "is",
    "in",
    "label",
    "from",
    "to",
    "subject",
    "has",
    "after",
    "before",
    "newer_than",
    "older_than",
    "category",
)
_IS = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}
_IN = {"inbox", "sent", "spam", "trash", "starred", "important", "anywhere"}
_CATEGORIES = {
    "primary": "CATEGORY_PERSONAL",
    "personal": "CATEGORY_PERSONAL",
    "social": "CATEGORY_SOCIAL",
    "promotions": "CATEGORY_PROMOTIONS",
    "updates": "CATEGORY_UPDATES",
    "forums": "CATEGORY_FORUMS",
}
_AGE_UNITS = {"d": 1, "m": 30, "y": 365}


def _gmail_date(value: str, field: str) -> datetime:
    for pattern in ("%Y/%m/%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise FilterError(field, value, f"Invalid date '{value}': use YYYY/MM/DD")


def _gmail_term(term: _Term, now: datetime, field: str) -> Callable[[MailView], bool]:
    op, value = term.operator, term.value
    if op is None:
        return lambda v: value in v.text
    if op == "is":
        if value == "read":
            return lambda v: "UNREAD" not in v.labels
        if value not in _IS:
            raise FilterError(field, f"is:{value}", "Unknown is: value", [*_IS, "read"])
        label = _IS[value]
        return lambda v: label in v.labels
    if op == "in":
        if value not in _IN:
            raise FilterError(field, f"in:{value}", "Unknown in: value", sorted(_IN))
        if value == "anywhere":
            return lambda v: True
        label = value.upper()
        return lambda v: label in v.labels
    if op == "label":
        label = value.upper().replace(" ", "-")
        return lambda v: label in v.labels
    if op == "from":
        return lambda v: any(value in s for s in v.senders)
    if op == "to":
        return lambda v: any(value in r for r in v.recipients)
    if op == "subject":
        return lambda v: value in v.subject
    if op == "has":
        if value != "attachment":
            raise FilterError(field, f"has:{value}", "Unknown has: value", ["attachment"])
        return lambda v: v.has_attachment
    if op in ("after", "before"):
        bound = _gmail_date(value, field)
        return (lambda v: v.date >= bound) if op == "after" else (lambda v: v.date < bound)
    if op in ("newer_than", "older_than"):
        match = re.fullmatch(r"(\d+)([dmy])", value)
        if not match:
            raise FilterError(field, f"{op}:{value}", "Use a number and d, m or y, e.g. 2d")
        cutoff = now - timedelta(days=int(match[1]) * _AGE_UNITS[match[2]])
        return (lambda v: v.date > cutoff) if op == "newer_than" else (lambda v: v.date <= cutoff)
    if op == "category":
        if value not in _CATEGORIES:
            raise FilterError(field, f"category:{value}", "Unknown category", list(_CATEGORIES))
        label = _CATEGORIES[value]
        return lambda v: label in v.labels
    raise FilterError(field, f"{op}:{value}", f"Unknown search operator '{op}:'", GMAIL_OPERATORS)


def compile_gmail_query(
    query: str, now: datetime, field: str = "filters.query"
) -> tuple[Callable[[MailView], bool], bool]:
    """A predicate over `MailView`s, and whether the query itself asks for spam or trash."""
    checks = []
    selects_spam_trash = False
    for term in _terms(query, field):
        checks.append(_negatable(_gmail_term(term, now, field), term.negated))
        if term.operator == "in" and term.value in {"spam", "trash", "anywhere"}:
            selects_spam_trash = selects_spam_trash or not term.negated
    return _all(checks), selects_spam_trash


# -- free-text search --------------------------------------------------------


def compile_search(
    text: str,
    fields: Mapping[str, Callable[[Item], str]],
    default: Sequence[str],
    field: str,
) -> Predicate:
    """`word "a phrase" subject:important -from:bob`: every term must match."""
    checks: list[Callable[[Any], bool]] = []
    for term in _terms(text, field):
        if term.operator is None:
            extractors = [fields[name] for name in default]
        elif term.operator in fields:
            extractors = [fields[term.operator]]
        else:
            raise FilterError(
                field, f"{term.operator}:{term.value}", "Unknown search property", list(fields)
            )
        value = term.value

        def check(item: Item, value: str = value, extractors: list = extractors) -> bool:
            return any(value in extract(item).lower() for extract in extractors)

        checks.append(_negatable(check, term.negated))
    return _all(checks)


# -- OData $filter -------------------------------------------------------------

_ODATA_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_/]*)
    )""",
    re.X,
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b in a,
    "startswith": str.startswith,
    "endswith": str.endswith,
}
_CONSTANTS = {"true": True, "false": False, "null": None}


def _resolve(item: Any, path: str) -> Any:
    """The value at `a/b/c` (keys case-insensitive); a list fans out to a list of values."""
    value = item
    for key in path.split("/"):
        if isinstance(value, list):
            found = [_resolve(element, key) for element in value]
            value = [v for v in found if v is not _MISSING]
            continue
        if not isinstance(value, dict):
            return _MISSING
        if key in value:
            value = value[key]
            continue
        lowered = key.lower()
        value = next((v for k, v in value.items() if k.lower() == lowered), _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def _coerce(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Make an item value and a literal comparable, or None when they cannot be."""
    if isinstance(right, datetime):
        moment = parse_datetime(left) if isinstance(left, str) else None
        return (moment, right) if moment else None
    if isinstance(right, str) and isinstance(left, str):
        return left.lower(), right.lower()
    if right is None or left is None:
        return left, right
    if isinstance(right, bool) or isinstance(left, bool):
        return (left, right) if isinstance(left, bool) and isinstance(right, bool) else None
    if isinstance(right, int | float) and isinstance(left, int | float):
        return left, right
    return None


class _ODataParser:
    def __init__(self, text: str, field: str, sample: Item) -> None:
        self.text, self.field, self.sample = text, field, sample
        self.tokens = self._tokenize(text)
        self.position = 0

    def _error(self, message: str) -> FilterError:
        return FilterError(self.field, self.text, message)

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(text):
            if not text[position:].strip():
                break
            match = _ODATA_TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise self._error(f"Cannot parse filter at '{text[position:].strip()}'")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match[kind]))
            position = match.end()
        return tokens

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self, what: str) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise self._error(f"Filter ends where {what} was expected")
        self.position += 1
        return token

    def _keyword(self, *words: str) -> str | None:
        token = self._peek()
        if token and token[0] == "word" and token[1].lower() in words:
            self.position += 1
            return token[1].lower()
        return None

    def _punct(self, char: str) -> None:
        kind, value = self._next(f"'{char}'")
        if (kind, value) != ("punct", char):
            raise self._error(f"Expected '{char}', found '{value}'")

    def parse(self) -> Predicate:
        predicate = self._or()
        if self._peek() is not None:
            raise self._error(f"Unexpected '{self._peek()[1]}'")  # type: ignore[index]
        return predicate

    def _or(self) -> Predicate:
        left = self._and()
        while self._keyword("or"):
            right = self._and()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def _and(self) -> Predicate:
        left = self._unary()
        while self._keyword("and"):
            right = self._unary()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def _unary(self) -> Predicate:
        if self._keyword("not"):
            inner = self._unary()
            return lambda item: not inner(item)
        token = self._peek()
        if token == ("punct", "("):
            self.position += 1
            inner = self._or()
            self._punct(")")
            return inner
        if token and token[0] == "word" and token[1].lower() in _FUNCTIONS:
            return self._function()
        return self._comparison()

    def _path(self) -> str:
        kind, value = self._next("a property")
        if kind != "word" or value.lower() in _COMPARISONS or value.lower() in _CONSTANTS:
            raise self._error(f"Expected a property, found '{value}'")
        if _resolve(self.sample, value) is _MISSING:
            raise FilterError(
                self.field, self.text, f"Unknown property '{value}'", sorted(self.sample)
            )
        return value

    def _literal(self) -> Any:
        kind, value = self._next("a value")
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "datetime":
            moment = parse_datetime(value)
            if moment is None:
                raise self._error(f"Invalid date-time '{value}'")
            return moment
        if kind == "word" and value.lower() in _CONSTANTS:
            return _CONSTANTS[value.lower()]
        raise self._error(f"Expected a value, found '{value}'")

    def _comparison(self) -> Predicate:
        path = self._path()
        token = self._peek()
        if token is None or token == ("punct", ")") or token[1].lower() in ("and", "or"):
            return lambda item: _resolve(item, path) is True  # a bare boolean property
        kind, word = self._next("an operator")
        compare = _COMPARISONS.get(word.lower()) if kind == "word" else None
        if compare is None:
            raise FilterError(
                self.field, self.text, f"Unknown operator '{word}'", list(_COMPARISONS)
            )
        literal = self._literal()
        if isinstance(literal, str) and (moment := parse_datetime(literal)) and "T" in literal:
            literal = moment

        def test(value: Any) -> bool:
            pair = _coerce(value, literal)
            if pair is None:
                return compare is operator.ne
            try:
                return bool(compare(*pair))
            except TypeError:  # an ordering against null
                return False

        def predicate(item: Item) -> bool:
            value = _resolve(item, path)
            if isinstance(value, list):
                return any(test(v) for v in value)
            return test(value)

        return predicate

    def _function(self) -> Predicate:
        function = _FUNCTIONS[self._next("a function")[1].lower()]
        self._punct("(")
        path = self._path()
        self._punct(",")
        literal = self._literal()
        self._punct(")")
        if not isinstance(literal, str):
            raise self._error("String functions take a 'quoted' argument")
        needle = literal.lower()

        def predicate(item: Item) -> bool:
            value = _resolve(item, path)
            values = value if isinstance(value, list) else [value]
            return any(isinstance(v, str) and function(v.lower(), needle) for v in values)

        return predicate


def compile_odata(text: str, sample: Item, field: str = "filters.filter") -> Predicate:
    """A predicate for an OData `$filter` expression over items shaped like `sample`."""
    return _ODataParser(text, field, sample).parse()

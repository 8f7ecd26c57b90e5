"""Synthetic provider accounts: mail, threads, calendars, contacts and files, with filters.

Every stream type of the spec has a seeded generator of items shaped like its
provider's API (Gmail, Google Calendar, Microsoft Graph; contacts and files share
one Graph-like shape for both providers) and a filter model naming the filters the
spec gives it. All sessions of a provider see the same account for a given seed,
with its history laid out back from the session's creation time: same seed, same
clock, same items, which keeps tests and snapshots deterministic. Addresses use the
reserved example domains, plus the spec's own `sender@example.com` and
`important@example.com`.

A `Dataset` is one stream's view: its history (the account's `mailbox_size` items,
newest first for mail and files, in start order for calendars), filtered, and new
items "arriving" for `real_time` streams, filtered the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from backends.realtime.filters import (
    FilterError,
    Item,
    MailView,
    Predicate,
    compile_gmail_query,
    compile_odata,
    compile_search,
    parse_datetime,
)

OWNER = "you@example.com"
_FIRST = (  # noqa: SIM905 - word lists read best as text
    "Ada Alan Grace Linus Margaret Ken Barbara Dennis Frances Edsger Radia Tim Hedy John "
    "Katherine Donald Shafi Leslie Sophie Guido Anita Niklaus Yukihiro Joan"
).split()
_LAST = (  # noqa: SIM905 - word lists read best as text
    "Lovelace Turing Hopper Torvalds Hamilton Thompson Liskov Ritchie Allen Dijkstra "
    "Perlman Berners-Lee Lamarr McCarthy Johnson Knuth Goldwasser Lamport Wilson Rossum "
    "Borg Wirth Matsumoto Clarke"
).split()
_DOMAINS = ("example.com", "example.org", "example.net", "acme.example", "contoso.example")
_COMPANIES = ("Acme", "Contoso", "Fabrikam", "Northwind", "Globex", "Initech", "Umbrella")
_TITLES = ("Engineer", "Manager", "Director", "Analyst", "Designer", "Consultant", "Founder")
_TOPICS = (
    "Q3 roadmap",
    "budget review",
    "launch plan",
    "hiring loop",
    "incident 4521",
    "design sync",
    "customer escalation",
    "offsite agenda",
    "release 2.4",
    "security audit",
    "data migration",
    "partner contract",
)
_SUBJECTS = (
    "Re: {topic}",
    "Meeting notes: {topic}",
    "Important: {topic}",
    "Action required: {topic}",
    "Fwd: {topic}",
    "Invoice #{n} from {company}",
    "Your order {n} has shipped",
    "Weekly newsletter from {company}",
    "Flight confirmation {code}",
    "Lunch on Friday?",
)
_WORDS = (  # noqa: SIM905 - word lists read best as text
    "please review the attached draft before our call tomorrow and share any concerns the "
    "numbers look good overall but we need to confirm the timeline with finance thanks "
    "for the quick turnaround let me know if anything else is needed"
).split()
_EVENTS = (
    "Team meeting",
    "1:1 with {name}",
    "Sprint planning",
    "Customer call: {company}",
    "Design review: {topic}",
    "All-hands meeting",
    "Lunch with {name}",
    "Interview: {title}",
    "Dentist",
    "Quarterly business review",
)
_LOCATIONS = ("Room 4.01", "Room 2.12", "Zoom", "Teams", "Cafe Central", "HQ Auditorium", "")
_FILES = (
    ("{topic} notes.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml"),
    ("{topic} budget.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml"),
    ("{topic} deck.pptx", "application/vnd.openxmlformats-officedocument.presentationml"),
    ("{topic}.pdf", "application/pdf"),
    ("IMG_{n}.jpg", "image/jpeg"),
    ("{topic} export.csv", "text/csv"),
)
_FOLDERS = ("/", "/Projects", "/Finance", "/Shared", "/Photos", "/Archive")
_USER_LABELS = ("Work", "Travel", "Receipts", "Family")
_CATEGORIES = (
    "CATEGORY_PERSONAL",
    "CATEGORY_UPDATES",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_SOCIAL",
    "CATEGORY_FORUMS",
)


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    address: str


def _people(seed: int, provider: str) -> tuple[Person, ...]:
    rng = random.Random(f"{seed}:{provider}:people")
    people = [
        Person("Sam Sender", "sender@example.com"),
        Person("Important Person", "important@example.com"),
    ]
    for _ in range(120):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        domain = rng.choice(_DOMAINS)
        people.append(Person(f"{first} {last}", f"{first}.{last}@{domain}".lower()))
    return tuple(people)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _graph_time(moment: datetime) -> dict[str, str]:
    """Graph's dateTimeTimeZone: a local time without offset, plus the zone."""
    local = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000")
    return {"dateTime": local, "timeZone": "UTC"}


def _hex_id(rng: random.Random, bits: int = 64) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


@dataclass(frozen=True, slots=True)
class _Context:
    """What item generators share: the account's people, and its owner."""

    people: tuple[Person, ...]
    provider: str

    def person(self, rng: random.Random) -> Person:
        roll = rng.random()  # the spec's two addresses turn up often enough to filter on
        if roll < 0.05:
            return self.people[0]
        if roll < 0.10:
            return self.people[1]
        return self.people[rng.randrange(2, len(self.people))]

    def fill(self, rng: random.Random, template: str) -> str:
        return template.format(
            topic=rng.choice(_TOPICS),
            company=rng.choice(_COMPANIES),
            name=self.person(rng).name,
            title=rng.choice(_TITLES),
            n=rng.randrange(1000, 99999),
            code=f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randrange(100, 999)}",
        )

    def sentence(self, rng: random.Random) -> str:
        start = rng.randrange(len(_WORDS) - 12)
        return " ".join(_WORDS[start : start + rng.randrange(6, 12)]).capitalize() + "."


# -- item generators -----------------------------------------------------------


def _gmail_labels(rng: random.Random, sender: Person, sent: bool) -> list[str]:
    roll = rng.random()
    folder = (
        ["SENT"]
        if sent
        else ["SPAM"]
        if roll < 0.04
        else ["TRASH"]
        if roll < 0.07
        else []
        if roll < 0.15
        else ["INBOX"]
    )
    labels = [*folder, rng.choice(_CATEGORIES)]
    if not sent and rng.random() < 0.35:
        labels.append("UNREAD")
    if rng.random() < 0.08:
        labels.append("STARRED")
    if sender.address == "important@example.com" or rng.random() < 0.2:
        labels.append("IMPORTANT")
    if rng.random() < 0.15:
        labels.append(rng.choice(_USER_LABELS))
    return labels


def _gmail_message(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    sent = rng.random() < 0.1
    other = ctx.person(rng)
    sender, recipient = (Person("You", OWNER), other) if sent else (other, Person("You", OWNER))
    snippet = ctx.sentence(rng)
    return {
        "id": _hex_id(rng),
        "threadId": _hex_id(rng),
        "subject": ctx.fill(rng, rng.choice(_SUBJECTS)),
        "from": sender.address,
        "fromName": sender.name,
        "to": [recipient.address],
        "date": _iso(moment),
        "internalDate": str(int(moment.timestamp() * 1000)),
        "snippet": snippet,
        "labelIds": _gmail_labels(rng, other, sent),
        "hasAttachment": rng.random() < 0.2,
        "sizeEstimate": rng.randrange(2_000, 400_000),
    }


def _gmail_thread(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    participants = [ctx.person(rng) for _ in range(rng.randrange(1, 4))]
    last = participants[-1]
    return {
        "id": _hex_id(rng),
        "historyId": str(rng.randrange(10**6, 10**7)),
        "subject": ctx.fill(rng, rng.choice(_SUBJECTS)),
        "from": last.address,
        "fromName": last.name,
        "participants": [p.address for p in participants],
        "messageCount": rng.randrange(1, 9),
        "date": _iso(moment),
        "snippet": ctx.sentence(rng),
        "labelIds": _gmail_labels(rng, last, sent=False),
        "hasAttachment": rng.random() < 0.25,
    }


def _calendar_event(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    start = moment.replace(minute=(moment.minute // 15) * 15, second=0, microsecond=0)
    end = start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90, 120)))
    attendees = [ctx.person(rng) for _ in range(rng.randrange(0, 5))]
    return {
        "id": _hex_id(rng, 96),
        "status": "cancelled" if rng.random() < 0.05 else "confirmed",
        "summary": ctx.fill(rng, rng.choice(_EVENTS)),
        "description": ctx.sentence(rng),
        "location": rng.choice(_LOCATIONS),
        "start": {"dateTime": _iso(start)},
        "end": {"dateTime": _iso(end)},
        "organizer": {"email": (attendees[0].address if attendees else OWNER)},
        "attendees": [
            {"email": p.address, "responseStatus": rng.choice(("accepted", "needsAction"))}
            for p in attendees
        ],
    }


def _graph_address(person: Person) -> dict[str, dict[str, str]]:
    return {"emailAddress": {"name": person.name, "address": person.address}}


def _outlook_message(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    sender = ctx.person(rng)
    return {
        "id": "AAMk" + _hex_id(rng, 96),
        "conversationId": "AAQk" + _hex_id(rng),
        "subject": ctx.fill(rng, rng.choice(_SUBJECTS)),
        "bodyPreview": ctx.sentence(rng),
        "from": _graph_address(sender),
        "toRecipients": [_graph_address(Person("You", OWNER))],
        "receivedDateTime": _iso(moment),
        "isRead": rng.random() >= 0.35,
        "importance": "high"
        if sender.address == "important@example.com" or rng.random() < 0.1
        else rng.choice(("normal", "normal", "normal", "low")),
        "hasAttachments": rng.random() < 0.2,
        "categories": [rng.choice(("Blue category", "Red category"))] if rng.random() < 0.1 else [],
        "flag": {"flagStatus": "flagged" if rng.random() < 0.08 else "notFlagged"},
        "inferenceClassification": "focused" if rng.random() < 0.7 else "other",
    }


def _outlook_event(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    start = moment.replace(minute=(moment.minute // 15) * 15, second=0, microsecond=0)
    end = start + timedelta(minutes=rng.choice((15, 30, 30, 45, 60, 60, 90, 120)))
    attendees = [ctx.person(rng) for _ in range(rng.randrange(0, 5))]
    return {
        "id": "AAMk" + _hex_id(rng, 96),
        "subject": ctx.fill(rng, rng.choice(_EVENTS)),
        "bodyPreview": ctx.sentence(rng),
        "start": _graph_time(start),
        "end": _graph_time(end),
        "location": {"displayName": rng.choice(_LOCATIONS)},
        "organizer": _graph_address(attendees[0] if attendees else Person("You", OWNER)),
        "attendees": [{**_graph_address(p), "type": "required"} for p in attendees],
        "isAllDay": False,
        "isCancelled": rng.random() < 0.05,
        "importance": "high" if rng.random() < 0.1 else "normal",
        "showAs": rng.choice(("busy", "busy", "tentative", "free", "oof")),
    }


def _contact(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    person = ctx.person(rng)
    given, _, surname = person.name.partition(" ")
    return {
        "id": _hex_id(rng),
        "displayName": person.name,
        "givenName": given,
        "surname": surname,
        "emailAddresses": [{"name": person.name, "address": person.address}],
        "businessPhones": [f"+1 555 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"],
        "companyName": rng.choice(_COMPANIES),
        "jobTitle": rng.choice(_TITLES),
        "lastModifiedDateTime": _iso(moment),
    }


def _file(rng: random.Random, moment: datetime, ctx: _Context) -> Item:
    template, mime = rng.choice(_FILES)
    name = ctx.fill(rng, template)
    folder = rng.choice(_FOLDERS)
    file_id = _hex_id(rng)
    return {
        "id": file_id,
        "name": name,
        "mimeType": mime,
        "size": rng.randrange(1_000, 50_000_000),
        "path": f"{folder.rstrip('/')}/{name}",
        "owner": OWNER if rng.random() < 0.7 else ctx.person(rng).address,
        "createdTime": _iso(moment - timedelta(days=rng.randrange(0, 400))),
        "modifiedTime": _iso(moment),
        "starred": rng.random() < 0.1,
        "trashed": rng.random() < 0.05,
        "webUrl": f"https://files.example.com/{ctx.provider}/{file_id}",
    }


# -- filters ---------------------------------------------------------------------


class _Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GmailFilters(_Filters):
    query: str | None = None
    label_ids: list[str] | None = None
    include_spam_trash: bool = False


class _TimeWindow(_Filters):
    time_min: datetime | None = None
    time_max: datetime | None = None

    @field_validator("time_min", "time_max")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


class CalendarFilters(_TimeWindow):
    query: str | None = None


class OutlookMessageFilters(_Filters):
    filter: str | None = None
    search: str | None = None


class OutlookEventFilters(_TimeWindow):
    filter: str | None = None
    search: str | None = None


class DirectoryFilters(_Filters):
    """Contacts and files: Google-style `query`, Graph-style `filter` and `search`."""

    query: str | None = None
    filter: str | None = None
    search: str | None = None


def _mail_view(item: Item) -> MailView:
    """Messages have a sender and `to`; threads have `participants` (all count as senders)."""
    name = item.get("fromName", "")
    senders = tuple(f"{a} {name}".lower() for a in item.get("participants", [item["from"]]))
    subject = item["subject"].lower()
    date = parse_datetime(item["date"])
    assert date is not None
    return MailView(
        subject=subject,
        senders=senders,
        recipients=tuple(a.lower() for a in item.get("to", [OWNER])),
        labels=frozenset(label.upper() for label in item["labelIds"]),
        text=" ".join((subject, item["snippet"].lower(), *senders)),
        date=date,
        has_attachment=item["hasAttachment"],
    )


def _gmail_predicate(filters: GmailFilters, now: datetime) -> Predicate:
    checks: list[Callable[[MailView], bool]] = []
    selects_spam_trash = False
    if filters.query:
        matches, selects_spam_trash = compile_gmail_query(filters.query, now)
        checks.append(matches)
    if filters.label_ids:
        wanted = frozenset(label.upper() for label in filters.label_ids)
        checks.append(lambda v: wanted <= v.labels)
    if not (filters.include_spam_trash or selects_spam_trash):
        checks.append(lambda v: not v.labels & {"SPAM", "TRASH"})
    return lambda item: all(check(_mail_view(item)) for check in checks)


def _text(*paths: str) -> Callable[[Item], str]:
    """An extractor joining the strings found at `paths` (lists flattened)."""

    def walk(value: Any, keys: list[str]) -> Iterator[str]:
        if isinstance(value, list):
            for element in value:
                yield from walk(element, keys)
        elif not keys:
            if isinstance(value, str):
                yield value
        elif isinstance(value, dict):
            yield from walk(value.get(keys[0]), keys[1:])

    split = [path.split("/") for path in paths]
    return lambda item: " ".join(text for keys in split for text in walk(item, keys))


def _start_end(item: Item) -> tuple[datetime, datetime]:
    start = parse_datetime(item["start"]["dateTime"])
    end = parse_datetime(item["end"]["dateTime"])
    assert start and end
    return start, end


def _time_window_checks(filters: _TimeWindow) -> list[Predicate]:
    """Google Calendar's semantics: time_min bounds the end, time_max the start (exclusive)."""
    checks: list[Predicate] = []
    if filters.time_min and filters.time_max and filters.time_min >= filters.time_max:
        raise FilterError(
            "filters.time_max", filters.time_max.isoformat(), "time_max must be after time_min"
        )
    if filters.time_min:
        low = filters.time_min
        checks.append(lambda item: _start_end(item)[1] > low)
    if filters.time_max:
        high = filters.time_max
        checks.append(lambda item: _start_end(item)[0] < high)
    return checks


@dataclass(frozen=True)
class StreamKind:
    """One stream type: its items, where they sit in time, and its filters."""

    stream_type: str
    item_kind: str
    providers: tuple[str, ...]
    make: Callable[[random.Random, datetime, _Context], Item]
    filters: type[_Filters]
    mean_gap: timedelta
    chronological: bool = False
    search_fields: dict[str, Callable[[Item], str]] | None = None
    search_default: tuple[str, ...] = ()

    @property
    def data_type(self) -> str:
        return f"{self.stream_type}_{self.item_kind}"

    def parse_filters(self, raw: dict[str, Any]) -> _Filters:
        try:
            return self.filters.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            location = ".".join(str(p) for p in error["loc"])
            allowed = (
                list(self.filters.model_fields) if error["type"] == "extra_forbidden" else None
            )
            message = (
                f"Unknown filter for {self.stream_type}"
                if allowed is not None
                else f"Invalid filter: {error['msg']}"
            )
            raise FilterError(f"filters.{location}", error.get("input"), message, allowed) from exc

    def predicate(self, raw: dict[str, Any], now: datetime, sample: Item) -> Predicate:
        filters = self.parse_filters(raw)
        if isinstance(filters, GmailFilters):
            return _gmail_predicate(filters, now)
        checks: list[Predicate] = []
        if isinstance(filters, _TimeWindow):
            checks += _time_window_checks(filters)
        fields = self.search_fields or {}
        for name in ("query", "search"):
            text = getattr(filters, name, None)
            if text:
                checks.append(compile_search(text, fields, self.search_default, f"filters.{name}"))
        expression = getattr(filters, "filter", None)
        if expression:
            checks.append(compile_odata(expression, sample))
        return lambda item: all(check(item) for check in checks)


_GRAPH_MAIL_SEARCH = {
    "subject": _text("subject"),
    "from": _text("from/emailAddress/address", "from/emailAddress/name"),
    "to": _text("toRecipients/emailAddress/address"),
    "body": _text("bodyPreview"),
}
_GRAPH_EVENT_SEARCH = {
    "subject": _text("subject"),
    "body": _text("bodyPreview"),
    "location": _text("location/displayName"),
    "attendee": _text("attendees/emailAddress/address", "organizer/emailAddress/address"),
}
_CALENDAR_SEARCH = {
    "summary": _text("summary"),
    "description": _text("description"),
    "location": _text("location"),
    "attendee": _text("attendees/email", "organizer/email"),
}
_CONTACT_SEARCH = {
    "name": _text("displayName"),
    "email": _text("emailAddresses/address"),
    "company": _text("companyName"),
    "title": _text("jobTitle"),
}
_FILE_SEARCH = {
    "name": _text("name"),
    "path": _text("path"),
    "owner": _text("owner"),
    "type": _text("mimeType"),
}
KINDS: dict[str, StreamKind] = {
    kind.stream_type: kind
    for kind in (
        StreamKind(
            "gmail_messages",
            "message",
            ("google",),
            _gmail_message,
            GmailFilters,
            timedelta(minutes=40),
        ),
        StreamKind(
            "gmail_threads", "thread", ("google",), _gmail_thread, GmailFilters, timedelta(hours=2)
        ),
        StreamKind(
            "calendar_events",
            "event",
            ("google",),
            _calendar_event,
            CalendarFilters,
            timedelta(hours=4),
            chronological=True,
            search_fields=_CALENDAR_SEARCH,
            search_default=tuple(_CALENDAR_SEARCH),
        ),
        StreamKind(
            "outlook_messages",
            "message",
            ("microsoft",),
            _outlook_message,
            OutlookMessageFilters,
            timedelta(minutes=40),
            search_fields=_GRAPH_MAIL_SEARCH,
            search_default=("subject", "body", "from"),
        ),
        StreamKind(
            "outlook_events",
            "event",
            ("microsoft",),
            _outlook_event,
            OutlookEventFilters,
            timedelta(hours=4),
            chronological=True,
            search_fields=_GRAPH_EVENT_SEARCH,
            search_default=tuple(_GRAPH_EVENT_SEARCH),
        ),
        StreamKind(
            "contacts",
            "contact",
            ("google", "microsoft"),
            _contact,
            DirectoryFilters,
            timedelta(days=1),
            search_fields=_CONTACT_SEARCH,
            search_default=tuple(_CONTACT_SEARCH),
        ),
        StreamKind(
            "files",
            "file",
            ("google", "microsoft"),
            _file,
            DirectoryFilters,
            timedelta(hours=6),
            search_fields=_FILE_SEARCH,
            search_default=("name", "path"),
        ),
    )
}
CALENDAR_LOOKBACK = timedelta(days=60)  # calendars start this far before the anchor
ARRIVAL_LEAD = (timedelta(hours=1), timedelta(days=14))  # new events start this far ahead


class Dataset:
    """One stream's items: the filtered history, then (for real_time) arrivals."""

    def __init__(
        self,
        kind: StreamKind,
        provider: str,
        *,
        seed: int,
        anchor: datetime,
        size: int,
        filters: dict[str, Any],
        now: datetime,
    ) -> None:
        self.kind = kind
        self._seed_key = f"{seed}:{provider}:{kind.stream_type}"
        self._ctx = _Context(_people(seed, provider), provider)
        self._anchor = anchor
        self._size = size
        sample = kind.make(random.Random(0), anchor, self._ctx)
        self._matches = kind.predicate(filters, now, sample)
        self._live = random.Random(f"{self._seed_key}:live")

    def history(self) -> Iterator[Item]:
        rng = random.Random(f"{self._seed_key}:history")
        kind, mean = self.kind, self.kind.mean_gap.total_seconds()
        moment = self._anchor - CALENDAR_LOOKBACK if kind.chronological else self._anchor
        sign = 1 if kind.chronological else -1
        for _ in range(self._size):
            moment += timedelta(seconds=sign * rng.expovariate(1 / mean))
            item = kind.make(rng, moment, self._ctx)
            if self._matches(item):
                yield item

    def arrival_gap(self, mean_seconds: float) -> float:
        """Seconds until the next new item arrives (exponential, seeded)."""
        return self._live.expovariate(1 / mean_seconds)

    def arrival(self, now: datetime) -> Item | None:
        """A new item as of `now`, or None when the stream's filters reject it."""
        rng = self._live
        moment = now
        if self.kind.chronological:
            low, high = ARRIVAL_LEAD
            moment += timedelta(seconds=rng.uniform(low.total_seconds(), high.total_seconds()))
        item = self.kind.make(rng, moment, self._ctx)
        return item if self._matches(item) else None


def describe_filters(stream_type: str) -> list[str]:
    return list(KINDS[stream_type].filters.model_fields)

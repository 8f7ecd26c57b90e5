"""Synthetic scam-intelligence data for the demo export streams, seeded and clock-driven.

`SyntheticFeed` makes journal entries (calls, emails, texts, detections, reports,
payments, website visits) that mention identifiers from a pool, and identifier
state changes (new tags, confidence) that point back at the journal entry that
triggered them. Field names and shapes follow export-stream.md's samples and its
identifier detail classes (`details` of an identifier message, `data` of an
identifier inside a journal entry, one shape per type). The same seed and clock
readings give the same messages; ids are UUID4-shaped values from the RNG.

`FeedRunner` publishes to several streams at `rate` messages per second *each*,
in ticks of 50 ms (one pipelined batch per stream per tick), paced by the
injected clock: under a `ManualClock` nothing is published until time advances.
A runner that falls more than a second behind skips ahead rather than bursting.
A tick whose publishing fails (Redis gone) drops its messages; the failure is
logged once per outage and the next ticks try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import string
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backends.common.clock import Clock, iso_z

log = logging.getLogger(__name__)

Message = dict[str, Any]
Publish = Callable[[str, Sequence[Message]], Awaitable[list[str]]]

TICK_SECONDS = 0.05
POOL_SIZE = 200

JOURNAL_TYPES = (
    "phone_call",
    "email",
    "text_message",
    "detection",
    "report",
    "payment",
    "website_visit",
)
IDENTIFIER_TYPES = (
    "phone",
    "email",
    "url",
    "bank_account",
    "crypto_wallet",
    "social_media",
    "zelle",
    "payment_token",
)
THREAT_TYPES = (
    "Phishing",
    "Romance Scam",
    "Tech Support Scam",
    "Investment Fraud",
    "Impersonation",
    "Advance Fee Fraud",
    "Fake Invoice",
)
TAG_VALUES: dict[str, tuple[str, ...]] = {
    "Threat Type": THREAT_TYPES,
    "Status": ("Suspected", "Confirmed", "Cleared"),
    "Source": ("User Report", "Automated Scanner", "Partner Feed", "Analyst Review"),
}
ORIGINATORS = (
    ("user", "James D"),
    ("user", "Priya S"),
    ("user", "Maria G"),
    ("user", "Tom W"),
    ("system", "Automated Scanner"),
    ("system", "Call Analytics"),
    ("partner", "Bank Fraud Desk"),
    ("partner", "Telecom Abuse Team"),
)
EVIDENCE = (
    ("screenshot", "Screenshot of phishing page"),
    ("audio_recording", "Recording of the call"),
    ("email_header", "Full headers of the reported email"),
    ("transaction_receipt", "Receipt of the disputed transfer"),
    ("chat_log", "Export of the chat conversation"),
)
EVIDENCE_SOURCES = ("Automated Scanner", "User Report", "Partner Feed", "Analyst")
DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "phone_call": ("", "Caller claimed to be from the IRS", "Robocall about a car warranty"),
    "email": ("Phishing email impersonating a bank", "Fake invoice with payment link"),
    "text_message": ("Package delivery smishing", "Toll payment scam text"),
    "detection": ("Phishing detected", "Lookalike domain detected", "Mule account flagged"),
    "report": ("Victim report via web form", "Report forwarded by partner"),
    "payment": ("Payment to suspected mule account", "Gift card payment demanded"),
    "website_visit": ("Visited credential harvesting page", "Fake investment platform"),
}
BANKS = (
    ("First National Bank", "021000021", "FNBKUS33"),
    ("Coastal Credit Union", "322271627", "CCUNUS6L"),
    ("Metro Savings", "026009593", "MTROUS3N"),
    ("Harbor Trust", "111000025", "HRBTUS44"),
)
NAMES = ("Alex Carter", "Sam Lee", "Jordan Blake", "Chris Morgan", "Taylor Reed", "Pat Quinn")
STREETS = ("Main St", "Oak Ave", "Pine Rd", "Elm St", "Harbor Blvd")
CITIES = (("Austin", "TX"), ("Miami", "FL"), ("Phoenix", "AZ"), ("Newark", "NJ"))
SCAM_DOMAINS = (
    "secure-login-verify.com",
    "acct-update.net",
    "paypa1-support.com",
    "dhl-track.info",
)
MAIL_DOMAINS = ("gmail.com", "outlook.com", "protonmail.com", "yahoo.com")
TEST_DOMAIN = "example.com"
SOCIAL = ("instagram", "facebook", "telegram", "whatsapp", "tiktok", "x")
PAYMENT_SERVICES = ("cashapp", "venmo", "paypal", "apple_pay")
CRYPTO = (("BTC", "bitcoin"), ("ETH", "ethereum"), ("USDT", "tron"), ("USDT", "ethereum"))
TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
AREA_CODES = (("212", "US-NY"), ("305", "US-FL"), ("415", "US-CA"), ("512", "US-TX"))
FOREIGN_PHONES = (("+44", "GB"), ("+234", "NG"), ("+91", "IN"), ("+63", "PH"))


def _micros(moment: datetime) -> str:
    """`2025-10-27T12:35:36.158925Z`, as the spec writes event times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Identifier:
    id: str
    type: str
    display_value: str
    details: dict[str, Any]
    is_test: bool
    created_at: str
    confidence: float
    tags: dict[str, str] = field(default_factory=dict)  # tag title -> value
    entries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=3))


class SyntheticFeed:
    def __init__(self, rng: random.Random, clock: Clock, *, test_share: float = 0.05) -> None:
        self._rng = rng
        self._clock = clock
        self._test_share = test_share
        self._originators = [
            {"id": self._uuid(), "type": kind, "name": name} for kind, name in ORIGINATORS
        ]
        self._tag_ids = {title: self._uuid() for title in TAG_VALUES}
        self._value_ids = {
            (title, value): self._uuid() for title, values in TAG_VALUES.items() for value in values
        }
        self._pools: dict[bool, list[_Identifier]] = {False: [], True: []}  # by is_test
        self._recent: deque[tuple[dict[str, Any], list[_Identifier]]] = deque(maxlen=50)

    def message(self, data_type: str) -> Message:
        return self.journal_entry() if data_type == "journal_entry" else self.identifier_change()

    # -- journal entries ---------------------------------------------------

    def journal_entry(self) -> Message:
        rng = self._rng
        is_test = rng.random() < self._test_share
        kind = rng.choice(JOURNAL_TYPES)
        moment = self._clock.now()
        now = iso_z(moment)
        performed = moment - timedelta(seconds=rng.uniform(0, 5))
        performed_at = _micros(performed)
        end_time = None
        if kind == "phone_call":
            end_time = _micros(performed + timedelta(seconds=rng.randint(15, 1200)))
        identifiers = [self._pick_identifier(is_test) for _ in range(rng.randint(1, 3))]
        entry: Message = {
            "id": self._uuid(),
            "type": kind,
            "description": ("[TEST] " if is_test else "") + rng.choice(DESCRIPTIONS[kind]),
            "details": self._journal_details(kind),
            "performed_at": performed_at,
            "confidence": rng.choice((1, 1, 0.9, 0.75, 0.5)),
            "start_time": performed_at,
            "end_time": end_time,
            "is_test": is_test,
            "originator": dict(rng.choice(self._originators)),
            "identifiers": [self._identifier_ref(i, now) for i in identifiers],
            "evidence": self._evidence(now),
        }
        summary = {
            "id": entry["id"],
            "type": kind,
            "description": entry["description"],
            "performed_at": entry["performed_at"],
        }
        for identifier in identifiers:
            identifier.entries.append(summary)
        self._recent.append((summary, identifiers))
        return entry

    def _journal_details(self, kind: str) -> dict[str, Any]:
        rng = self._rng
        direction = rng.choice(("inbound", "inbound", "outbound"))
        match kind:
            case "phone_call":
                return {"platform": rng.choice(("pstn", "pstn", "voip")), "direction": direction}
            case "email":
                return {"direction": direction, "has_attachments": rng.random() < 0.3}
            case "text_message":
                return {
                    "platform": rng.choice(("sms", "whatsapp", "imessage")),
                    "direction": direction,
                }
            case "detection":
                return {
                    "detector": rng.choice(("url_scanner", "call_analytics", "mule_model")),
                    "score": round(rng.uniform(0.6, 0.99), 2),
                }
            case "report":
                return {"channel": rng.choice(("web_form", "hotline", "partner_api"))}
            case "payment":
                return {
                    "method": rng.choice(("wire", "zelle", "crypto", "gift_card")),
                    "amount": round(rng.uniform(50, 25_000), 2),
                    "currency": "USD",
                }
            case _:
                return {"browser": rng.choice(("chrome", "safari", "firefox"))}

    def _evidence(self, collected_at: str) -> list[dict[str, Any]]:
        rng = self._rng
        items = []
        for _ in range(rng.choice((0, 1, 1, 2))):
            kind, description = rng.choice(EVIDENCE)
            items.append(
                {
                    "id": self._uuid(),
                    "type": kind,
                    "description": description,
                    "source": rng.choice(EVIDENCE_SOURCES),
                    "collected_at": collected_at,
                }
            )
        return items

    # -- identifiers -------------------------------------------------------

    def identifier_change(self) -> Message:
        """A new state of an identifier that a recent journal entry mentioned."""
        rng = self._rng
        if not self._recent or rng.random() < 0.3:  # also when no journal stream is fed
            self.journal_entry()
        trigger, identifiers = rng.choice(self._recent)
        identifier = rng.choice(identifiers)
        title = rng.choice(tuple(TAG_VALUES))
        identifier.tags[title] = rng.choice(TAG_VALUES[title])
        identifier.confidence = round(min(1.0, identifier.confidence + rng.uniform(0, 0.2)), 2)
        originator = rng.choice(self._originators)
        now = iso_z(self._clock.now())
        others = [e for e in identifier.entries if e["id"] != trigger["id"]]
        related = [*others[-2:], trigger]
        return {
            "identifier_id": identifier.id,
            "type": identifier.type,
            "display_value": identifier.display_value,
            "details": dict(identifier.details),
            "confidence": identifier.confidence,
            "modified_at": now,
            "is_test": identifier.is_test,
            "originator_id": originator["id"],
            "originator": dict(originator),
            "tags": [
                {
                    "tag_id": self._tag_ids[tag],
                    "tag_title": tag,
                    "value": value,
                    "value_id": self._value_ids[(tag, value)],
                }
                for tag, value in identifier.tags.items()
            ],
            "evidence": self._evidence(now),
            "triggering_journal_entry": dict(trigger),
            "journal_entries": [dict(e) for e in related],
        }

    def _pick_identifier(self, is_test: bool) -> _Identifier:
        """A known identifier (scammers reuse them), or a new one while the pool grows."""
        rng = self._rng
        pool = self._pools[is_test]
        if pool and (len(pool) >= POOL_SIZE or rng.random() < 0.6):
            return rng.choice(pool)
        kind = rng.choice(IDENTIFIER_TYPES)
        display, details = self._identifier_details(kind, is_test)
        identifier = _Identifier(
            id=self._uuid(),
            type=kind,
            display_value=display,
            details=details,
            is_test=is_test,
            created_at=iso_z(self._clock.now()),
            confidence=round(rng.uniform(0.5, 0.9), 2),
        )
        if len(pool) >= POOL_SIZE:
            pool[rng.randrange(POOL_SIZE)] = identifier
        else:
            pool.append(identifier)
        return identifier

    @staticmethod
    def _identifier_ref(identifier: _Identifier, updated_at: str) -> dict[str, Any]:
        """An identifier as a journal entry carries it (its details under `data`)."""
        return {
            "id": identifier.id,
            "type": identifier.type,
            "display_value": identifier.display_value,
            "confidence": identifier.confidence,
            "is_ours": False,
            "data": dict(identifier.details),
            "created_at": identifier.created_at,
            "updated_at": updated_at,
        }

    def _identifier_details(self, kind: str, is_test: bool) -> tuple[str, dict[str, Any]]:
        rng = self._rng
        match kind:
            case "phone":
                return self._phone()
            case "email":
                email = f"{self._handle()}@{TEST_DOMAIN if is_test else rng.choice(MAIL_DOMAINS)}"
                return email, {"email": email}
            case "url":
                domain = TEST_DOMAIN if is_test else rng.choice(SCAM_DOMAINS)
                url = f"https://{domain}/{rng.choice(('login', 'verify', 'pay', 'track'))}"
                url += f"?id={self._digits(6)}"
                return url, {"url": url}
            case "bank_account":
                return self._bank_account()
            case "crypto_wallet":
                currency, network = rng.choice(CRYPTO)
                if network == "bitcoin":
                    address = "bc1q" + self._token(38, string.ascii_lowercase + string.digits)
                elif network == "tron":
                    address = "T" + self._token(33, string.ascii_letters + string.digits)
                else:
                    address = "0x" + self._token(40, "0123456789abcdef")
                return address, {"address": address, "currency": currency, "network": network}
            case "social_media":
                platform, handle = rng.choice(SOCIAL), "@" + self._handle()
                return f"{platform}:{handle}", {"platform": platform, "handle": handle}
            case "zelle":
                if rng.random() < 0.5:
                    value = f"{self._handle()}@{rng.choice(MAIL_DOMAINS)}"
                    return value, {"type": "email", "value": value}
                value = "+1" + self._digits(10)
                return value, {"type": "phone", "value": value}
            case _:
                service = rng.choice(PAYMENT_SERVICES)
                token = ("$" if service == "cashapp" else "@") + self._handle()
                return f"{service}:{token}", {
                    "service": service,
                    "identifier": token,
                    "type": "username",
                }

    def _phone(self) -> tuple[str, dict[str, Any]]:
        rng = self._rng
        if rng.random() < 0.2:
            country_code, region = rng.choice(FOREIGN_PHONES)
            number = self._digits(10)
            details = {
                "country_code": country_code,
                "number": number,
                "area_code": number[:3],
                "is_toll_free": False,
                "region": region,
            }
            return country_code + number, details
        toll_free = rng.random() < 0.25
        area, region = (rng.choice(TOLL_FREE), "US") if toll_free else rng.choice(AREA_CODES)
        number = area + self._digits(7)
        details = {
            "country_code": "+1",
            "number": number,
            "area_code": area,
            "is_toll_free": toll_free,
            "region": region,
        }
        return "+1" + number, details

    def _bank_account(self) -> tuple[str, dict[str, Any]]:
        rng = self._rng
        institution, routing, swift = rng.choice(BANKS)
        account = self._digits(rng.randint(9, 12))
        city, state = rng.choice(CITIES)
        owner_address = f"{rng.randint(10, 9999)} {rng.choice(STREETS)}, {city}, {state}"
        details = {
            "account_number": account,
            "routing": routing,
            "institution": institution,
            "owner": rng.choice(NAMES),
            "owner_address": owner_address,
            "country": "US",
            "address": f"{rng.randint(1, 500)} Financial Plaza, {city}, {state}",
            "swift": swift,
            "iban": None,
            "account_type": rng.choice(("checking", "savings", "business")),
        }
        return f"{institution} ****{account[-4:]}", details

    # -- randomness --------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _digits(self, count: int) -> str:
        return "".join(self._rng.choices(string.digits, k=count))

    def _token(self, count: int, alphabet: str) -> str:
        return "".join(self._rng.choices(alphabet, k=count))

    def _handle(self) -> str:
        first = self._rng.choice(("support", "alex", "crypto", "secure", "help", "lucky", "admin"))
        return f"{first}.{self._token(5, string.ascii_lowercase)}{self._digits(2)}"


@dataclass(frozen=True)
class FeedTarget:
    stream: str  # a consumer key or a stream name
    data_type: str


class FeedRunner:
    def __init__(
        self,
        feed: SyntheticFeed,
        publish: Publish,
        targets: Sequence[FeedTarget],
        *,
        rate: float,
        clock: Clock,
    ) -> None:
        self._feed = feed
        self._publish = publish
        self._targets = tuple(targets)
        self._rate = rate
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running and self._rate > 0:
            self._stopping = False
            self._task = asyncio.create_task(self._run(self._clock.monotonic()), name="export-feed")

    async def stop(self) -> None:
        """Cancel, and also flag: Python 3.11's `wait_for` (inside fakeredis) can swallow
        a cancellation that lands as its inner wait completes."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, started: float) -> None:
        due_total = 0  # messages per target that are due by now
        failing = False
        while not self._stopping:
            elapsed = self._clock.monotonic() - started
            due = int(elapsed * self._rate)
            if due - due_total > self._rate:  # more than a second behind: skip ahead
                due_total = due - max(int(self._rate * TICK_SECONDS), 1)
            count, due_total = due - due_total, due
            if count > 0:
                try:
                    for target in self._targets:
                        batch = [self._feed.message(target.data_type) for _ in range(count)]
                        await self._publish(target.stream, batch)
                        self.published += len(batch)
                    failing = False
                except Exception as exc:
                    if not failing:
                        log.warning("export feed cannot publish: %s: %s", type(exc).__name__, exc)
                    failing = True
            await asyncio.sleep(TICK_SECONDS)

"""Typed export-stream messages, identifier details and the wire bodies of the export API.

Shared by the server, the client (`client.py`) and the console. Choices where
export-stream.md is silent:

- Messages (`JournalEntryStreamMessage`, `IdentifierStreamMessage`, their nested
  objects and the identifier detail classes) accept snake_case *and* camelCase keys
  in `from_dict` and write snake_case in `to_dict`. A camelCase key is renamed to
  snake_case on input, so unknown fields are kept (as extras, snake_cased) rather
  than dropped: a newer server's fields survive a round trip through old code.
- Free-form objects (a journal entry's `details`, an identifier's `data`, a message's
  `details`/`data`) are data, not schema: they are kept verbatim, keys untouched.
  `parse_identifier_details` is what normalises them into a detail class.
- `to_dict` writes the fields that were given (plus every extra), not defaults that
  were never on the wire, so `X.from_dict(d).to_dict() == d` for any snake_case `d`.
- Timestamps stay the strings the server sent (`"2025-10-27T12:35:36.158925Z"`):
  re-serialising a datetime would change precision and the `Z` suffix, and a
  consumer that wants a datetime can parse the one field it needs.
- Numbers arriving where text is expected (a phone `number` sent as an int) are
  accepted as text: a consumer should not fail on a server's looser typing.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

DataType = Literal["journal_entry", "identifier"]
DATA_TYPES: tuple[str, ...] = ("journal_entry", "identifier")

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])([A-Z])")


def to_snake(key: str) -> str:
    """`displayValue` -> `display_value`; snake_case keys are returned unchanged."""
    return key if key.islower() else _CAMEL_BOUNDARY.sub(r"_\1", key).lower()


class _Message(BaseModel):
    """Base of every typed message object: both casings in, snake_case out, extras kept."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _snake_case_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        renamed: dict[str, Any] = {}
        for key, value in data.items():
            snake = to_snake(key) if isinstance(key, str) else key
            # An explicit snake_case key beats its camelCase twin, whatever the order.
            if snake == key or snake not in renamed:
                renamed[snake] = value
        return renamed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


# -- identifier details ---------------------------------------------------------------


class IdentifierDetails(_Message):
    """Details of an identifier type this client does not know: every key kept as given."""


class PhoneDetails(IdentifierDetails):
    country_code: str | None = None
    number: str | None = None
    area_code: str | None = None
    is_toll_free: bool | None = None
    region: str | None = None


class IdentifierEmailDetails(IdentifierDetails):
    email: str | None = None


class URLDetails(IdentifierDetails):
    url: str | None = None


class BankAccountDetails(IdentifierDetails):
    account_number: str | None = None
    routing: str | None = None
    institution: str | None = None
    owner: str | None = None
    owner_address: str | None = None
    country: str | None = None
    address: str | None = None
    swift: str | None = None
    iban: str | None = None
    account_type: str | None = None


class CryptoWalletDetails(IdentifierDetails):
    address: str | None = None
    currency: str | None = None
    network: str | None = None


class SocialMediaDetails(IdentifierDetails):
    platform: str | None = None
    handle: str | None = None


class ZelleDetails(IdentifierDetails):
    type: str | None = None
    value: str | None = None


class PaymentTokenDetails(IdentifierDetails):
    service: str | None = None
    identifier: str | None = None
    type: str | None = None


DETAILS_BY_TYPE: dict[str, type[IdentifierDetails]] = {
    "phone": PhoneDetails,
    "email": IdentifierEmailDetails,
    "url": URLDetails,
    "bank_account": BankAccountDetails,
    "crypto_wallet": CryptoWalletDetails,
    "social_media": SocialMediaDetails,
    "zelle": ZelleDetails,
    "payment_token": PaymentTokenDetails,
}
IDENTIFIER_TYPES: tuple[str, ...] = tuple(DETAILS_BY_TYPE)


def parse_identifier_details(
    identifier_type: str | None, details: dict[str, Any] | None
) -> IdentifierDetails:
    """The detail class of `identifier_type` (generic `IdentifierDetails` if unknown).

    `None` details (a message that carries none) give an empty object rather than an
    error, so the spec's loop runs over every message.
    """
    cls = DETAILS_BY_TYPE.get(identifier_type or "", IdentifierDetails)
    return cls.from_dict(details or {})


# -- message parts ----------------------------------------------------------------------


class Originator(_Message):
    id: str | None = None
    type: str | None = None
    name: str | None = None


class Evidence(_Message):
    id: str | None = None
    type: str | None = None
    description: str | None = None
    source: str | None = None
    collected_at: str | None = None


class Identifier(_Message):
    """An identifier attached to a journal entry; its type's details are in `data`."""

    id: str | None = None
    type: str | None = None
    display_value: str | None = None
    confidence: float | None = None
    is_ours: bool | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None


class Tag(_Message):
    tag_id: str | None = None
    tag_title: str | None = None
    value: str | None = None
    value_id: str | None = None


class TriggeringJournalEntry(_Message):
    """A journal entry as referenced from an identifier message (also `journal_entries`)."""

    id: str | None = None
    type: str | None = None
    description: str | None = None
    performed_at: str | None = None


# -- messages ---------------------------------------------------------------------------


class JournalEntryStreamMessage(_Message):
    """One message of a `journal_entry` stream."""

    message_id: str | None = None
    cursor: str | None = None
    id: str | None = None
    type: str | None = None
    description: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    performed_at: str | None = None
    confidence: float | None = None
    start_time: str | None = None
    end_time: str | None = None
    is_test: bool = False
    originator: Originator | None = None
    identifiers: list[Identifier] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)


class IdentifierStreamMessage(_Message):
    """One message of an `identifier` stream: an identifier's new state.

    `details` (and `data`) are optional: the spec's sample message has neither, its
    typed-details sample reads `msg.details`; a server may send either name.
    """

    message_id: str | None = None
    cursor: str | None = None
    identifier_id: str | None = None
    type: str | None = None
    display_value: str | None = None
    confidence: float | None = None
    modified_at: str | None = None
    is_test: bool = False
    originator_id: str | None = None
    originator: Originator | None = None
    tags: list[Tag] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    identifiers: list[Identifier] = Field(default_factory=list)
    triggering_journal_entry: TriggeringJournalEntry | None = None
    journal_entries: list[TriggeringJournalEntry] = Field(default_factory=list)
    details: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


StreamMessage = JournalEntryStreamMessage | IdentifierStreamMessage
MESSAGE_CLASSES: dict[str, type[JournalEntryStreamMessage] | type[IdentifierStreamMessage]] = {
    "journal_entry": JournalEntryStreamMessage,
    "identifier": IdentifierStreamMessage,
}


def parse_stream_message(data_type: str, raw: dict[str, Any]) -> StreamMessage:
    """Type one raw message by its stream's `data_type` (from `info` or SSE `connected`)."""
    try:
        cls = MESSAGE_CLASSES[data_type]
    except KeyError:
        raise ValueError(f"unknown data_type {data_type!r}; expected one of {DATA_TYPES}") from None
    return cls.from_dict(raw)


# -- wire bodies of the export API --------------------------------------------------------


class _Wire(BaseModel):
    """A response body; extra fields allowed so a richer server does not break the client."""

    model_config = ConfigDict(extra="allow")


class PollResponse(_Wire):
    """`GET /consume/{key}/poll`; messages stay dicts, as the spec's `consume_stream` returns."""

    messages: list[dict[str, Any]] = Field(default_factory=list)
    next_cursor: str | None = None
    has_more: bool = False


class Retention(_Wire):
    max_length: int | None = None
    max_age_seconds: int | None = None


class SuggestedCursors(_Wire):
    beginning: str | None = None
    new_only: str | None = None
    resume: str | None = None


class StreamInfo(_Wire):
    """`GET /consume/{key}/info`."""

    consumer_key: str
    stream: str
    data_type: str
    is_active: bool = True
    message_count: int = 0
    first_cursor: str | None = None
    last_cursor: str | None = None
    retention: Retention = Field(default_factory=Retention)
    stored_cursor: str | None = None
    created_at: str | None = None
    suggested_cursors: SuggestedCursors = Field(default_factory=SuggestedCursors)


class ConnectedInfo(_Wire):
    """Data of the SSE `connected` event: where the replay starts and what the stream is."""

    stream: str | None = None
    consumer_key: str | None = None
    data_type: str | None = None
    cursor: str | None = None
    last_cursor: str | None = None
    heartbeat_seconds: float | None = None


class StreamError(_Wire):
    """Data of an SSE `error` event."""

    error: str = ""
    code: str = ""


class ErrorBody(_Wire):
    """Every non-2xx body: `stream_first_id` comes with 416, `retry_after` with 429."""

    error: str
    code: str
    status: int
    stream_first_id: str | None = None
    retry_after: float | None = None


class CreateStreamRequest(BaseModel):
    """`POST /admin/streams`; no limits given means the server's default retention."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    data_type: DataType = "identifier"
    max_length: int | None = Field(None, ge=1)
    max_age_seconds: int | None = Field(None, ge=1)


class StreamRecord(_Wire):
    """What `POST /admin/streams` answers: the stream, with its consumer key."""

    consumer_key: str
    name: str | None = None
    data_type: str | None = None
    max_length: int | None = None
    max_age_seconds: int | None = None
    is_active: bool | None = None
    created_at: str | None = None


class CreateApiKeyRequest(BaseModel):
    """`POST /admin/keys`: a key allowed to read the streams of `consumer_keys`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    consumer_keys: list[str] = Field(default_factory=list)


class ApiKeyCreated(_Wire):
    """The only time the secret is shown: the server stores it hashed."""

    api_key_id: str
    api_key_secret: str

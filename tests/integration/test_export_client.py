"""The export client and CLI against the real export API over real sockets and a real Redis.

The server (`backends.export.api.start_export` under uvicorn) runs on a thread and
event loop of its own, as in the embedded runtime, so the blocking client, the async
client, the spec's own samples and the CLI all reach it over loopback HTTP. The
demo feed is off here (`feed_rate=0`): tests publish exactly the messages they check.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from click.testing import CliRunner

from backends.common.clock import SystemClock
from backends.common.server import RunningServer, start_server
from backends.export.api import ExportBackend, start_export
from backends.export.client import (
    AsyncExportStreamClient,
    ExportApiError,
    ExportStreamClient,
    RetryPolicy,
)
from backends.export.models import (
    IdentifierStreamMessage,
    JournalEntryStreamMessage,
    PhoneDetails,
    parse_identifier_details,
)
from backends.settings import ExportSettings, RedisSettings, Settings
from console.commands.export import export, streams

T = TypeVar("T")
ADMIN_KEY = "test-admin-key"


class ExportServer:
    """The export backend served by uvicorn on 127.0.0.1, on a loop in its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.backend: ExportBackend = self.call(start_export(settings, SystemClock()))
        self._server: RunningServer = self.call(start_server(self.backend.app, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.port}/api"
        self.demo = {s.data_type: s.consumer_key for s in self.backend.credentials.streams}
        with ExportStreamClient(self.url) as client:  # no consumer keys: reads every stream
            key = client.create_api_key("tests", admin_key=ADMIN_KEY)
        self.key_id, self.key_secret = key.api_key_id, key.api_key_secret

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def client(self, **kwargs: Any) -> ExportStreamClient:
        return ExportStreamClient(self.url, self.key_id, self.key_secret, **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncExportStreamClient:
        return AsyncExportStreamClient(self.url, self.key_id, self.key_secret, **kwargs)

    def new_stream(self, data_type: str = "identifier", **retention: int) -> str:
        """A fresh stream (unique name) that the demo key may read; its consumer key."""
        with self.client() as client:
            record = client.create_stream(
                f"t-{uuid.uuid4().hex[:10]}", data_type, admin_key=ADMIN_KEY, **retention
            )
        return record.consumer_key

    def publish(self, consumer_key: str, messages: list[dict[str, Any]]) -> list[str]:
        return self.call(self.backend.service.publish_many(consumer_key, messages))

    def stop(self) -> None:
        try:
            self.call(self.backend.aclose())
            self.call(self._server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def export_settings(redis_url: str, **export: Any) -> Settings:
    """Real Redis, an admin key, fast heartbeats, no feed unless asked."""
    fields: dict[str, Any] = {
        "admin_key": ADMIN_KEY,
        "feed_rate": 0,
        "rate_limit_per_minute": 100_000,
        "heartbeat_seconds": 0.3,
    }
    return Settings(redis=RedisSettings(url=redis_url), export=ExportSettings(**(fields | export)))


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ExportServer]:
    running = ExportServer(export_settings(redis_url))
    try:
        yield running
    finally:
        running.stop()


def identifiers(count: int, start: int = 0, test_every: int = 0) -> list[dict[str, Any]]:
    """Identifier messages numbered `n`; every `test_every`-th one is a test message."""
    return [
        {
            "n": n,
            "identifier_id": f"id-{n}",
            "type": "phone",
            "display_value": f"+1800555{n:04d}",
            "is_test": bool(test_every) and n % test_every == 0,
            "details": {"country_code": "+1", "number": f"800555{n:04d}", "is_toll_free": True},
        }
        for n in range(start, start + count)
    ]


# -- the spec's own samples, with only the import line (and credentials) changed ------------

SPEC_BASIC = """
from scambus_client import ScambusClient

client = ScambusClient(
    api_key_id="your-key-id",
    api_key_secret="your-secret-key",
)

consumer_key = "your-consumer-key"

# Fetch the first batch of messages (oldest first)
result = client.consume_stream(consumer_key, cursor="0", order="asc", limit=100)

for msg in result.get("messages", []):
    print(msg)

# The response includes a cursor to fetch the next batch
print(result.get("next_cursor"))
print(result.get("has_more"))
"""

SPEC_LOOP = """
import time
from scambus_client import ScambusClient

client = ScambusClient(
    api_key_id="your-key-id",
    api_key_secret="your-secret-key",
)

consumer_key = "your-consumer-key"
cursor = "0"  # Start from the beginning

while True:
    result = client.consume_stream(
        consumer_key,
        cursor=cursor,
        order="asc",
        limit=100,
    )

    messages = result.get("messages", [])
    for msg in messages:
        process_message(msg)  # Your processing logic here

    # Advance the cursor
    if result.get("next_cursor"):
        cursor = result["next_cursor"]

    # If there are no more messages, wait before polling again
    if not result.get("has_more"):
        time.sleep(5)
"""

SPEC_TYPED = """
from scambus_client import ScambusClient, IdentifierStreamMessage, JournalEntryStreamMessage

client = ScambusClient(api_key_id="your-key-id", api_key_secret="your-secret-key")
result = client.consume_stream("your-consumer-key", cursor="0", limit=100)

# For identifier streams:
for raw_msg in result.get("messages", []):
    msg = IdentifierStreamMessage.from_dict(raw_msg)
    print(f"Identifier: {msg.display_value} (confidence: {msg.confidence})")
    print(f"Type: {msg.type}, Modified: {msg.modified_at}")
    for tag in msg.tags:
        print(f"  Tag: {tag.tag_title} = {tag.value}")
"""

SPEC_DETAILS = """
from scambus_client import (
    IdentifierStreamMessage,
    parse_identifier_details,
    PhoneDetails,
    BankAccountDetails,
)

for raw_msg in result.get("messages", []):
    msg = IdentifierStreamMessage.from_dict(raw_msg)
    details = parse_identifier_details(msg.type, msg.details)

    if isinstance(details, PhoneDetails):
        print(f"Phone: {details.country_code} {details.number}")
        if details.is_toll_free:
            print("  (toll-free)")

    elif isinstance(details, BankAccountDetails):
        print(f"Bank: {details.institution} - {details.account_number}")
"""


def adapt(sample: str, server: ExportServer, consumer_key: str) -> str:
    """The import line, and the placeholders a reader fills in with their own values."""
    return (
        sample.replace("from scambus_client import (", "from backends.export.models import (")
        .replace(
            "from scambus_client import ScambusClient, ",
            "from backends.export.client import ExportStreamClient as ScambusClient\n"
            "from backends.export.models import ",
        )
        .replace(
            "from scambus_client import ScambusClient",
            "from backends.export.client import ExportStreamClient as ScambusClient",
        )
        .replace("your-key-id", server.key_id)
        .replace("your-secret-key", server.key_secret)
        .replace("your-consumer-key", consumer_key)
    )


def test_spec_samples_run_against_the_server(
    server: ExportServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMOPS_EXPORT_URL", server.url)  # the spec's client has its own URL
    key = server.new_stream()
    cursors = server.publish(key, identifiers(150))

    exec(adapt(SPEC_BASIC, server, key), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 102 and printed[-2:] == [cursors[99], "True"]

    class Done(Exception):
        pass

    seen: list[str] = []

    def process_message(msg: dict[str, Any]) -> None:
        seen.append(msg["cursor"])
        if len(seen) == 150:
            raise Done

    with pytest.raises(Done):
        exec(adapt(SPEC_LOOP, server, key), {"process_message": process_message})
    assert seen == cursors

    scope: dict[str, Any] = {}
    exec(adapt(SPEC_TYPED, server, key), scope)
    exec(adapt(SPEC_DETAILS, server, key), scope)
    printed = capsys.readouterr().out
    assert "Identifier: +18005550007 (confidence: None)" in printed
    assert "Type: phone, Modified: None" in printed
    assert "Phone: +1 8005550042\n  (toll-free)" in printed


# -- polling ------------------------------------------------------------------------------------


def test_consume_stream_cursor_semantics(server: ExportServer) -> None:
    key = server.new_stream()
    cursors = server.publish(key, identifiers(30, test_every=10))  # n = 0, 10, 20 are tests
    shown = [c for n, c in enumerate(cursors) if n % 10]
    with server.client() as client:
        first = client.consume_stream(key, cursor="0", limit=10)
        assert [m["cursor"] for m in first["messages"]] == shown[:9]  # 10 scanned, 1 test
        assert first["next_cursor"] == cursors[9] and first["has_more"] is True

        resumed = client.consume_stream(key, limit=10)  # no cursor: where this key left off
        assert [m["cursor"] for m in resumed["messages"]] == shown[9:18]

        after = client.consume_stream(key, cursor=cursors[27], limit=10)
        assert [m["cursor"] for m in after["messages"]] == cursors[28:]
        assert after["has_more"] is False

        with_tests = client.consume_stream(key, cursor="0", limit=1000, include_test=True)
        assert [m["cursor"] for m in with_tests["messages"]] == cursors

        newest = client.consume_stream(key, cursor="$")
        assert newest == {"messages": [], "next_cursor": cursors[-1], "has_more": False}

        backwards = client.consume_stream(key, cursor=cursors[5], order="desc", limit=3)
        assert [m["cursor"] for m in backwards["messages"]] == cursors[4:1:-1]
        assert backwards["next_cursor"] == cursors[2]

        typed = IdentifierStreamMessage.from_dict(first["messages"][0])
        assert typed.display_value == "+18005550001" and typed.n == 1  # type: ignore[attr-defined]
        details = parse_identifier_details(typed.type, typed.details)
        assert isinstance(details, PhoneDetails) and details.is_toll_free is True


def test_iter_messages_follows_a_growing_stream(server: ExportServer) -> None:
    key = server.new_stream()
    cursors = server.publish(key, identifiers(25))

    def publish_later() -> None:
        time.sleep(0.3)
        cursors.extend(server.publish(key, identifiers(25, start=25)))

    publisher = threading.Thread(target=publish_later)
    publisher.start()
    with server.client() as client:
        messages = client.iter_messages(key, cursor="0", limit=7, idle_sleep=0.05)
        got = [next(messages)["cursor"] for _ in range(50)]
    publisher.join()
    assert got == cursors


def test_iter_messages_waits_out_a_rebuild(server: ExportServer) -> None:
    """A real 503 STREAM_REBUILDING: the loop sleeps at least its Retry-After, then goes on."""
    key = server.new_stream()
    cursors = server.publish(key, identifiers(5))
    server.call(server.backend.service.set_rebuilding(key, True))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the rebuild ends while the client waits
        sleeps.append(seconds)
        server.call(server.backend.service.set_rebuilding(key, False))

    with server.client(sleep=sleep) as client:
        messages = client.iter_messages(key, cursor="0")
        assert [next(messages)["cursor"] for _ in range(5)] == cursors
    assert sleeps == [10]


def test_every_error_status_maps_to_export_api_error(server: ExportServer) -> None:
    key, other = server.new_stream(), server.new_stream()
    with server.client() as client:
        narrow = client.create_api_key("narrow", [other], admin_key=ADMIN_KEY)

    def error(client: ExportStreamClient, **kwargs: Any) -> ExportApiError:
        with pytest.raises(ExportApiError) as caught:
            client.consume_stream(kwargs.pop("key", key), **kwargs)
        return caught.value

    with ExportStreamClient(server.url, server.key_id, "wrong") as bad:
        unauthorized = error(bad)
    assert (unauthorized.status, unauthorized.code) == (401, "INVALID_API_KEY")
    assert str(unauthorized) == "401 Invalid API key"
    with ExportStreamClient(server.url, narrow.api_key_id, narrow.api_key_secret) as limited:
        assert error(limited).status == 403
        assert limited.consume_stream(other)["messages"] == []
    with server.client() as client:
        assert error(client, key=str(uuid.uuid4())).status == 404
        malformed = error(client, cursor="yesterday")
        assert (malformed.status, malformed.code) == (400, "INVALID_CURSOR")
        assert error(client, limit=1001).status == 400
        assert not malformed.retryable


def test_trimmed_cursors_answer_416_and_410(server: ExportServer) -> None:
    service = server.backend.service
    short = server.new_stream(max_length=10)
    cursors = server.publish(short, identifiers(30))
    server.call(service.rebuild(short))  # exact trim to the last 10
    with server.client() as client:
        with pytest.raises(ExportApiError) as caught:
            client.consume_stream(short, cursor=cursors[3])
        trimmed = caught.value
        assert (trimmed.status, trimmed.stream_first_id) == (416, cursors[20])
        assert str(trimmed) == f"416 {trimmed.message} (stream_first_id={cursors[20]})"
        restart = client.consume_stream(short, cursor=trimmed.stream_first_id)
        assert [m["cursor"] for m in restart["messages"]] == cursors[21:]

        old = server.new_stream(max_age_seconds=1)
        stale = server.publish(old, identifiers(3))
        time.sleep(1.1)
        server.publish(old, identifiers(2))
        server.call(service.rebuild(old))
        with pytest.raises(ExportApiError) as expired:
            client.consume_stream(old, cursor=stale[0])
        assert expired.value.status == 410 and not expired.value.retryable


def test_rate_limit_answers_429_with_retry_after(redis_url: str) -> None:
    limited = ExportServer(export_settings(redis_url, rate_limit_per_minute=3))
    try:
        with limited.client() as client:
            key = limited.demo["identifier"]
            for _ in range(3):
                client.consume_stream(key)
            with pytest.raises(ExportApiError) as caught:
                client.consume_stream(key)
    finally:
        limited.stop()
    assert caught.value.status == 429 and caught.value.retryable
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 60


def test_stream_info_and_admin(server: ExportServer) -> None:
    with server.client() as client:
        record = client.create_stream(
            "info-" + uuid.uuid4().hex[:8], "journal_entry", 500, 3600, admin_key=ADMIN_KEY
        )
        assert record.data_type == "journal_entry" and record.max_length == 500
        created = client.create_api_key("reader", [record.consumer_key], admin_key=ADMIN_KEY)
        with pytest.raises(ExportApiError) as caught:
            client.create_api_key("nope", admin_key="wrong")
        assert caught.value.status == 401

    cursors = server.publish(record.consumer_key, [{"type": "report", "description": "x"}] * 3)
    with ExportStreamClient(server.url, created.api_key_id, created.api_key_secret) as reader:
        page = reader.consume_stream(record.consumer_key, cursor="0", limit=2)
        entry = JournalEntryStreamMessage.from_dict(page["messages"][0])
        assert entry.message_id == entry.cursor == cursors[0]
        info = reader.get_stream_info(record.consumer_key)
    assert info.consumer_key == record.consumer_key and info.data_type == "journal_entry"
    assert (info.message_count, info.first_cursor, info.last_cursor) == (3, cursors[0], cursors[2])
    assert info.retention.max_length == 500 and info.retention.max_age_seconds == 3600
    assert info.stored_cursor == cursors[1] == info.suggested_cursors.resume
    assert (info.suggested_cursors.beginning, info.suggested_cursors.new_only) == ("0", "$")


# -- SSE ----------------------------------------------------------------------------------------


def test_listen_replays_then_follows_live(server: ExportServer) -> None:
    key = server.new_stream()
    history = server.publish(key, identifiers(12, test_every=4))  # 0, 4, 8 are tests
    with server.client() as client:
        listener = client.listen(key, cursor="0", include_test=True)
        connected = next(listener)
        assert connected.event == "connected" and connected.connected is not None
        info = connected.connected
        assert (info.consumer_key, info.data_type, info.cursor) == (key, "identifier", "0")
        assert info.last_cursor == history[-1] and info.heartbeat_seconds == 0.3
        replayed: list[str] = []
        while len(replayed) < 12:
            event = next(listener)
            assert event.event == "batch" and event.id == event.messages[-1]["cursor"]
            replayed += [m["cursor"] for m in event.messages]
        assert replayed == history
        live = server.publish(key, identifiers(3, start=12))
        got: list[str] = []
        while len(got) < 3:
            event = next(listener)
            assert event.event == "message" and len(event.messages) == 1
            got.append(event.messages[0]["cursor"])
        assert got == live and listener.state.cursor == live[-1]
        assert listener.state.status == "connected" and listener.state.reconnects == 0
        listener.close()
    assert listener.state.status == "closed"


def test_listen_from_now_and_heartbeats_keep_it_alive(server: ExportServer) -> None:
    """Starting at "$" skips history; 3 s of silence is fine with an idle timeout of 1 s,
    because heartbeats (every 0.3 s) keep arriving, and they are not events, even after
    an event with an `id:` (which httpx-sse would otherwise replay as an empty one)."""
    key = server.new_stream()
    server.publish(key, identifiers(5))
    with server.client() as client:
        listener = client.listen(key, idle_timeout=1.0)
        assert next(listener).event == "connected"
        for n in (98, 99):

            def publish_later(n: int = n) -> None:
                time.sleep(1.5)
                server.publish(key, identifiers(1, start=n))

            publisher = threading.Thread(target=publish_later)
            publisher.start()
            event = next(listener)
            publisher.join()
            assert event.event == "message" and [m["n"] for m in event.messages] == [n]
        assert listener.state.reconnects == 0
        listener.close()


async def test_async_listen_surfaces_error_events_and_stops_on_401(server: ExportServer) -> None:
    """Deactivating a stream ends live connections with an `error` event; the reconnect
    then gets 401 STREAM_INACTIVE, which no retry can fix, so `listen` raises it."""
    key = server.new_stream()
    states: list[str] = []
    async with server.async_client(retry=RetryPolicy(initial_delay=0.05)) as client:
        listener = client.listen(key, on_state=lambda s: states.append(s.status))
        events = []
        with pytest.raises(ExportApiError) as caught:
            async for event in listener:
                events.append(event)
                if event.event == "connected":
                    await asyncio.to_thread(server.publish, key, identifiers(2))
                elif event.event == "message" and listener.state.messages == 2:
                    await asyncio.to_thread(
                        server.call, server.backend.service.set_active(key, False)
                    )
    assert caught.value.status == 401 and caught.value.code == "STREAM_INACTIVE"
    assert [e.event for e in events] == ["connected", "message", "message", "error"]
    assert events[-1].error is not None and events[-1].error.code == "STREAM_INACTIVE"
    assert states == ["connected", "reconnecting", "failed"]
    assert listener.state.messages == 2


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_against_the_server(server: ExportServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMOPS_API_KEY_ID", "STREAMOPS_API_KEY_SECRET", "STREAMOPS_EXPORT_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    url = ["--url", server.url]
    made = runner.invoke(
        export,
        ["create-stream", "cli-" + uuid.uuid4().hex[:8], "--max-length", "100", "--json", *url],
        env={"STREAMOPS_ADMIN_KEY": ADMIN_KEY},
    )
    assert made.exit_code == 0, made.output
    key = orjson.loads(made.stdout)["consumer_key"]
    keyed = runner.invoke(
        export, ["create-key", "cli", "--stream", key, "--admin-key", ADMIN_KEY, *url]
    )
    assert keyed.exit_code == 0, keyed.output
    lines = dict(line.split(maxsplit=1) for line in keyed.stdout.splitlines())
    creds = ["--key-id", lines["api_key_id"], "--key-secret", lines["api_key_secret"], *url]
    cursors = server.publish(key, identifiers(15))

    consumed = runner.invoke(streams, ["consume", key, "--limit", "10", "--json", *creds])
    assert consumed.exit_code == 0, consumed.output
    page = orjson.loads(consumed.stdout)
    assert [m["cursor"] for m in page["messages"]] == cursors[:10] and page["has_more"]

    human = runner.invoke(streams, ["consume", key, "--cursor", cursors[9], *creds])
    assert human.exit_code == 0 and "+18005550014" in human.stdout
    assert f"next_cursor {cursors[-1]}  has_more no" in human.stdout

    listened = runner.invoke(
        streams, ["listen", key, "--cursor", "0", "--json", "--max-messages", "12", *creds]
    )
    assert listened.exit_code == 0, listened.output
    assert [orjson.loads(line)["cursor"] for line in listened.stdout.splitlines()] == cursors[:12]
    assert "connected: " in listened.stderr

    info = runner.invoke(streams, ["info", key, "--json", *creds])
    assert orjson.loads(info.stdout)["message_count"] == 15
    assert "message_count" in runner.invoke(streams, ["info", key, *creds]).stdout

    denied = runner.invoke(streams, ["consume", key, "--key-id", "ak_x", "--key-secret", "y", *url])
    assert denied.exit_code == 1
    assert denied.stderr == "error: 401 Invalid API key\n" and denied.stdout == ""
    no_admin = runner.invoke(export, ["create-key", "x", *url])
    assert no_admin.exit_code == 2 and no_admin.stderr.startswith("error: an admin key is needed")


def test_cli_listen_over_http_error_is_one_line(server: ExportServer) -> None:
    result = CliRunner().invoke(
        streams,
        ["listen", str(uuid.uuid4()), "--url", server.url,
         "--key-id", server.key_id, "--key-secret", server.key_secret],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 404 No stream with consumer key")
    assert result.stderr.count("\n") == 1


def test_raw_sse_frames_carry_ids(server: ExportServer) -> None:
    """What the client relies on, checked on the wire: `id:` on batch and message events."""
    key = server.new_stream()
    cursors = server.publish(key, identifiers(3))
    headers = {"X-API-Key": f"{server.key_id}:{server.key_secret}"}
    with (
        httpx.Client(timeout=5) as http,
        http.stream(
            "GET", f"{server.url}/consume/{key}/stream", params={"cursor": "0"}, headers=headers
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        text = ""
        for chunk in response.iter_text():
            text += chunk
            if "event: batch" in text and text.endswith("\n\n"):
                break
    assert f"id: {cursors[-1]}" in text

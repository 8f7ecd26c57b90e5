"""The export client's retry, backoff and error mapping, where a real server cannot be made to.

A real server is used everywhere else (tests/integration/test_export_*.py). Here an
`httpx.MockTransport` scripts what ours never sends on demand: a 503 rebuild, a
proxy's HTML 502, a 429 with a long Retry-After, a refused connection, a stream
that ends before its first message, and the exact headers of every reconnect.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.export.client import (
    AsyncExportStreamClient,
    ExportApiError,
    ExportStreamClient,
    ListenState,
    RetryPolicy,
)

URL = "http://export.test/api"


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


def error_response(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else {}
    body = {"error": message, "code": code, "status": status, **extra}
    return json_response(status, body, **headers)


def sse_response(*events: tuple[str, Any, str | None]) -> httpx.Response:
    """An event stream that ends (the server closed it) after `events`, with heartbeats.

    A heartbeat after an event with an `id:` is what httpx-sse turns into an empty event.
    """
    chunks = [b": heartbeat\n\n"]
    for name, data, event_id in events:
        lines = [f"event: {name}", f"data: {orjson.dumps(data).decode()}"]
        if event_id:
            lines.append(f"id: {event_id}")
        chunks.append(("\n".join(lines) + "\n\n: heartbeat\n\n").encode())
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"".join(chunks)
    )


class Script:
    """Answers requests in order and records them; an exception in the list is raised."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def params(self, name: str) -> list[str | None]:
        return [r.url.params.get(name) for r in self.requests]


def sync_client(script: Script, sleeps: list[float], **kwargs: Any) -> ExportStreamClient:
    kwargs.setdefault("retry", RetryPolicy(rng=random.Random(7)))
    return ExportStreamClient(
        URL, "kid", "sec", transport=httpx.MockTransport(script), sleep=sleeps.append, **kwargs
    )


def page(cursors: list[str], has_more: bool) -> httpx.Response:
    messages = [{"cursor": c, "type": "email"} for c in cursors]
    return json_response(
        200,
        {
            "messages": messages,
            "next_cursor": cursors[-1] if cursors else None,
            "has_more": has_more,
        },
    )


def test_iter_messages_honours_retry_after_and_backs_off_on_503() -> None:
    script = Script(
        page(["1-0", "2-0"], has_more=True),
        error_response(429, "RATE_LIMITED", "Rate limit exceeded", retry_after=7),
        error_response(503, "STREAM_REBUILDING", "Stream is being rebuilt"),
        page(["3-0"], has_more=False),
    )
    sleeps: list[float] = []
    with sync_client(script, sleeps) as client:
        messages = client.iter_messages("ck", cursor="0", limit=2)
        got = [next(messages)["cursor"] for _ in range(3)]
    assert got == ["1-0", "2-0", "3-0"]
    assert script.params("cursor") == ["0", "2-0", "2-0", "2-0"]
    assert script.params("limit") == ["2"] * 4
    assert script.requests[0].headers["X-API-Key"] == "kid:sec"
    assert sleeps[0] == 7  # Retry-After is a floor over the first backoff (≤ 0.5 s)
    assert 0.5 <= sleeps[1] <= 1.0  # second consecutive failure: d = 1.0, jittered in [d/2, d]


def test_iter_messages_sleeps_when_caught_up_and_keeps_its_cursor() -> None:
    script = Script(page(["1-0"], has_more=False), page([], has_more=False), page(["2-0"], False))
    sleeps: list[float] = []
    with sync_client(script, sleeps) as client:
        messages = client.iter_messages("ck", cursor=None, idle_sleep=3.0)
        assert [next(messages)["cursor"] for _ in range(2)] == ["1-0", "2-0"]
    assert script.params("cursor") == [None, "1-0", "1-0"]  # none = server-side resume
    assert sleeps == [3.0, 3.0]


def test_iter_messages_gives_up_after_max_retries() -> None:
    rebuilding = error_response(503, "STREAM_REBUILDING", "Stream is being rebuilt")
    script = Script(*[rebuilding] * 4)
    sleeps: list[float] = []
    with (
        sync_client(script, sleeps, retry=RetryPolicy(max_retries=3)) as client,
        pytest.raises(ExportApiError) as caught,
    ):
        next(client.iter_messages("ck"))
    assert caught.value.status == 503 and caught.value.code == "STREAM_REBUILDING"
    assert len(script.requests) == 4 and len(sleeps) == 3


def test_client_errors_are_not_retried() -> None:
    script = Script(error_response(401, "INVALID_API_KEY", "Invalid API key"))
    sleeps: list[float] = []
    with sync_client(script, sleeps) as client, pytest.raises(ExportApiError) as caught:
        next(client.iter_messages("ck"))
    assert str(caught.value) == "401 Invalid API key"
    assert not caught.value.retryable and sleeps == []


def test_error_mapping() -> None:
    trimmed = error_response(
        416,
        "CURSOR_TRIMMED",
        "Cursor is before the stream start",
        stream_first_id="1735689600000-0",
    )
    proxy = httpx.Response(502, text="<html><body>Bad Gateway</body></html>")
    script = Script(trimmed, proxy, httpx.ConnectError("connection refused"))
    with sync_client(script, []) as client:
        with pytest.raises(ExportApiError) as first:
            client.consume_stream("ck", cursor="1-0")
        with pytest.raises(ExportApiError) as second:
            client.get_stream_info("ck")
        with pytest.raises(ExportApiError) as third:
            client.consume_stream("ck")
    assert str(first.value) == (
        "416 Cursor is before the stream start (stream_first_id=1735689600000-0)"
    )
    assert first.value.stream_first_id == "1735689600000-0" and first.value.code == "CURSOR_TRIMMED"
    assert second.value.status == 502 and second.value.code == "BAD_GATEWAY"
    assert str(second.value) == "502 <html><body>Bad Gateway</body></html>"
    assert second.value.retryable
    assert third.value.status == 0 and third.value.code == "UNREACHABLE"
    assert str(third.value).startswith(f"Cannot reach {URL}") and third.value.retryable


def listen_script() -> Script:
    return Script(
        # Ends before any message: the resume point is the "$" the server resolved.
        sse_response(("connected", {"stream": "ids", "cursor": "5-0", "last_cursor": "5-0"}, None)),
        sse_response(
            ("connected", {"stream": "ids", "cursor": "5-0", "last_cursor": "5-0"}, None),
            ("batch", [{"cursor": "6-0"}, {"cursor": "7-0"}], "7-0"),
            ("ping", {"new": "event type"}, None),
            ("error", {"error": "Consumer too slow", "code": "SLOW_CONSUMER"}, None),
            ("message", {"cursor": "8-0"}, "8-0"),
        ),
        error_response(503, "STREAM_REBUILDING", "Stream is being rebuilt", retry_after=2),
        httpx.ConnectError("connection refused"),
        error_response(401, "INVALID_API_KEY", "Invalid API key"),
    )


def check_listen(script: Script, events: list[Any], state: ListenState, seen: list[str]) -> None:
    assert [(e.event, [m["cursor"] for m in e.messages]) for e in events] == [
        ("connected", []),
        ("connected", []),
        ("batch", ["6-0", "7-0"]),
        ("error", []),
        ("message", ["8-0"]),
    ]
    assert events[3].error is not None and events[3].error.code == "SLOW_CONSUMER"
    assert script.params("cursor") == ["$", "5-0", "8-0", "8-0", "8-0"]
    assert [r.headers.get("Last-Event-ID") for r in script.requests] == [
        None, "5-0", "8-0", "8-0", "8-0"
    ]  # fmt: skip
    assert all(r.headers["X-API-Key"] == "kid:sec" for r in script.requests)
    assert all(r.headers["Accept"] == "text/event-stream" for r in script.requests)
    assert state.status == "failed" and state.cursor == "8-0" and state.messages == 3
    assert state.reconnects == 4 and state.attempt == 4  # failures since the last connect
    assert seen == ["connected", "reconnecting", "connected", "reconnecting", "reconnecting",
                    "reconnecting", "failed"]  # fmt: skip


def test_listen_reconnects_from_the_last_cursor_and_stops_on_401() -> None:
    script, sleeps, seen = listen_script(), [], []
    with sync_client(script, sleeps) as client:
        listener = client.listen("ck", on_state=lambda s: seen.append(s.status))
        events = []
        with pytest.raises(ExportApiError, match="401 Invalid API key"):
            events.extend(listener)
    check_listen(script, events, listener.state, seen)
    assert sleeps[2] >= 2  # the 503's Retry-After


def async_client(script: Script, sleeps: list[float]) -> AsyncExportStreamClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AsyncExportStreamClient(
        URL,
        "kid",
        "sec",
        transport=httpx.MockTransport(script),
        sleep=sleep,
        retry=RetryPolicy(rng=random.Random(7)),
    )


async def test_async_listen_behaves_the_same() -> None:
    script, sleeps, seen = listen_script(), [], []
    async with async_client(script, sleeps) as client:
        listener = client.listen("ck", on_state=lambda s: seen.append(s.status))
        events = []
        with pytest.raises(ExportApiError, match="401 Invalid API key"):
            async for event in listener:
                events.append(event)
    check_listen(script, events, listener.state, seen)
    assert sleeps[2] >= 2


async def test_async_iter_messages_honours_retry_after() -> None:
    script = Script(
        error_response(429, "RATE_LIMITED", "Rate limit exceeded", retry_after=4),
        page(["1-0"], has_more=False),
    )
    sleeps: list[float] = []
    async with async_client(script, sleeps) as client:
        messages = client.iter_messages("ck")
        assert (await anext(messages))["cursor"] == "1-0"
        await messages.aclose()
    assert sleeps == [4]


def test_closing_a_listener_marks_it_closed() -> None:
    script = Script(
        sse_response(
            ("connected", {"stream": "ids", "cursor": "0"}, None),
            ("message", {"cursor": "1-0"}, "1-0"),
        )
    )
    with sync_client(script, []) as client:
        listener = client.listen("ck", cursor="0")
        assert next(listener).event == "connected"
        assert listener.state.status == "connected"
        listener.close()
    assert listener.state.status == "closed" and listener.state.messages == 0


def test_a_stream_that_is_not_an_event_stream_is_an_error() -> None:
    script = Script(json_response(200, {"messages": []}))
    with sync_client(script, []) as client, pytest.raises(ExportApiError) as caught:
        list(client.listen("ck"))
    assert caught.value.code == "NOT_AN_EVENT_STREAM" and not caught.value.retryable


def test_credentials_and_url_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMOPS_API_KEY_ID", "STREAMOPS_API_KEY_SECRET", "STREAMOPS_EXPORT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCAMBUS_API_KEY_ID", "scambus-id")
    monkeypatch.setenv("SCAMBUS_API_KEY_SECRET", "scambus-secret")
    client = ExportStreamClient()
    assert client.api_url == "http://localhost:8080/api"
    assert client._auth_headers() == {"X-API-Key": "scambus-id:scambus-secret"}
    monkeypatch.setenv("STREAMOPS_API_KEY_ID", "ours")
    monkeypatch.setenv("STREAMOPS_API_KEY_SECRET", "our-secret")
    monkeypatch.setenv("STREAMOPS_EXPORT_URL", "http://remote:9000/api/")
    client = ExportStreamClient()
    assert client.api_url == "http://remote:9000/api"
    assert client._auth_headers() == {"X-API-Key": "ours:our-secret"}
    assert ExportStreamClient(api_key_id="a", api_key_secret="b")._auth_headers() == {
        "X-API-Key": "a:b"
    }


@given(
    attempt=st.integers(1, 100_000),
    initial=st.floats(0.01, 5),
    maximum=st.floats(0.01, 120),
    retry_after=st.none() | st.floats(0, 100),
    seed=st.integers(0, 2**32),
)
def test_backoff_grows_with_jitter_below_the_cap(
    attempt: int, initial: float, maximum: float, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(initial_delay=initial, max_delay=maximum, rng=random.Random(seed))
    ceiling = min(maximum, initial * 2 ** min(attempt - 1, 64))
    delay = policy.delay(attempt, retry_after)
    assert delay >= (retry_after or 0)
    if retry_after is None or retry_after <= ceiling / 2:
        assert ceiling / 2 <= delay <= ceiling
    assert not RetryPolicy(max_retries=None).exhausted(10**6)
    assert RetryPolicy(max_retries=3).exhausted(4) and not RetryPolicy(max_retries=3).exhausted(3)

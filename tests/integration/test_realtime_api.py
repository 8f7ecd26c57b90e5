"""The realtime server over real sockets: REST envelope, errors, rate-limit headers,
Socket.IO admission, subscriptions, every event type, filters per stream type, and
the typed client with its reconnecting event tail.

The server (REST + Socket.IO on one uvicorn port) runs on the test's loop with a
manual clock; clients are httpx and python-socketio's own AsyncClient.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio

from backends.common.clock import ManualClock
from backends.common.server import start_server
from backends.realtime.api import RealtimeBackend, start_realtime
from backends.realtime.client import RealtimeApiError, RealtimeClient
from backends.realtime.models import DataUpdateEvent
from backends.settings import RealtimeSettings, Settings

DEMO = "your-session-id"


@dataclass
class Server:
    url: str
    backend: RealtimeBackend
    clock: ManualClock


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    overrides = getattr(request, "param", {})
    clock = ManualClock()
    realtime = RealtimeSettings(page_delay_ms=0, maintenance_interval_seconds=0.02, **overrides)
    backend = await start_realtime(Settings(realtime=realtime), clock)
    running = await start_server(backend.app, "127.0.0.1", 0)
    try:
        yield Server(f"http://127.0.0.1:{running.port}", backend, clock)
    finally:
        await backend.aclose()
        await running.stop()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@dataclass
class Listener:
    """A python-socketio client that records what it receives."""

    sio: socketio.AsyncClient
    received: dict[str, list[Any]] = field(default_factory=dict)

    def of(self, event: str) -> list[Any]:
        return self.received.setdefault(event, [])


def listener() -> Listener:
    sio = socketio.AsyncClient(reconnection=False)
    recorded = Listener(sio)
    for name in ("stream_event", "subscription_confirmed", "error", "connect_error"):

        async def record(data: Any = None, name: str = name) -> None:
            recorded.of(name).append(data)

        sio.on(name, record)
    return recorded


async def connect(server: Server, session_id: str, **query: str) -> Listener:
    client = listener()
    params = "&".join(f"{k}={v}" for k, v in {"session_id": session_id, **query}.items())
    await client.sio.connect(f"{server.url}?{params}", transports=["websocket"])
    return client


async def until(predicate: Callable[[], Any], within: float = 10.0) -> Any:
    async with asyncio.timeout(within):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
    return value


async def new_session(http: httpx.AsyncClient, **fields: Any) -> str:
    response = await http.post("/api/sessions", json=fields)
    assert response.status_code == 201, response.text
    return response.json()["data"]["session_id"]


async def start_stream(http: httpx.AsyncClient, **fields: Any) -> str:
    response = await http.post("/api/stream/start", json=fields)
    assert response.status_code == 200, response.text
    return response.json()["data"]["stream_id"]


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error"}, body
    return body["error"]


# -- REST ------------------------------------------------------------------------


async def test_providers_and_rate_limit_headers_on_every_response(
    server: Server, http: httpx.AsyncClient
) -> None:
    response = await http.get("/api/providers")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    providers = {p["provider"]: p["stream_types"] for p in body["data"]["providers"]}
    assert providers["microsoft"] == ["outlook_messages", "outlook_events", "contacts", "files"]
    gmail = next(t for t in body["data"]["stream_types"] if t["stream_type"] == "gmail_messages")
    assert gmail == {
        "stream_type": "gmail_messages",
        "data_type": "gmail_messages_message",
        "providers": ["google"],
        "filters": ["query", "label_ids", "include_spam_trash"],
    }
    now = int(server.clock.now().timestamp())
    for answer in (response, await http.get("/api/nowhere"), await http.get("/api/streams")):
        headers = answer.headers
        assert headers["X-RateLimit-Limit"] == "600"
        assert int(headers["X-RateLimit-Remaining"]) < 600
        assert int(headers["X-RateLimit-Reset"]) == now + 60
        assert headers["RateLimit-Policy"] == '"api";q=600;w=60'
        assert headers["RateLimit"].startswith('"api";r=') and headers["RateLimit"].endswith(
            ";t=60"
        )
    assert error_of(await http.get("/api/nowhere")) == {
        "code": "NOT_FOUND",
        "message": "Not Found",
        "details": {},
    }


@pytest.mark.parametrize("server", [{"api_requests_per_minute": 3}], indirect=True)
async def test_rate_limit_exceeded(server: Server, http: httpx.AsyncClient) -> None:
    for remaining in (2, 1, 0):
        answer = await http.get("/api/streams")
        assert answer.headers["X-RateLimit-Remaining"] == str(remaining)
    refused = await http.get("/api/streams")
    assert refused.status_code == 429
    reset = int(server.clock.now().timestamp()) + 60
    assert error_of(refused) == {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "Rate limit exceeded. Try again later.",
        "details": {"retry_after": 60, "limit": 3, "reset_time": reset},
    }
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit"] == '"api";r=0;t=60'
    server.clock.advance(60)
    assert (await http.get("/api/streams")).status_code == 200


async def test_sessions(http: httpx.AsyncClient) -> None:
    created = await http.post("/api/sessions", json={"provider": "microsoft", "agent_id": "a-1"})
    assert created.status_code == 201
    info = created.json()["data"]
    assert info["provider"] == "microsoft" and info["agent_id"] == "a-1"
    assert info["expires_in"] == 3600 and info["status"] == "active"
    found = await http.get(f"/api/sessions/{info['session_id']}")
    assert found.json() == {"success": True, "data": info}
    listed = (await http.get("/api/sessions")).json()["data"]
    assert {s["session_id"] for s in listed["sessions"]} == {DEMO, info["session_id"]}
    bad = await http.post("/api/sessions", json={"provider": "yahoo"})
    assert bad.status_code == 400
    error = error_of(bad)
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"] == {
        "field": "provider",
        "value": "yahoo",
        "allowed_values": ["google", "microsoft"],
    }
    missing = await http.get("/api/sessions/nope")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "SESSION_NOT_FOUND"


async def test_stream_lifecycle(server: Server, http: httpx.AsyncClient) -> None:
    body = {
        "session_id": DEMO,
        "stream_type": "gmail_messages",
        "batch_size": 100,
        "max_results": 1000,
        "filters": {"query": "is:unread", "label_ids": ["INBOX"]},
        "real_time": True,
        "rate_limit_per_minute": 60,
    }
    started = await http.post("/api/stream/start", json=body)
    assert started.status_code == 200
    data = started.json()["data"]
    stream_id = data["stream_id"]
    assert stream_id.startswith("stream-")
    assert data == {
        "stream_id": stream_id,
        "session_id": DEMO,
        "stream_type": "gmail_messages",
        "provider": "google",
        "configuration": {
            "batch_size": 100,
            "max_results": 1000,
            "real_time": True,
            "rate_limit_per_minute": 60,
            "filters": {"query": "is:unread", "label_ids": ["INBOX"]},
        },
    }

    async def status() -> dict[str, Any]:
        return (await http.get(f"/api/stream/{stream_id}/status")).json()["data"]

    await until(lambda: server.backend.service.stream_status(stream_id).items_streamed == 60)
    current = await status()
    now = server.clock.now().timestamp()
    assert current == {
        "stream_id": stream_id,
        "status": "active",
        "items_streamed": 60,
        "started_at": now,
        "last_activity": now,
        "configuration": {
            "stream_type": "gmail_messages",
            "session_id": DEMO,
            "provider": "google",
            "batch_size": 100,
            "max_results": 1000,
            "real_time": True,
            "rate_limit_per_minute": 60,
            "filters": {"query": "is:unread", "label_ids": ["INBOX"]},
        },
    }
    listed = (await http.get("/api/streams")).json()["data"]
    assert listed["total_count"] == 1
    assert listed["streams"][stream_id] == {
        "stream_type": "gmail_messages",
        "session_id": DEMO,
        "provider": "google",
        "started_at": now,
        "items_streamed": 60,
        "status": "active",
        "last_activity": now,
    }
    assert listed["websocket_statistics"]["active_connections"] == 0

    again = await http.post("/api/stream/start", json=body)
    assert again.status_code == 409
    assert error_of(again)["code"] == "STREAM_ALREADY_ACTIVE"

    stopped = await http.post(f"/api/stream/{stream_id}/stop")
    assert stopped.json() == {
        "success": True,
        "data": {"stream_id": stream_id, "status": "stopped"},
    }
    assert (await status())["status"] == "stopped"
    for method, path in (("GET", "/api/stream/nope/status"), ("POST", "/api/stream/nope/stop")):
        missing = await http.request(method, path)
        assert missing.status_code == 404
        assert error_of(missing) == {
            "code": "STREAM_NOT_FOUND",
            "message": "Stream ID not found",
            "details": {"stream_id": "nope"},
        }


async def test_stream_configuration_errors(http: httpx.AsyncClient) -> None:
    invalid = await http.post(
        "/api/stream/start", json={"session_id": DEMO, "stream_type": "invalid_type"}
    )
    assert invalid.status_code == 400
    assert error_of(invalid) == {
        "code": "STREAM_CONFIG_ERROR",
        "message": "Invalid stream configuration",
        "details": {
            "field": "stream_type",
            "value": "invalid_type",
            "allowed_values": [
                "gmail_messages",
                "gmail_threads",
                "calendar_events",
                "outlook_messages",
                "outlook_events",
                "contacts",
                "files",
            ],
        },
    }
    cases = [
        ({"stream_type": "files", "batch_size": 0}, "batch_size", 0),
        ({"stream_type": "files", "colour": "red"}, "colour", "red"),
        ({"stream_type": "files", "filters": {"label_ids": []}}, "filters.label_ids", []),
        ({"stream_type": "outlook_messages"}, "stream_type", "outlook_messages"),
        (
            {"stream_type": "calendar_events", "filters": {"time_min": "soon"}},
            "filters.time_min",
            "soon",
        ),
    ]
    for fields, name, value in cases:
        answer = await http.post("/api/stream/start", json={"session_id": DEMO, **fields})
        assert answer.status_code == 400, answer.text
        error = error_of(answer)
        assert error["code"] == "STREAM_CONFIG_ERROR"
        assert (error["details"]["field"], error["details"]["value"]) == (name, value)
    no_session = await http.post(
        "/api/stream/start", json={"session_id": "x", "stream_type": "files"}
    )
    assert no_session.status_code == 404 and error_of(no_session)["code"] == "SESSION_NOT_FOUND"
    empty = await http.post("/api/stream/start")
    assert empty.status_code == 400 and error_of(empty)["details"]["field"] == "body"


async def test_token_expired(server: Server, http: httpx.AsyncClient) -> None:
    session_id = await new_session(http, expires_in=10, session_lifetime=10)
    server.clock.advance(11)
    expired = await http.post(
        "/api/stream/start", json={"session_id": session_id, "stream_type": "files"}
    )
    assert expired.status_code == 401
    assert error_of(expired)["code"] == "TOKEN_EXPIRED"


@pytest.mark.parametrize("server", [{"stream_requests_per_minute": 1}], indirect=True)
async def test_stream_rate_limited(http: httpx.AsyncClient) -> None:
    await start_stream(http, session_id=DEMO, stream_type="files")
    limited = await http.post(
        "/api/stream/start", json={"session_id": DEMO, "stream_type": "contacts"}
    )
    assert limited.status_code == 429
    error = error_of(limited)
    assert error["code"] == "STREAM_RATE_LIMITED" and error["message"] == "Too many stream requests"
    assert error["details"]["retry_after"] == 60 and error["details"]["limit"] == 1
    assert limited.headers["Retry-After"] == "60"
    assert "X-RateLimit-Limit" in limited.headers


# -- Socket.IO ---------------------------------------------------------------------


async def test_connection_refusals(server: Server, http: httpx.AsyncClient) -> None:
    async def refusal(url: str) -> dict[str, Any]:
        client = listener()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.sio.connect(url, transports=["websocket"])
        [reason] = client.of("connect_error")
        assert reason["message"] == reason["data"]["message"]
        return reason["data"]

    assert (await refusal(server.url))["code"] == "SESSION_NOT_FOUND"
    unknown = await refusal(f"{server.url}?session_id=nope")
    assert unknown == {
        "code": "SESSION_NOT_FOUND",
        "message": "Invalid session ID",
        "details": {"session_id": "nope"},
    }
    expiring = await new_session(http, expires_in=10, session_lifetime=10)
    agent_bound = await new_session(http, agent_id="agent-7")
    server.clock.advance(11)
    assert (await refusal(f"{server.url}?session_id={expiring}"))["code"] == "TOKEN_EXPIRED"
    other_agent = f"{server.url}?session_id={agent_bound}&agent_id=agent-8"
    assert (await refusal(other_agent))["code"] == "SESSION_NOT_FOUND"

    session_id = await new_session(http)
    clients = [await connect(server, session_id, agent_id="any") for _ in range(4)]
    by_auth = listener()  # Socket.IO v4 clients may send the session in `auth`
    await by_auth.sio.connect(server.url, auth={"session_id": session_id}, transports=["websocket"])
    limited = await refusal(f"{server.url}?session_id={session_id}")
    assert limited["code"] == "RATE_LIMIT_EXCEEDED"
    assert limited["details"]["limit"] == 5 and 0 < limited["details"]["retry_after"] <= 300
    stats = (await http.get("/api/streams")).json()["data"]["websocket_statistics"]
    assert stats["active_connections"] == 5 and stats["refused_connections"] == 5
    for client in [*clients, by_auth]:
        await client.sio.disconnect()
    await until(lambda: server.backend.service.websocket_statistics().active_connections == 0)


async def test_subscription_flow_and_data_updates(server: Server, http: httpx.AsyncClient) -> None:
    gmail, files = await connect(server, DEMO), await connect(server, DEMO)
    await gmail.sio.emit(
        "subscribe_data", {"session_id": DEMO, "data_types": ["gmail_messages", "calendar_events"]}
    )
    await until(lambda: gmail.of("subscription_confirmed"))
    assert gmail.of("subscription_confirmed") == [
        {"session_id": DEMO, "data_types": ["gmail_messages", "calendar_events"]}
    ]
    ack = await files.sio.call("subscribe_data", {"data_types": ["files", "outlook_messages"]})
    assert ack["code"] == "STREAM_CONFIG_ERROR"
    await until(lambda: files.of("error"))
    assert files.of("error") == [ack]
    assert ack["details"]["value"] == ["outlook_messages"]
    assert files.of("subscription_confirmed") == []  # nothing subscribed

    stream_id = await start_stream(
        http, session_id=DEMO, stream_type="gmail_messages", batch_size=5, max_results=12
    )
    await until(lambda: len(gmail.of("stream_event")) == 12)
    event = gmail.of("stream_event")[0]
    assert set(event) == {"event_type", "session_id", "provider", "timestamp", "data"}
    assert (event["event_type"], event["session_id"], event["provider"]) == (
        "data_update",
        DEMO,
        "google",
    )
    assert event["timestamp"] == server.clock.now().timestamp()
    assert event["data"]["data_type"] == "gmail_messages_message"
    assert event["data"]["stream_id"] == stream_id
    assert {"id", "subject", "from"} <= set(event["data"]["payload"])
    await asyncio.sleep(0.1)
    assert files.of("stream_event") == []  # not subscribed to gmail_messages
    await gmail.sio.disconnect()
    await files.sio.disconnect()


@pytest.mark.parametrize("server", [{"rate_limit_warning_ratio": 0.5}], indirect=True)
async def test_rate_limit_warning_and_token_refresh_reach_every_connection(
    server: Server, http: httpx.AsyncClient
) -> None:
    session_id = await new_session(http, expires_in=40)
    watcher, subscriber = await connect(server, session_id), await connect(server, session_id)
    await subscriber.sio.call("subscribe_data", {"data_types": ["contacts"]})
    await start_stream(
        http, session_id=session_id, stream_type="contacts", max_results=4, rate_limit_per_minute=4
    )
    await until(lambda: len(subscriber.of("stream_event")) == 5)
    kinds = [e["event_type"] for e in subscriber.of("stream_event")]
    assert kinds == ["data_update"] * 2 + ["rate_limit_warning"] + ["data_update"] * 2
    [warning] = watcher.of("stream_event")  # no subscription needed for warnings
    assert warning == subscriber.of("stream_event")[2]
    assert warning["data"]["remaining_quota"] == 2
    assert warning["data"]["reset_time"] == server.clock.now().timestamp() + 60
    assert warning["data"]["warning_message"] == "Rate limit approaching. 2 requests remaining."

    server.clock.advance(31)  # 9 s left of 40: less than a quarter
    await until(lambda: len(watcher.of("stream_event")) == 2)
    refresh = watcher.of("stream_event")[1]
    now = server.clock.now().timestamp()
    assert refresh == {
        "event_type": "token_refresh",
        "session_id": session_id,
        "provider": "google",
        "timestamp": now,
        "data": {"new_expires_at": now + 40, "expires_in": 40},
    }
    await until(lambda: subscriber.of("stream_event")[-1] == refresh)
    await watcher.sio.disconnect()
    await subscriber.sio.disconnect()


FILTERS: list[tuple[str, str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    (
        "google",
        "gmail_messages",
        {"query": "is:unread from:important@example.com", "label_ids": ["INBOX"]},
        lambda m: (
            m["from"] == "important@example.com" and {"UNREAD", "INBOX"} <= set(m["labelIds"])
        ),
    ),
    (
        "google",
        "gmail_threads",
        {"query": "has:attachment -in:inbox", "include_spam_trash": True},
        lambda t: t["hasAttachment"] and "INBOX" not in t["labelIds"],
    ),
    (
        "google",
        "calendar_events",
        {"time_min": "2024-02-01T00:00:00Z", "time_max": "2024-03-01T00:00:00Z", "query": "review"},
        lambda e: (
            e["end"]["dateTime"] > "2024-01-31"
            and e["start"]["dateTime"] < "2024-03"
            and "review" in f"{e['summary']} {e['description']}".lower()
        ),
    ),
    (
        "microsoft",
        "outlook_messages",
        {"filter": "isRead eq false", "search": "subject:important"},
        lambda m: not m["isRead"] and "important" in m["subject"].lower(),
    ),
    (
        "microsoft",
        "outlook_events",
        {"filter": "importance eq 'high'", "time_max": "2024-02-01T00:00:00Z"},
        lambda e: e["importance"] == "high" and e["start"]["dateTime"] < "2024-02-01",
    ),
    (
        "microsoft",
        "contacts",
        {"filter": "startswith(displayName, 'Grace')"},
        lambda c: c["displayName"].startswith("Grace"),
    ),
    (
        "google",
        "files",
        {"query": "budget", "filter": "size gt 1000000"},
        lambda f: "budget" in f["name"] and f["size"] > 1_000_000,
    ),
]


@pytest.mark.parametrize(
    ("provider", "stream_type", "filters", "check"), FILTERS, ids=[f[1] for f in FILTERS]
)
async def test_filters_per_stream_type(
    server: Server,
    http: httpx.AsyncClient,
    provider: str,
    stream_type: str,
    filters: dict[str, Any],
    check: Callable[[dict[str, Any]], bool],
) -> None:
    session_id = await new_session(http, provider=provider)
    client = await connect(server, session_id)
    await client.sio.call("subscribe_data", {"data_types": [stream_type]})
    stream_id = await start_stream(
        http,
        session_id=session_id,
        stream_type=stream_type,
        filters=filters,
        batch_size=50,
        rate_limit_per_minute=100_000,
    )
    service = server.backend.service
    status = await until(lambda: (s := service.stream_status(stream_id)).status != "active" and s)
    assert status.status == "completed" and status.items_streamed > 0
    await until(lambda: len(client.of("stream_event")) == status.items_streamed)
    payloads = [e["data"]["payload"] for e in client.of("stream_event")]
    assert all(check(p) for p in payloads), stream_type
    unfiltered = server.backend.service.settings.mailbox_size
    assert len(payloads) < unfiltered
    await client.sio.disconnect()


# -- the typed client ----------------------------------------------------------------


async def test_client_errors_are_typed(server: Server) -> None:
    async with RealtimeClient(server.url) as client:
        providers = await client.providers()
        assert [p.provider for p in providers.providers] == ["google", "microsoft"]
        assert client.rate_limit is not None and client.rate_limit.limit == 600
        session = await client.create_session(provider="microsoft")
        with pytest.raises(RealtimeApiError) as caught:
            await client.start_stream(session_id=session.session_id, stream_type="gmail_messages")
        error = caught.value
        assert (error.status_code, error.code) == (400, "STREAM_CONFIG_ERROR")
        assert error.details["allowed_values"] == [
            "outlook_messages",
            "outlook_events",
            "contacts",
            "files",
        ]
        assert str(error).startswith("400 STREAM_CONFIG_ERROR: ")
        with pytest.raises(RealtimeApiError) as caught:
            await client.get_stream_status("stream-x")
        assert (caught.value.status_code, caught.value.code) == (404, "STREAM_NOT_FOUND")
        started = await client.start_stream(
            session_id=session.session_id, stream_type="files", max_results=3
        )
        assert started.configuration.max_results == 3
        status = await client.get_stream_status(started.stream_id)
        assert status.configuration.stream_type == "files"
        listed = await client.list_streams()
        assert started.stream_id in listed.streams
        assert (await client.stop_stream(started.stream_id)).stream_id == started.stream_id
        assert (await client.get_session(session.session_id)).provider == "microsoft"
        assert (await client.health()).active_connections == 0
    async with RealtimeClient("http://127.0.0.1:9") as unreachable:
        with pytest.raises(RealtimeApiError) as caught:
            await unreachable.list_sessions()
        assert (caught.value.status_code, caught.value.code) == (0, "UNREACHABLE")


@pytest.mark.parametrize("server", [{"arrival_interval_seconds": 0.01}], indirect=True)
async def test_event_tail_reconnects_and_resubscribes(server: Server) -> None:
    async with RealtimeClient(server.url) as client:
        session = await client.create_session()
        await client.start_stream(
            session_id=session.session_id,
            stream_type="gmail_messages",
            max_results=1,
            real_time=True,
            rate_limit_per_minute=100_000,
            filters={"include_spam_trash": True},
        )
        async with client.events(
            session.session_id, ["gmail_messages"], backoff=(0.05, 0.2)
        ) as tail:
            first = await anext(tail)
            assert isinstance(first, DataUpdateEvent)
            assert first.data.data_type == "gmail_messages_message"
            backend = server.backend
            for sid in backend.service.connected_sids():  # the server drops us
                await backend.sio.disconnect(sid)
            await until(lambda: tail.reconnects == 1 and tail.connected)
            seen_after = 0
            async for event in tail:
                assert isinstance(event, DataUpdateEvent)
                seen_after += 1
                if seen_after == 20:
                    break
            assert len(backend.service.connected_sids()) == 1
            await tail.subscribe(["files"])
            assert tail.data_types == ["gmail_messages", "files"]
            await tail.unsubscribe(["gmail_messages"])
            assert tail.data_types == ["files"]


async def test_event_tail_ends_on_refusals_that_retrying_cannot_cure(server: Server) -> None:
    async with RealtimeClient(server.url) as client:
        async with client.events("nope", ["files"]) as tail:
            with pytest.raises(RealtimeApiError) as caught:
                await anext(tail)
        assert caught.value.code == "SESSION_NOT_FOUND"
        async with client.events(DEMO, ["outlook_events"]) as tail:
            with pytest.raises(RealtimeApiError) as caught:
                await anext(tail)
        assert caught.value.code == "STREAM_CONFIG_ERROR"
        assert caught.value.details["field"] == "data_types"

"""The realtime domain core: sessions, tokens, connections, subscriptions and streams.

The service runs on a manual clock with a fakeredis session store and a publisher
that records what would go out over Socket.IO.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest

from backends.common.clock import ManualClock
from backends.realtime.models import (
    DataUpdateEvent,
    RateLimitWarningEvent,
    SessionCreate,
    StreamStartRequest,
    SubscribeRequest,
    TokenRefreshEvent,
)
from backends.realtime.service import Event, RealtimeError, RealtimeService
from backends.realtime.sessions import SessionStore
from backends.settings import RealtimeSettings


@dataclass
class Recorder:
    sent: list[tuple[Event, str | None]] = field(default_factory=list)

    async def publish(self, event: Event, stream_type: str | None) -> None:
        self.sent.append((event, stream_type))

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event, _ in self.sent if isinstance(event, kind)]


@dataclass
class Env:
    service: RealtimeService
    clock: ManualClock
    recorder: Recorder
    redis: fakeredis.FakeAsyncRedis

    def twin(self, **overrides: Any) -> RealtimeService:
        """Another process: same Redis, same clock, its own streams and connections."""
        settings = self.service.settings.model_copy(update=overrides)
        return RealtimeService(
            settings,
            clock=self.clock,
            store=SessionStore(self.redis, "test"),
            publisher=self.recorder,
        )


SETTINGS = RealtimeSettings(
    page_delay_ms=0, maintenance_interval_seconds=0.01, demo_session_id=None, mailbox_size=300
)


@pytest.fixture
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    overrides = getattr(request, "param", {})
    clock = ManualClock()
    redis = fakeredis.FakeAsyncRedis()
    recorder = Recorder()
    service = RealtimeService(
        SETTINGS.model_copy(update=overrides),
        clock=clock,
        store=SessionStore(redis, "test"),
        publisher=recorder,
    )
    try:
        yield Env(service, clock, recorder, redis)
    finally:
        await service.aclose()
        await redis.aclose()


async def until(predicate: Callable[[], Any], within: float = 5.0) -> Any:
    async with asyncio.timeout(within):
        while not (value := predicate()):
            await asyncio.sleep(0.005)
    return value


async def expect_error(code: str, call: Any) -> RealtimeError:
    with pytest.raises(RealtimeError) as caught:
        await call
    assert caught.value.code == code, caught.value.info()
    return caught.value


# -- sessions and tokens ------------------------------------------------------


async def test_sessions_are_created_listed_and_found(env: Env) -> None:
    info = await env.service.create_session(SessionCreate(provider="microsoft", agent_id="a1"))
    assert info.session_id.startswith("session-")
    assert info.provider == "microsoft" and info.agent_id == "a1" and info.status == "active"
    assert info.expires_in == 3600 and info.expires_at == info.created_at + 3600
    assert info.stream_types == ["outlook_messages", "outlook_events", "contacts", "files"]
    assert (await env.service.get_session(info.session_id)) == info
    listed = await env.service.list_sessions()
    assert listed.total_count == 1 and listed.sessions == [info]
    error = await expect_error("SESSION_NOT_FOUND", env.service.get_session("nope"))
    assert error.status_code == 404


async def test_demo_session_never_expires_and_is_created_once(env: Env) -> None:
    settings = {"demo_session_id": "your-session-id"}
    first, second = env.twin(**settings), env.twin(**settings)
    created = env.clock.now().timestamp()
    assert await first.start() == "your-session-id"
    env.clock.advance(10 * 86400)
    await second.start()
    info = await second.get_session("your-session-id")
    assert info.session_expires_at is None and info.status == "active"
    assert info.created_at == created
    await first.aclose()
    await second.aclose()


async def test_token_is_refreshed_once_while_in_use(env: Env) -> None:
    info = await env.service.create_session(SessionCreate(expires_in=100))
    await env.service.open_connection("sid-1", info.session_id, None)
    other = env.twin()  # a second process with a connection of the same session
    await other.open_connection("sid-2", info.session_id, None)
    env.clock.advance(70)  # 30 s left: more than a quarter of 100 s
    await env.service.maintain()
    assert env.recorder.of(TokenRefreshEvent) == []
    env.clock.advance(10)  # 20 s left: due
    await asyncio.gather(env.service.maintain(), other.maintain())
    [refresh] = env.recorder.of(TokenRefreshEvent)
    now = env.clock.now().timestamp()
    assert refresh.session_id == info.session_id and refresh.provider == "google"
    assert refresh.timestamp == now
    assert refresh.data.new_expires_at == now + 100 and refresh.data.expires_in == 100
    assert (await env.service.get_session(info.session_id)).expires_at == now + 100
    await env.service.maintain()
    assert len(env.recorder.of(TokenRefreshEvent)) == 1


async def test_sessions_not_in_use_are_refreshed_on_demand(env: Env) -> None:
    info = await env.service.create_session(SessionCreate(expires_in=30))
    env.clock.advance(40)
    await env.service.maintain()
    assert env.recorder.of(TokenRefreshEvent) == []  # nobody uses it here
    session = await env.service.open_connection("sid", info.session_id, None)
    assert session.token_valid(env.clock.now().timestamp())
    assert len(env.recorder.of(TokenRefreshEvent)) == 1


async def test_expired_session_is_refused_everywhere(env: Env) -> None:
    info = await env.service.create_session(SessionCreate(expires_in=30, session_lifetime=60))
    env.clock.advance(61)
    error = await expect_error(
        "TOKEN_EXPIRED", env.service.open_connection("sid", info.session_id, None)
    )
    assert error.status_code == 401
    request = StreamStartRequest(session_id=info.session_id, stream_type="files")
    await expect_error("TOKEN_EXPIRED", env.service.start_stream(request))
    assert (await env.service.get_session(info.session_id)).status == "expired"
    assert env.service.websocket_statistics().refused_connections == 1


# -- connections and subscriptions ------------------------------------------


async def test_five_connections_per_session_per_five_minutes(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    for n in range(3):
        await env.service.open_connection(f"a{n}", info.session_id, None)
    other = env.twin()  # the count is shared between processes
    for n in range(2):
        await other.open_connection(f"b{n}", info.session_id, None)
    error = await expect_error(
        "RATE_LIMIT_EXCEEDED", env.service.open_connection("a9", info.session_id, None)
    )
    assert error.status_code == 429
    assert error.details["limit"] == 5
    assert 0 < error.details["retry_after"] <= 300
    assert error.retry_after == error.details["retry_after"]
    assert error.details["reset_time"] > env.clock.now().timestamp()
    env.clock.advance(error.details["retry_after"])
    await env.service.open_connection("a9", info.session_id, None)
    stats = env.service.websocket_statistics()
    assert (stats.active_connections, stats.total_connections, stats.refused_connections) == (
        4,
        4,
        1,
    )


async def test_unknown_session_and_other_agent_are_refused(env: Env) -> None:
    await expect_error("SESSION_NOT_FOUND", env.service.open_connection("s", None, None))
    await expect_error("SESSION_NOT_FOUND", env.service.open_connection("s", "nope", None))
    info = await env.service.create_session(SessionCreate(agent_id="agent-1"))
    await expect_error(
        "SESSION_NOT_FOUND", env.service.open_connection("s", info.session_id, "agent-2")
    )
    await env.service.open_connection("s", info.session_id, "agent-1")
    await env.service.open_connection("t", info.session_id, None)


async def test_subscription_flow(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    await env.service.open_connection("sid", info.session_id, None)
    confirmed = env.service.subscribe(
        "sid", SubscribeRequest(session_id=info.session_id, data_types=["gmail_messages"] * 2)
    )
    assert confirmed.data_types == ["gmail_messages"] and confirmed.session_id == info.session_id
    with pytest.raises(RealtimeError) as caught:
        env.service.subscribe("sid", SubscribeRequest(data_types=["files", "outlook_messages"]))
    assert caught.value.code == "STREAM_CONFIG_ERROR"
    assert caught.value.details["value"] == ["outlook_messages"]
    assert caught.value.details["allowed_values"] == [
        "gmail_messages",
        "gmail_threads",
        "calendar_events",
        "contacts",
        "files",
    ]
    with pytest.raises(RealtimeError) as caught:
        env.service.subscribe("sid", SubscribeRequest(session_id="other", data_types=["files"]))
    assert caught.value.code == "SESSION_NOT_FOUND"
    dropped = env.service.unsubscribe(
        "sid", SubscribeRequest(data_types=["gmail_messages", "files"])
    )
    assert dropped.data_types == ["gmail_messages"]


async def test_ten_subscription_requests_a_minute(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    await env.service.open_connection("sid", info.session_id, None)
    request = SubscribeRequest(data_types=["files"])
    for _ in range(10):
        env.service.subscribe("sid", request)
    with pytest.raises(RealtimeError) as caught:
        env.service.subscribe("sid", request)
    assert caught.value.code == "RATE_LIMIT_EXCEEDED" and caught.value.details["limit"] == 10
    env.clock.advance(60)
    env.service.subscribe("sid", request)


# -- streams -----------------------------------------------------------------


async def start(env: Env, session_id: str, **fields: Any) -> str:
    request = StreamStartRequest(session_id=session_id, **fields)
    return (await env.service.start_stream(request)).stream_id


async def test_stream_pages_through_max_results_and_completes(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    started = await env.service.start_stream(
        StreamStartRequest(
            session_id=info.session_id,
            stream_type="gmail_messages",
            batch_size=10,
            max_results=25,
            filters={"query": "is:unread"},
        )
    )
    assert started.provider == "google"
    assert started.configuration.rate_limit_per_minute == 100  # the spec's default
    status = await until(
        lambda: (s := env.service.stream_status(started.stream_id)).status == "completed" and s
    )
    assert status.items_streamed == 25
    assert status.configuration.filters == {"query": "is:unread"}
    updates = [(e, t) for e, t in env.recorder.sent if isinstance(e, DataUpdateEvent)]
    assert len(updates) == 25
    for event, stream_type in updates:
        assert stream_type == "gmail_messages"
        assert event.data.data_type == "gmail_messages_message"
        assert event.data.stream_id == started.stream_id
        assert "UNREAD" in event.data.payload["labelIds"]
    assert status.last_activity == env.clock.now().timestamp()


async def test_stream_completes_when_history_runs_out(env: Env) -> None:
    info = await env.service.create_session(SessionCreate(provider="microsoft"))
    stream_id = await start(
        env, info.session_id, stream_type="outlook_messages", filters={"filter": "isRead eq false"}
    )
    status = await until(
        lambda: (s := env.service.stream_status(stream_id)).status != "active" and s
    )
    assert status.status == "completed"
    assert 0 < status.items_streamed < 300  # of the 300 messages, the unread ones


@pytest.mark.parametrize("env", [{"rate_limit_warning_ratio": 0.2}], indirect=True)
async def test_rate_limit_per_minute_and_warning(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    stream_id = await start(
        env, info.session_id, stream_type="files", max_results=15, rate_limit_per_minute=10
    )
    await until(lambda: env.service.stream_status(stream_id).items_streamed == 10)
    await asyncio.sleep(0.05)
    assert env.service.stream_status(stream_id).items_streamed == 10  # waits for the window
    [warning] = env.recorder.of(RateLimitWarningEvent)
    window_end = env.clock.now().timestamp() + 60  # the manual clock starts on a minute
    assert warning.data.remaining_quota == 2
    assert warning.data.reset_time == window_end
    assert warning.data.warning_message == "Rate limit approaching. 2 requests remaining."
    assert warning.data.stream_id == stream_id
    assert [e.event_type for e, _ in env.recorder.sent][7:9] == [
        "data_update",
        "rate_limit_warning",
    ]
    env.clock.advance(60)
    status = await until(
        lambda: (s := env.service.stream_status(stream_id)).status == "completed" and s
    )
    assert status.items_streamed == 15
    assert len(env.recorder.of(RateLimitWarningEvent)) == 1  # 5 of 10 used: no warning


@pytest.mark.parametrize("env", [{"arrival_interval_seconds": 0.005}], indirect=True)
async def test_real_time_stream_keeps_pushing_until_stopped(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    stream_id = await start(
        env,
        info.session_id,
        stream_type="contacts",
        max_results=5,
        real_time=True,
        rate_limit_per_minute=1000,
    )
    await until(lambda: env.service.stream_status(stream_id).items_streamed > 12)
    assert env.service.stream_status(stream_id).status == "active"
    stopped = await env.service.stop_stream(stream_id)
    assert (stopped.stream_id, stopped.status) == (stream_id, "stopped")
    count = env.service.stream_status(stream_id).items_streamed
    await asyncio.sleep(0.05)
    assert env.service.stream_status(stream_id).items_streamed == count
    assert (await env.service.stop_stream(stream_id)).status == "stopped"  # idempotent


async def test_stream_errors(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    error = await expect_error("STREAM_CONFIG_ERROR", start(env, info.session_id, stream_type="x"))
    assert error.details["field"] == "stream_type" and len(error.details["allowed_values"]) == 7
    error = await expect_error(
        "STREAM_CONFIG_ERROR", start(env, info.session_id, stream_type="outlook_events")
    )
    assert error.details["allowed_values"] == [
        "gmail_messages",
        "gmail_threads",
        "calendar_events",
        "contacts",
        "files",
    ]
    error = await expect_error(
        "STREAM_CONFIG_ERROR",
        start(env, info.session_id, stream_type="gmail_messages", filters={"query": "x:y"}),
    )
    assert error.details["field"] == "filters.query" and error.details["value"] == "x:y"
    await expect_error("SESSION_NOT_FOUND", start(env, "nope", stream_type="files"))
    await expect_error("STREAM_NOT_FOUND", env.service.stop_stream("stream-nope"))
    with pytest.raises(RealtimeError) as caught:
        env.service.stream_status("stream-nope")
    assert caught.value.status_code == 404


async def test_one_active_stream_per_session_and_type(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    first = await start(env, info.session_id, stream_type="files", real_time=True)
    error = await expect_error(
        "STREAM_ALREADY_ACTIVE", start(env, info.session_id, stream_type="files")
    )
    assert error.status_code == 409 and error.details["stream_id"] == first
    await start(env, info.session_id, stream_type="contacts")
    await env.service.stop_stream(first)
    await start(env, info.session_id, stream_type="files")
    assert env.service.list_streams().total_count == 3


@pytest.mark.parametrize("env", [{"stream_requests_per_minute": 2}], indirect=True)
async def test_stream_starts_are_rate_limited_per_session(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    await start(env, info.session_id, stream_type="files")
    await start(env, info.session_id, stream_type="contacts")
    error = await expect_error(
        "STREAM_RATE_LIMITED", start(env, info.session_id, stream_type="gmail_threads")
    )
    assert error.status_code == 429
    reset = int(env.clock.now().timestamp()) + 60
    assert error.details == {"retry_after": 60, "limit": 2, "reset_time": reset}
    other = await env.service.create_session(SessionCreate())
    await start(env, other.session_id, stream_type="gmail_threads")


@pytest.mark.parametrize(
    "env", [{"inactive_stream_ttl_seconds": 100, "arrival_interval_seconds": 1000}], indirect=True
)
async def test_inactive_streams_are_cleaned_up(env: Env) -> None:
    info = await env.service.create_session(SessionCreate())
    done = await start(env, info.session_id, stream_type="contacts", max_results=3)
    idle = await start(env, info.session_id, stream_type="files", max_results=1, real_time=True)
    await until(lambda: env.service.stream_status(done).status == "completed")
    await until(lambda: env.service.stream_status(idle).items_streamed == 1)
    env.clock.advance(99)
    await env.service.maintain()
    assert env.service.list_streams().total_count == 2
    env.clock.advance(1)
    await env.service.maintain()
    assert env.service.list_streams().streams == {}
    await expect_error("STREAM_NOT_FOUND", env.service.stop_stream(idle))


@pytest.mark.parametrize("env", [{"arrival_interval_seconds": 0.005}], indirect=True)
async def test_stream_ends_with_token_expired(env: Env) -> None:
    info = await env.service.create_session(SessionCreate(expires_in=30, session_lifetime=60))
    stream_id = await start(
        env, info.session_id, stream_type="files", max_results=2, real_time=True
    )
    await until(lambda: env.service.stream_status(stream_id).items_streamed >= 2)
    env.clock.advance(100)
    status = await until(
        lambda: (s := env.service.stream_status(stream_id)).status == "error" and s
    )
    assert status.error is not None and status.error.code == "TOKEN_EXPIRED"

"""The export API over real sockets on a real Redis: polling, info, admin and every error.

Each test serves its own `ExportService` (a unique key prefix, a ManualClock so
rate-limit windows and retention move only when told) with uvicorn in the test's
loop, and talks to it with httpx as any client written from the spec would.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from backends.common.clock import ManualClock, SystemClock
from backends.common.server import RunningServer, start_server
from backends.export.api import create_app, start_export
from backends.export.feed import SyntheticFeed
from backends.export.models import (
    CreateApiKeyRequest,
    ErrorBody,
    IdentifierStreamMessage,
    JournalEntryStreamMessage,
    PollResponse,
    StreamInfo,
)
from backends.export.service import ExportService
from backends.export.store import ExportStore
from backends.settings import ExportSettings, RedisSettings, Settings

ADMIN = "admin-secret"


class Harness:
    def __init__(
        self, service: ExportService, server: RunningServer, clock: ManualClock, redis: Any
    ) -> None:
        self.service = service
        self.server = server
        self.clock = clock
        self.redis: aioredis.Redis = redis
        self.url = f"http://127.0.0.1:{server.port}/api"
        self.key = ""
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"X-Admin-Key": ADMIN})

    async def stream(self, data_type: str = "identifier", **retention: int) -> str:
        body = {"name": f"s-{uuid.uuid4().hex[:8]}", "data_type": data_type, **retention}
        response = await self.admin("/admin/streams", body)
        assert response.status_code == 201, response.text
        return str(response.json()["consumer_key"])

    async def api_key(self, consumer_keys: list[str] | None = None) -> str:
        response = await self.admin(
            "/admin/keys", {"name": "k", "consumer_keys": consumer_keys or []}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return f"{body['api_key_id']}:{body['api_key_secret']}"

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        key = self.key if key is None else key
        return await self.http.get(path, params=params, headers={"X-API-Key": key} if key else {})

    async def poll(self, ck: str, **params: Any) -> dict[str, Any]:
        response = await self.get(f"/consume/{ck}/poll", **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()
        PollResponse.model_validate(body)
        # The headers announce the next page before the body is parsed (pipelined polling).
        assert response.headers.get("x-next-cursor") == body["next_cursor"]
        assert response.headers["x-has-more"] == ("true" if body["has_more"] else "false")
        return body


Factory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make(redis_client: aioredis.Redis) -> AsyncIterator[Factory]:
    running: list[Harness] = []

    async def factory(**settings: Any) -> Harness:
        clock = ManualClock(datetime.now(UTC))
        store = ExportStore(redis_client, prefix=f"t-{uuid.uuid4().hex[:8]}:")
        service = ExportService(
            store, ExportSettings(**({"admin_key": ADMIN} | settings)), clock=clock
        )
        server = await start_server(create_app(service, clock=clock), "127.0.0.1", 0)
        harness = Harness(service, server, clock, redis_client)
        running.append(harness)
        key = await service.create_api_key(CreateApiKeyRequest(name="tests"))
        harness.key = f"{key.api_key_id}:{key.api_key_secret}"
        return harness

    yield factory
    for harness in running:
        await harness.http.aclose()
        await harness.service.aclose()
        await harness.server.stop()


def numbered(count: int, start: int = 0, test_every: int = 0) -> list[dict[str, Any]]:
    return [
        {"n": n, "identifier_id": f"id-{n}", "is_test": bool(test_every) and n % test_every == 0}
        for n in range(start, start + count)
    ]


def ns(body: dict[str, Any]) -> list[int]:
    return [m["n"] for m in body["messages"]]


def check_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    ErrorBody.model_validate(body)
    assert (body["status"], body["code"]) == (status, code) and body["error"]
    return body


async def test_poll_cursor_semantics(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    cursors = await h.service.publish_many(ck, numbered(30, test_every=10))
    first = await h.poll(ck, cursor="0", limit=10, include_test="true")
    assert ns(first) == list(range(10)) and first["has_more"]
    assert first["next_cursor"] == cursors[9] == first["messages"][-1]["cursor"]
    after = await h.poll(ck, cursor=first["next_cursor"], limit=1000)
    assert ns(after) == [n for n in range(10, 30) if n % 10] and not after["has_more"]
    assert after["next_cursor"] == cursors[-1]
    newest = await h.poll(ck, cursor="$")
    assert newest == {"messages": [], "next_cursor": cursors[-1], "has_more": False}
    new = await h.service.publish_many(ck, numbered(2, start=30))
    assert ns(await h.poll(ck, cursor=newest["next_cursor"])) == [30, 31]
    desc = await h.poll(ck, cursor="$", order="desc", limit=5, include_test="true")
    assert ns(desc) == [31, 30, 29, 28, 27] and desc["next_cursor"] == cursors[27]
    older = await h.poll(ck, cursor=desc["next_cursor"], order="desc", limit=3)
    assert ns(older) == [26, 25, 24] and older["next_cursor"] == cursors[24]
    older = await h.poll(ck, cursor=cursors[23], order="desc", limit=3)
    assert ns(older) == [22, 21] and older["next_cursor"] == cursors[20]  # 20: a test message
    assert ns(await h.poll(ck, cursor=cursors[4], limit=2)) == [5, 6]
    assert new[-1] == (await h.poll(ck, cursor="$"))["next_cursor"]


async def test_poll_without_cursor_resumes_per_api_key(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    await h.service.publish_many(ck, numbered(10))
    other = await h.api_key([ck])
    assert ns(await h.poll(ck, limit=4)) == [0, 1, 2, 3]
    assert ns(await h.poll(ck, limit=4)) == [4, 5, 6, 7]
    response = await h.get(f"/consume/{ck}/poll", key=other, limit=3)
    assert ns(response.json()) == [0, 1, 2]
    info = (await h.get(f"/consume/{ck}/info")).json()
    assert info["stored_cursor"] == info["suggested_cursors"]["resume"]
    assert ns(await h.poll(ck)) == [8, 9]
    assert ns(await h.poll(ck)) == []


async def test_journal_messages_carry_message_id_and_parse_as_typed_models(
    make: Factory,
) -> None:
    h = await make()
    journal, identifiers = await h.stream("journal_entry"), await h.stream("identifier")
    feed = SyntheticFeed(random.Random(3), h.clock)
    await h.service.publish_many(journal, [feed.journal_entry() for _ in range(20)])
    await h.service.publish_many(identifiers, [feed.identifier_change() for _ in range(20)])
    for raw in (await h.poll(journal, cursor="0", include_test="true"))["messages"]:
        assert raw["message_id"] == raw["cursor"] and next(iter(raw)) == "message_id"
        typed = JournalEntryStreamMessage.from_dict(raw)
        assert typed.to_dict() == raw and typed.identifiers
    for raw in (await h.poll(identifiers, cursor="0", include_test="true"))["messages"]:
        assert "message_id" not in raw and next(iter(raw)) == "cursor"
        assert IdentifierStreamMessage.from_dict(raw).to_dict() == raw


async def test_limit_order_and_cursor_validation(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    await h.service.publish_many(ck, numbered(1001))
    assert len((await h.poll(ck, cursor="0", limit=1000))["messages"]) == 1000
    assert len((await h.poll(ck, cursor="0", limit=1))["messages"]) == 1
    assert len((await h.poll(ck, cursor="0"))["messages"]) == 100  # the default
    path = f"/consume/{ck}/poll"
    for params, code in (
        ({"limit": 0}, "INVALID_PARAMETER"),
        ({"limit": 1001}, "INVALID_PARAMETER"),
        ({"limit": "many"}, "INVALID_PARAMETER"),
        ({"order": "sideways"}, "INVALID_PARAMETER"),
        ({"include_test": "maybe"}, "INVALID_PARAMETER"),
        ({"cursor": "yesterday"}, "INVALID_CURSOR"),
        ({"cursor": "12-ab"}, "INVALID_CURSOR"),
    ):
        body = check_error(await h.get(path, **params), 400, code)
        assert next(iter(params)) in body["error"]  # the message names the parameter


async def test_auth_and_access_errors(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    for route in ("poll", "stream", "info"):
        path = f"/consume/{ck}/{route}"
        check_error(await h.get(path, key=""), 401, "INVALID_API_KEY")
        check_error(await h.get(path, key="nocolon"), 401, "INVALID_API_KEY")
        key_id = h.key.split(":")[0]
        check_error(await h.get(path, key=f"{key_id}:wrong-secret"), 401, "INVALID_API_KEY")
        check_error(await h.get(f"/consume/{uuid.uuid4()}/{route}"), 404, "STREAM_NOT_FOUND")
        other = await h.stream()
        limited = await h.api_key([other])
        check_error(await h.get(path, key=limited), 403, "FORBIDDEN")


async def test_inactive_and_rebuilding_streams(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    await h.service.publish_many(ck, numbered(3))
    off = await h.admin(f"/admin/streams/{ck}/deactivate")
    assert off.status_code == 200 and off.json()["is_active"] is False
    for route in ("poll", "stream"):
        check_error(await h.get(f"/consume/{ck}/{route}"), 401, "STREAM_INACTIVE")
    info = await h.get(f"/consume/{ck}/info")
    assert info.status_code == 200 and info.json()["is_active"] is False
    assert (await h.admin(f"/admin/streams/{ck}/activate")).json()["is_active"] is True
    await h.service.set_rebuilding(ck, True)
    for route in ("poll", "stream"):
        response = await h.get(f"/consume/{ck}/{route}")
        body = check_error(response, 503, "STREAM_REBUILDING")
        assert response.headers["retry-after"] == "10" and body["retry_after"] == 10
    await h.service.set_rebuilding(ck, False)
    assert ns(await h.poll(ck, cursor="0")) == [0, 1, 2]


async def test_trimmed_cursors_answer_416_and_410(make: Factory) -> None:
    h = await make()
    ck = await h.stream(max_length=5)
    cursors = await h.service.publish_many(ck, numbered(50))
    rebuilt = await h.admin(f"/admin/streams/{ck}/rebuild")  # an exact re-trim to max_length
    assert rebuilt.status_code == 200 and rebuilt.json()["is_rebuilding"] is False
    response = await h.get(f"/consume/{ck}/poll", cursor=cursors[10])
    body = check_error(response, 416, "CURSOR_BEFORE_START")
    assert body["stream_first_id"] == cursors[45]
    check_error(
        await h.get(f"/consume/{ck}/stream", cursor=cursors[10]), 416, "CURSOR_BEFORE_START"
    )
    assert ns(await h.poll(ck, cursor="0")) == [45, 46, 47, 48, 49]

    aged = await h.stream(max_age_seconds=30)
    old = await h.service.publish_many(aged, numbered(5))
    h.clock.advance(60)
    await h.service.publish_many(aged, numbered(1, start=5))  # trims what is older than 30 s
    body = check_error(await h.get(f"/consume/{aged}/poll", cursor=old[0]), 410, "CURSOR_EXPIRED")
    assert "retention window" in body["error"]
    check_error(await h.get(f"/consume/{aged}/stream", cursor=old[0]), 410, "CURSOR_EXPIRED")
    assert (await h.poll(aged, cursor="$"))["messages"] == []


async def test_rate_limit_per_api_key_with_retry_after(make: Factory) -> None:
    h = await make(rate_limit_per_minute=3)
    ck = await h.stream()
    other = await h.api_key()
    for _ in range(3):
        assert (await h.get(f"/consume/{ck}/poll")).status_code == 200
    for route in ("poll", "info", "stream"):
        response = await h.get(f"/consume/{ck}/{route}")
        body = check_error(response, 429, "RATE_LIMITED")
        assert response.headers["retry-after"] == "60" and body["retry_after"] == 60
    assert (await h.get(f"/consume/{ck}/poll", key=other)).status_code == 200  # its own budget
    check_error(await h.get(f"/consume/{ck}/poll", key="ak_x:bad"), 401, "INVALID_API_KEY")
    h.clock.advance(61)
    assert (await h.get(f"/consume/{ck}/poll")).status_code == 200


async def test_info(make: Factory) -> None:
    h = await make()
    ck = await h.stream("journal_entry", max_length=1000, max_age_seconds=86400)
    empty = StreamInfo.model_validate((await h.get(f"/consume/{ck}/info")).json())
    assert (empty.message_count, empty.first_cursor, empty.last_cursor) == (0, None, None)
    assert empty.stored_cursor is None and empty.suggested_cursors.resume is None
    cursors = await h.service.publish_many(ck, [{"id": str(i)} for i in range(7)])
    await h.poll(ck, limit=3)
    body = (await h.get(f"/consume/{ck}/info")).json()
    created_at = body.pop("created_at")
    assert created_at.endswith("Z")
    assert body == {
        "consumer_key": ck,
        "stream": body["stream"],
        "data_type": "journal_entry",
        "is_active": True,
        "is_rebuilding": False,
        "message_count": 7,
        "first_cursor": cursors[0],
        "last_cursor": cursors[6],
        "retention": {"max_length": 1000, "max_age_seconds": 86400},
        "stored_cursor": cursors[2],
        "suggested_cursors": {"beginning": "0", "new_only": "$", "resume": cursors[2]},
    }


async def test_admin_routes(make: Factory) -> None:
    h = await make(max_length=777)
    created = await h.admin("/admin/streams", {"name": "orders", "data_type": "identifier"})
    assert created.status_code == 201
    record = created.json()
    assert uuid.UUID(record["consumer_key"]).version == 4
    assert (record["name"], record["max_length"], record["is_active"]) == ("orders", 777, True)
    duplicate = await h.admin("/admin/streams", {"name": "orders"})
    check_error(duplicate, 409, "STREAM_EXISTS")
    check_error(await h.admin("/admin/streams", {"name": ""}), 400, "INVALID_PARAMETER")
    check_error(
        await h.admin("/admin/streams", {"name": "x", "data_type": "other"}),
        400,
        "INVALID_PARAMETER",
    )
    key = await h.admin(
        "/admin/keys", {"name": "reader", "consumer_keys": [record["consumer_key"]]}
    )
    assert key.status_code == 201 and set(key.json()) >= {"api_key_id", "api_key_secret"}
    bad = await h.admin("/admin/keys", {"name": "reader", "consumer_keys": ["nope"]})
    assert "nope" in check_error(bad, 400, "INVALID_PARAMETER")["error"]
    check_error(await h.admin(f"/admin/streams/{uuid.uuid4()}/deactivate"), 404, "STREAM_NOT_FOUND")
    wrong = await h.http.post("/admin/streams", json={"name": "y"}, headers={"X-Admin-Key": "no"})
    check_error(wrong, 401, "INVALID_ADMIN_KEY")
    check_error(await h.http.post("/admin/keys", json={"name": "y"}), 401, "INVALID_ADMIN_KEY")
    check_error(await h.http.get("/nowhere"), 404, "NOT_FOUND")
    check_error(
        await h.http.delete(f"/consume/{record['consumer_key']}/poll"), 405, "METHOD_NOT_ALLOWED"
    )

    closed = await make(admin_key=None)
    check_error(await closed.admin("/admin/streams", {"name": "z"}), 403, "ADMIN_DISABLED")


async def test_secrets_are_stored_hashed(make: Factory) -> None:
    h = await make()
    response = await h.admin("/admin/keys", {"name": "k"})
    secret = response.json()["api_key_secret"].encode()
    keys = [key async for key in h.redis.scan_iter()]
    assert keys
    for key in keys:
        kind = await h.redis.type(key)
        if kind == b"hash":
            values = list((await h.redis.hgetall(key)).items())
            assert not any(secret in k or secret in v for k, v in values)
        elif kind == b"string":
            assert secret not in (await h.redis.get(key) or b"")
    key_id = response.json()["api_key_id"]
    assert (await h.get("/consume/x/info", key=f"{key_id}:{secret.decode()}")).status_code == 404


@pytest.mark.parametrize("embedded", [True, False])
async def test_start_export_serves_the_demo_streams(
    embedded: bool, redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = Settings(
        redis=RedisSettings(url=None if embedded else redis_url),
        export=ExportSettings(feed_rate=200, seed=5),
    )
    backend = await start_export(settings, SystemClock())
    server = await start_server(backend.app, "127.0.0.1", 0)
    try:
        credentials = backend.credentials
        assert [s.data_type for s in credentials.streams] == ["journal_entry", "identifier"]
        headers = {"X-API-Key": f"{credentials.api_key_id}:{credentials.api_key_secret}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}/api") as http:
            for stream in credentials.streams:
                for _ in range(100):
                    response = await http.get(
                        f"/consume/{stream.consumer_key}/poll", headers=headers
                    )
                    if response.json()["messages"]:
                        break
                    await asyncio.sleep(0.05)
                assert response.json()["messages"], stream
    finally:
        await backend.aclose()
        await server.stop()
    assert not backend.feed.running
    if not embedded:
        assert await redis_client.exists(
            f"streamops:export:data:{credentials.streams[0].consumer_key}"
        )

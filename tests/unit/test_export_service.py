"""ExportService on fakeredis: cursor semantics, ordering, errors, keys, demo bootstrap.

The same code runs on a real Redis in tests/integration; here fakeredis keeps the
domain rules fast to check, as in the embedded default.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import fakeredis
import orjson
import pytest

from backends.common.clock import ManualClock
from backends.export.models import (
    CreateApiKeyRequest,
    CreateStreamRequest,
    PollResponse,
)
from backends.export.service import ExportError, ExportService, PollPage, Principal
from backends.export.store import ExportStore
from backends.settings import ExportSettings


def make_service(
    clock: ManualClock | None = None, server: fakeredis.FakeServer | None = None, **settings: Any
) -> ExportService:
    redis = fakeredis.FakeAsyncRedis(server=server or fakeredis.FakeServer())
    return ExportService(
        ExportStore(redis),
        ExportSettings(**settings),
        clock=clock or ManualClock(datetime.now(UTC)),
    )


def message(i: int, *, is_test: bool = False) -> dict[str, Any]:
    return {"identifier_id": f"id-{i}", "type": "email", "seq": i, "is_test": is_test}


def decoded(page: PollPage) -> dict[str, Any]:
    body = orjson.loads(page.to_json())
    PollResponse.model_validate(body)
    return body


def seqs(page: PollPage) -> list[int]:
    return [m["seq"] for m in decoded(page)["messages"]]


async def expect(status: int, code: str, awaitable: Any) -> ExportError:
    with pytest.raises(ExportError) as caught:
        await awaitable
    assert (caught.value.status_code, caught.value.code) == (status, code), caught.value.body()
    return caught.value


@pytest.fixture
async def setup() -> tuple[ExportService, str, Principal, list[str]]:
    service = make_service()
    record = await service.create_stream(CreateStreamRequest(name="ids", data_type="identifier"))
    key = await service.create_api_key(CreateApiKeyRequest(name="k"))
    principal = await service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
    cursors = await service.publish_many("ids", [message(i, is_test=i % 5 == 4) for i in range(20)])
    return service, record.consumer_key, principal, cursors


async def test_create_stream_defaults_and_unique_names() -> None:
    service = make_service(max_length=500, max_age_seconds=3600)
    record = await service.create_stream(CreateStreamRequest(name="s", data_type="journal_entry"))
    assert uuid.UUID(record.consumer_key).version == 4
    assert (record.max_length, record.max_age_seconds, record.is_active) == (500, 3600, True)
    await expect(409, "STREAM_EXISTS", service.create_stream(CreateStreamRequest(name="s")))


async def test_authenticate() -> None:
    service = make_service()
    record = await service.create_stream(CreateStreamRequest(name="s"))
    key = await service.create_api_key(
        CreateApiKeyRequest(name="k", consumer_keys=[record.consumer_key])
    )
    principal = await service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
    assert principal.consumer_keys == {record.consumer_key} and principal.name == "k"
    for header in (None, "garbage", f"{key.api_key_id}:wrong", f"ak_nope:{key.api_key_secret}"):
        await expect(401, "INVALID_API_KEY", service.authenticate(header))
    await expect(
        400,
        "INVALID_PARAMETER",
        service.create_api_key(CreateApiKeyRequest(name="k2", consumer_keys=["nope"])),
    )


async def test_secret_is_never_stored() -> None:
    service = make_service()
    key = await service.create_api_key(CreateApiKeyRequest(name="k"))
    redis = service.store.redis
    secret = key.api_key_secret.encode()
    async for name in redis.scan_iter():
        assert secret not in name
        fields = await redis.hgetall(name)
        assert all(secret not in v for v in fields.values())


async def test_poll_from_beginning_pages_in_order(setup: Any) -> None:
    service, ck, principal, cursors = setup
    page = await service.poll(principal, ck, cursor="0", limit=5, include_test=True)
    assert seqs(page) == [0, 1, 2, 3, 4]
    assert page.next_cursor == cursors[4] and page.has_more
    body = decoded(page)
    assert [m["cursor"] for m in body["messages"]] == cursors[:5]
    assert next(iter(body["messages"][0])) == "cursor" and "message_id" not in body["messages"][0]
    page = await service.poll(principal, ck, cursor=page.next_cursor, limit=100, include_test=True)
    assert seqs(page) == list(range(5, 20)) and not page.has_more
    assert page.next_cursor == cursors[-1]
    page = await service.poll(principal, ck, cursor=page.next_cursor)
    assert seqs(page) == [] and page.next_cursor == cursors[-1] and not page.has_more


async def test_include_test_filters_but_advances(setup: Any) -> None:
    service, ck, principal, cursors = setup
    page = await service.poll(principal, ck, cursor="0", limit=5)
    assert seqs(page) == [0, 1, 2, 3]  # 4 is a test message: left out, still scanned
    assert page.next_cursor == cursors[4] and page.has_more
    everything = await service.poll(principal, ck, cursor="0", limit=1000)
    assert seqs(everything) == [i for i in range(20) if i % 5 != 4]


async def test_dollar_and_explicit_ids(setup: Any) -> None:
    service, ck, principal, cursors = setup
    page = await service.poll(principal, ck, cursor="$")
    assert seqs(page) == [] and page.next_cursor == cursors[-1] and not page.has_more
    [new] = await service.publish_many(ck, [message(20)])
    page = await service.poll(principal, ck, cursor=cursors[-1])
    assert seqs(page) == [20] and page.next_cursor == new
    page = await service.poll(principal, ck, cursor=cursors[9], limit=2, include_test=True)
    assert seqs(page) == [10, 11]  # strictly after the cursor
    ms = cursors[0].split("-")[0]  # a bare millisecond time means ms-0
    page = await service.poll(principal, ck, cursor="0-0", limit=1)
    assert seqs(page) == [0]
    assert (await service.poll(principal, ck, cursor=ms, limit=1)).messages


async def test_desc_is_newest_first(setup: Any) -> None:
    service, ck, principal, cursors = setup
    page = await service.poll(principal, ck, cursor="$", order="desc", limit=3, include_test=True)
    assert seqs(page) == [19, 18, 17] and page.next_cursor == cursors[17] and page.has_more
    page = await service.poll(
        principal, ck, cursor=page.next_cursor, order="desc", limit=100, include_test=True
    )
    assert seqs(page) == list(range(16, -1, -1)) and not page.has_more
    assert page.next_cursor == cursors[0]
    page = await service.poll(principal, ck, cursor="0", order="desc", limit=2, include_test=True)
    assert seqs(page) == [19, 18]  # "0" with desc: the whole stream, newest first
    page = await service.poll(principal, ck, order="desc", limit=1, include_test=True)
    assert seqs(page) == [19]


async def test_resume_is_per_api_key_and_only_moved_by_asc(setup: Any) -> None:
    service, ck, principal, cursors = setup
    other_key = await service.create_api_key(CreateApiKeyRequest(name="other"))
    other = await service.authenticate(f"{other_key.api_key_id}:{other_key.api_key_secret}")
    page = await service.poll(principal, ck, limit=3, include_test=True)  # first time: "0"
    assert seqs(page) == [0, 1, 2]
    await service.poll(principal, ck, order="desc", limit=10)  # browsing does not move it
    page = await service.poll(principal, ck, limit=3, include_test=True)
    assert seqs(page) == [3, 4, 5]
    assert seqs(await service.poll(other, ck, limit=1, include_test=True)) == [0]
    info = await service.info(principal, ck)
    assert info.stored_cursor == cursors[5] and info.suggested_cursors.resume == cursors[5]
    page = await service.poll(principal, ck, cursor="$")
    assert (await service.info(principal, ck)).stored_cursor == cursors[-1]


async def test_parameter_errors(setup: Any) -> None:
    service, ck, principal, _ = setup
    for bad in ("abc", "1-2-3", "-5", "$$", "\uff11\uff12\uff13"):
        error = await expect(400, "INVALID_CURSOR", service.poll(principal, ck, cursor=bad))
        assert repr(bad) in error.detail
    for limit in (0, 1001):
        await expect(400, "INVALID_PARAMETER", service.poll(principal, ck, limit=limit))
    await expect(400, "INVALID_PARAMETER", service.poll(principal, ck, order="newest"))
    assert len((await service.poll(principal, ck, cursor="0", limit=1000)).messages) == 16
    assert len((await service.poll(principal, ck, cursor="0", limit=1)).messages) == 1


async def test_access_errors(setup: Any) -> None:
    service, ck, principal, _ = setup
    await expect(404, "STREAM_NOT_FOUND", service.poll(principal, str(uuid.uuid4())))
    other = await service.create_stream(CreateStreamRequest(name="other"))
    limited_key = await service.create_api_key(
        CreateApiKeyRequest(name="limited", consumer_keys=[other.consumer_key])
    )
    limited = await service.authenticate(f"{limited_key.api_key_id}:{limited_key.api_key_secret}")
    await expect(403, "FORBIDDEN", service.poll(limited, ck))
    await expect(403, "FORBIDDEN", service.info(limited, ck))
    await service.set_active(ck, False)
    await expect(401, "STREAM_INACTIVE", service.poll(principal, ck))
    await expect(401, "STREAM_INACTIVE", service.open_subscription(principal, ck))
    assert (await service.info(principal, ck)).is_active is False
    await service.set_active(ck, True)
    await service.set_rebuilding(ck, True)
    error = await expect(503, "STREAM_REBUILDING", service.poll(principal, ck))
    assert error.retry_after == 10 and error.body()["retry_after"] == 10
    await service.set_rebuilding(ck, False)
    assert (await service.poll(principal, ck, cursor="0")).messages
    await expect(404, "STREAM_NOT_FOUND", service.set_active(str(uuid.uuid4()), False))


async def test_416_when_data_after_the_cursor_was_trimmed() -> None:
    service = make_service()
    record = await service.create_stream(CreateStreamRequest(name="s", max_length=5))
    key = await service.create_api_key(CreateApiKeyRequest(name="k"))
    principal = await service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
    ck = record.consumer_key
    cursors = await service.publish_many(ck, [message(i) for i in range(20)])
    assert seqs(await service.poll(principal, ck, cursor="1-0")) == list(range(20))  # no trim yet
    await service.rebuild(ck)  # exact trim to max_length
    error = await expect(416, "CURSOR_BEFORE_START", service.poll(principal, ck, cursor=cursors[3]))
    assert error.body()["stream_first_id"] == cursors[15]
    await expect(416, "CURSOR_BEFORE_START", service.poll(principal, ck, cursor="1-0"))
    await expect(
        416, "CURSOR_BEFORE_START", service.open_subscription(principal, ck, cursor=cursors[3])
    )
    assert seqs(await service.poll(principal, ck, cursor="0")) == list(range(15, 20))
    assert seqs(await service.poll(principal, ck, cursor=cursors[15])) == list(range(16, 20))
    info = await service.info(principal, ck)
    assert (info.first_cursor, info.last_cursor, info.message_count) == (
        cursors[15],
        cursors[19],
        5,
    )


async def test_410_when_the_cursor_is_older_than_max_age() -> None:
    clock = ManualClock(datetime.now(UTC))
    service = make_service(clock, max_age_seconds=60)
    record = await service.create_stream(CreateStreamRequest(name="s"))
    key = await service.create_api_key(CreateApiKeyRequest(name="k"))
    principal = await service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
    ck = record.consumer_key
    cursors = await service.publish_many(ck, [message(i) for i in range(5)])
    clock.advance(120)  # every entry is now older than max_age: the next publish trims them
    assert seqs(await service.poll(principal, ck, cursor=cursors[1])) == [2, 3, 4]  # not yet
    await service.publish(ck, message(5))
    error = await expect(410, "CURSOR_EXPIRED", service.poll(principal, ck, cursor=cursors[1]))
    assert "60 s" in error.detail
    info = await service.info(principal, ck)
    assert info.message_count == 0 and info.first_cursor is None
    assert seqs(await service.poll(principal, ck, cursor="0")) == []
    page = await service.poll(principal, ck, cursor="$")
    assert page.next_cursor == info.last_cursor


async def test_publish_by_name_strips_server_fields() -> None:
    service = make_service()
    record = await service.create_stream(CreateStreamRequest(name="j", data_type="journal_entry"))
    key = await service.create_api_key(CreateApiKeyRequest(name="k"))
    principal = await service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
    cursor = await service.publish("j", {"id": "e1", "cursor": "bogus", "message_id": "x"})
    body = decoded(await service.poll(principal, record.consumer_key, cursor="0"))
    assert body["messages"] == [{"message_id": cursor, "cursor": cursor, "id": "e1"}]
    await expect(400, "INVALID_PARAMETER", service.publish("j", {"cursor": "only"}))
    await expect(404, "STREAM_NOT_FOUND", service.publish("nope", {"a": 1}))


async def test_empty_stream_cursors() -> None:
    service = make_service()
    record = await service.create_stream(CreateStreamRequest(name="s"))
    key = await service.create_api_key(CreateApiKeyRequest(name="k"))
    principal = await service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
    ck = record.consumer_key
    assert decoded(await service.poll(principal, ck)) == {
        "messages": [],
        "next_cursor": "0",
        "has_more": False,
    }
    assert (await service.poll(principal, ck, cursor="$")).next_cursor == "0"
    assert (await service.poll(principal, ck, order="desc")).next_cursor is None
    info = await service.info(principal, ck)
    assert (info.first_cursor, info.last_cursor, info.message_count) == (None, None, 0)


async def test_bootstrap_demo_is_deterministic_and_idempotent() -> None:
    server = fakeredis.FakeServer()
    first = await make_service(server=server, seed=9).bootstrap_demo()
    again = await make_service(server=server, seed=9).bootstrap_demo()
    elsewhere = await make_service(seed=9).bootstrap_demo()
    other_seed = await make_service(seed=10).bootstrap_demo()
    assert [s.data_type for s in first.streams] == ["journal_entry", "identifier"]
    assert first.streams == again.streams == elsewhere.streams != other_seed.streams
    assert first.api_key_id == again.api_key_id == elsewhere.api_key_id != other_seed.api_key_id
    service = make_service(server=server, seed=9)
    await expect(
        401, "INVALID_API_KEY", service.authenticate(f"{first.api_key_id}:{first.api_key_secret}")
    )
    principal = await service.authenticate(f"{again.api_key_id}:{again.api_key_secret}")
    assert principal.consumer_keys == {s.consumer_key for s in first.streams}
    configured = await make_service(api_key_id="mine", api_key_secret="s3cret").bootstrap_demo()
    assert (configured.api_key_id, configured.api_key_secret) == ("mine", "s3cret")


async def test_admin_key_check() -> None:
    await expect(403, "ADMIN_DISABLED", _check(make_service(), "x"))
    service = make_service(admin_key="adm")
    await expect(401, "INVALID_ADMIN_KEY", _check(service, "nope"))
    await expect(401, "INVALID_ADMIN_KEY", _check(service, None))
    service.check_admin("adm")


async def _check(service: ExportService, key: str | None) -> None:
    service.check_admin(key)

"""JobsClient against the real server: requests, handles, errors, cancel, reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backends.common.clock import ManualClock
from backends.jobs.api import JobsBackend
from backends.jobs.client import JobsClient, JobsError, Progress
from backends.settings import Settings
from tests.jobs_support import make_settings, running_jobs, token


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[JobsBackend, Settings, ManualClock]]:
    clock = ManualClock()
    settings = make_settings(tmp_path)
    async with running_jobs(settings, clock) as backend:
        yield backend, settings, clock


async def test_request_sync_and_queued_with_progress(served) -> None:
    backend, settings, clock = served
    seen: list[Progress] = []
    async with JobsClient(backend.url, token(settings, clock)) as client:
        health = await client.request("health", {})
        data = await client.request("wait", {"steps": 4}, on_progress=seen.append)
    assert health["status"] == "healthy"
    assert data == {"steps": 4, "tenant": "t1"}
    assert [p.percentage for p in seen] == [0, 25, 50, 75, 100]
    assert seen[1].current_step == "s1" and seen[1].records_total == 4
    assert seen[-1].message == "done"


async def test_submit_several_and_watch_handles(served) -> None:
    backend, settings, clock = served
    async with JobsClient(backend.url, token(settings, clock)) as client:
        handles = [await client.submit("wait", {"steps": 3}) for _ in range(4)]
        assert all(h.status in ("queued", "running") for h in handles)
        assert handles[0].estimated_duration == 1.0
        results = await asyncio.gather(*(h.result() for h in handles))
    assert [r.result.success for r in results] == [True] * 4
    assert {h.status for h in handles} == {"succeeded"}
    assert handles[0].last_progress is not None and handles[0].last_progress.percentage == 100


async def test_errors_are_typed(served) -> None:
    backend, settings, clock = served
    async with JobsClient(backend.url, token(settings, clock)) as client:
        with pytest.raises(JobsError) as caught:
            await client.request("generate_report", {"start_date": "yesterday"})
        assert caught.value.code == "VALIDATION_ERROR"
        with pytest.raises(JobsError) as caught:
            await client.request("nope", {})
        assert caught.value.code == "INVALID_ACTION"
        with pytest.raises(JobsError) as caught:
            await client.request("boom", {})
        assert caught.value.code == "INTERNAL_ERROR" and caught.value.request_id
        with pytest.raises(JobsError) as caught:
            await client.subscribe("never-submitted")
        assert caught.value.code == "NOT_FOUND"


async def test_bad_token_fails_with_unauthorized(served) -> None:
    backend = served[0]
    states: list[str] = []
    client = JobsClient(backend.url, "bad.token.here", on_state=states.append)
    async with client:
        with pytest.raises(JobsError) as caught:
            await client.request("health", {})
    assert caught.value.code == "UNAUTHORIZED"
    assert client.close_reason == "UNAUTHORIZED: malformed token"
    assert states[:2] == ["connecting", "connected"] and states[-1] == "closed"


async def test_cancel(served) -> None:
    backend, settings, clock = served
    async with JobsClient(backend.url, token(settings, clock)) as client:
        handle = await client.submit("wait", {"gate": True})
        await client.cancel(handle.request_id)
        with pytest.raises(JobsError) as caught:
            await handle.result()
    assert caught.value.code == "CANCELLED"
    assert handle.status == "cancelled"


async def test_subscribe_from_another_client(served) -> None:
    backend, settings, clock = served
    async with JobsClient(backend.url, token(settings, clock)) as first:
        handle = await first.submit("wait", {"gate": True, "steps": 2})
        async with JobsClient(backend.url, token(settings, clock, sub="u2")) as second:
            watched = await second.subscribe(handle.request_id)
            assert watched.action == "wait" and watched.status == "running"
            backend.server.resources.extra["gate"].set()
            mine, theirs = await asyncio.gather(handle.result(), watched.result())
    assert mine.result.data == theirs.result.data == {"steps": 2, "tenant": "t1"}


async def test_reconnects_and_resubscribes(served) -> None:
    backend, settings, clock = served
    states: list[str] = []
    client = JobsClient(
        backend.url, token(settings, clock), backoff_initial=0.05, on_state=states.append
    )
    async with client:
        handle = await client.submit("wait", {"gate": True, "steps": 3})
        for connection in list(backend.server._server.connections):  # type: ignore[union-attr]
            await connection.close(1012, "service restart")
        while client.reconnects == 0:
            await asyncio.sleep(0.01)
        backend.server.resources.extra["gate"].set()
        result = await asyncio.wait_for(handle.result(), 10)
        assert await client.request("health", {}) is not None
    assert result.result.data == {"steps": 3, "tenant": "t1"}
    assert "reconnecting" in states and states[-1] == "closed"
    assert states.count("connected") >= 2


async def test_no_reconnect_fails_waiters(served) -> None:
    backend, settings, clock = served
    async with JobsClient(backend.url, token(settings, clock), reconnect=False) as client:
        handle = await client.submit("wait", {"gate": True})
        for connection in list(backend.server._server.connections):  # type: ignore[union-attr]
            await connection.close(1001, "going away")
        with pytest.raises(JobsError) as caught:
            await asyncio.wait_for(handle.result(), 5)
    assert caught.value.code == "CONNECTION_CLOSED"


async def test_unreachable_server() -> None:
    client = JobsClient("ws://127.0.0.1:9/production", "t", reconnect=False, open_timeout=2)
    with pytest.raises(JobsError) as caught:
        await client.connect()
    assert caught.value.code == "CONNECTION_CLOSED"
    assert client.state == "closed"

"""Scale-out: two realtime server processes on one real Redis behave as one service.

Each process is `start_realtime` + uvicorn on its own port, sharing `[redis] url`.
A session created on one is good on the other; a stream started on one reaches the
subscribed clients of both, identically; the connection limit is counted across
both; a due token is refreshed once, whichever processes notice it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import socketio

from backends.settings import RealtimeSettings, RedisSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
SERVER = """
import asyncio, signal, sys
from backends.common.clock import SystemClock
from backends.common.server import start_server
from backends.realtime.api import start_realtime
from backends.settings import Settings

async def main() -> None:
    backend = await start_realtime(Settings.model_validate_json(sys.argv[1]), SystemClock())
    server = await start_server(backend.app, "127.0.0.1", 0)
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await backend.aclose()
    await server.stop()

asyncio.run(main())
"""


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[tuple[list[str], str]]:
    """Two server processes; their base URLs and the Socket.IO pub/sub channel."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis=RedisSettings(url=redis_url),
        realtime=RealtimeSettings(
            page_delay_ms=5, maintenance_interval_seconds=0.2, redis_prefix=prefix
        ),
    )
    processes = []
    try:
        for _ in range(2):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SERVER,
                settings.model_dump_json(),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
            )
            processes.append(process)
        urls = []
        for process in processes:
            assert process.stdout is not None
            async with asyncio.timeout(30):
                port = int(await process.stdout.readline())
            urls.append(f"http://127.0.0.1:{port}")
        yield urls, f"{prefix}:socketio"
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        client = aioredis.from_url(redis_url)
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


class Client:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.refusal: Any = None
        self.sio.on("stream_event", self._event)
        self.sio.on("connect_error", self._refused)

    async def _event(self, data: dict[str, Any]) -> None:
        self.events.append(data)

    async def _refused(self, data: Any = None) -> None:
        self.refusal = data

    async def connect(self, url: str, session_id: str) -> None:
        await self.sio.connect(f"{url}?session_id={session_id}", transports=["websocket"])

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == kind]


async def until(predicate: Any, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_two_processes_deliver_the_same_events(
    cluster: tuple[list[str], str], redis_url: str
) -> None:
    (a, b), channel = cluster
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(f"{a}/api/sessions", json={"expires_in": 10})
        session_id = created.json()["data"]["session_id"]
        assert (await http.get(f"{b}/api/sessions/{session_id}")).status_code == 200

        clients = [Client() for _ in range(4)]
        for client, url in zip(clients, (a, a, b, b), strict=True):
            await client.connect(url, session_id)
            await client.sio.call("subscribe_data", {"data_types": ["gmail_messages"]})
        redis = aioredis.from_url(redis_url)
        try:  # both processes listen on the channel before anything is published
            async with asyncio.timeout(10):
                while dict(await redis.pubsub_numsub(channel)).get(channel.encode(), 0) < 2:
                    await asyncio.sleep(0.02)
        finally:
            await redis.aclose()

        fifth, sixth = Client(), Client()
        await fifth.connect(b, session_id)  # 5 connections per session, across processes
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sixth.connect(a, session_id)
        assert sixth.refusal["data"]["code"] == "RATE_LIMIT_EXCEEDED"

        started = await http.post(
            f"{a}/api/stream/start",
            json={
                "session_id": session_id,
                "stream_type": "gmail_messages",
                "batch_size": 10,
                "max_results": 40,
                "rate_limit_per_minute": 100_000,
            },
        )
        assert started.status_code == 200, started.text
        await until(lambda: all(len(c.of("data_update")) == 40 for c in clients))
        reference = clients[0].of("data_update")
        for client in clients[1:]:
            assert client.of("data_update") == reference
        assert len({e["data"]["payload"]["id"] for e in reference}) == 40
        assert fifth.of("data_update") == []  # connected, never subscribed
        stream_id = started.json()["data"]["stream_id"]
        assert (await http.get(f"{b}/api/stream/{stream_id}/status")).status_code == 404

        # Due at 7.5 s of 10: both processes have connections of the session.
        await until(lambda: all(c.of("token_refresh") for c in [*clients, fifth]), within=15)
        await asyncio.sleep(1.0)
        refreshes = clients[2].of("token_refresh")
        assert len(refreshes) == 1
        assert refreshes[0]["data"]["expires_in"] == 10
        for client in [*clients, fifth]:
            assert client.of("token_refresh") == refreshes
            with contextlib.suppress(Exception):
                await client.sio.disconnect()

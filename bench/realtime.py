"""Realtime fan-out: `stream_event`s delivered to N Socket.IO clients, with latency.

The server runs in a process of its own (uvicorn on loopback, as `streamops serve`
would run it); the N python-socketio clients share another (this one, on uvloop
with orjson so that the harness costs as little as it can), all connected over
WebSocket to one session and subscribed to `gmail_messages`. Latency is receive
time minus the event's `timestamp` (set when the server emits it; same machine,
same clock). Each run sends `--events` data updates and ends when every client
has them all, or when nothing arrived for `--seconds`. The table gives delivered
events/s summed over the clients, latency percentiles, events lost, and the CPU
seconds the server and the clients' process used: on a shared machine, read the
rates next to the load average printed before and after.

Runs, in one invocation:
- "realtime service": our server; a stream fetching pages of `--batch` items,
  each after `--page-ms` (the simulated provider latency, so the offered load is
  below batch / page-ms); then the same flat out (`page_delay_ms=0`).
- "bare python-socketio": the baseline, the library alone: an `AsyncServer` on
  the same ASGI stack with only a connect handler joining one room and a task
  emitting the same payloads (pre-built, fresh timestamp each) to that room at
  the same pace, then flat out. Default JSON, as the library ships.

    .venv/bin/python bench/realtime.py [--clients 20] [--events 6000] [--batch 20]
        [--page-ms 15] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import socketio
import uvloop

from backends.realtime.providers import KINDS, Dataset
from backends.settings import RealtimeSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
SESSION = "your-session-id"

OURS = """
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

BARE = """
import asyncio, json, signal, sys, time
import socketio
from backends.common.server import start_server

async def main() -> None:
    payloads = json.loads(sys.stdin.readline())
    sio = socketio.AsyncServer(async_mode="asgi")

    @sio.event
    async def connect(sid, environ, auth=None):
        await sio.enter_room(sid, "all")

    async def broadcast(count, batch, page):
        sent = 0
        while sent < count:
            for _ in range(min(batch, count - sent)):
                event = dict(payloads[sent % len(payloads)], timestamp=time.time())
                await sio.emit("stream_event", event, room="all")
                sent += 1
            await asyncio.sleep(page)

    @sio.event
    async def go(sid, data):
        asyncio.create_task(broadcast(data["count"], data["batch"], data["page"]))

    server = await start_server(socketio.ASGIApp(sio), "127.0.0.1", 0)
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()

asyncio.run(main())
"""


@dataclass
class Result:
    label: str
    expected: int
    delivered: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    clients_cpu: float = 0.0

    def line(self) -> str:
        rate = self.delivered / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies) or [0.0]
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        lost = self.expected - self.delivered
        return (
            f"{self.label:38s} {self.delivered:>9,d} {self.seconds:>7.2f} {rate:>10,.0f} "
            f"{p50:>8.1f} {p99:>8.1f} {lat[-1] * 1000:>8.1f} {lost:>6,d} "
            f"{self.server_cpu:>6.2f} {self.clients_cpu:>6.2f}"
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def uptime() -> str:
    load = os.getloadavg()
    return f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} ({os.cpu_count()} cores)"


async def spawn(script: str, argument: str, stdin: bytes | None = None) -> tuple[Any, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        argument,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    if stdin is not None:
        process.stdin.write(stdin)
        await process.stdin.drain()
    async with asyncio.timeout(30):
        port = int(await process.stdout.readline())
    return process, port


async def stop(process: Any) -> None:
    process.terminate()
    try:
        async with asyncio.timeout(15):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


class ClientJson:
    """orjson for the clients' packets: the harness should cost as little as it can."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    loads = staticmethod(orjson.loads)


class Clients:
    """N python-socketio clients counting `stream_event`s and their latency."""

    def __init__(self, count: int) -> None:
        self.sios = [
            socketio.AsyncClient(reconnection=False, json=ClientJson) for _ in range(count)
        ]
        self.received = 0
        self.latencies: list[float] = []
        self.first = self.last = 0.0
        for sio in self.sios:
            sio.on("stream_event", self._event)

    async def _event(self, data: dict[str, Any]) -> None:
        now = time.time()
        if data.get("event_type", "data_update") != "data_update":
            return
        if not self.received:
            self.first = now
        self.last = now
        self.received += 1
        self.latencies.append(now - data["timestamp"])

    async def connect(self, url: str, subscribe: bool) -> None:
        for sio in self.sios:
            await sio.connect(url, transports=["websocket"])
            if subscribe:
                await sio.call("subscribe_data", {"data_types": ["gmail_messages"]})

    async def wait(self, expected: int, idle_seconds: float) -> None:
        """Until all `expected` arrived, or nothing arrived for `idle_seconds`."""
        seen, quiet_since = -1, time.monotonic()
        while self.received < expected:
            if self.received != seen:
                seen, quiet_since = self.received, time.monotonic()
            elif time.monotonic() - quiet_since > idle_seconds:
                return
            await asyncio.sleep(0.05)

    def result(self, label: str, expected: int, pid: int, since: tuple[float, float]) -> Result:
        return Result(
            label,
            expected,
            self.received,
            self.last - self.first,
            self.latencies,
            cpu_seconds(pid) - since[0],
            time.process_time() - since[1],
        )

    async def close(self) -> None:
        for sio in self.sios:
            await sio.disconnect()


def server_settings(page_ms: int, events: int) -> str:
    realtime = RealtimeSettings(
        page_delay_ms=page_ms,
        mailbox_size=events,
        connections_per_session=1000,
        subscriptions_per_minute=1000,
    )
    return Settings(realtime=realtime).model_dump_json()


async def run_ours(args: argparse.Namespace, page_ms: int, label: str) -> Result:
    process, port = await spawn(OURS, server_settings(page_ms, args.events))
    url = f"http://127.0.0.1:{port}"
    clients = Clients(args.clients)
    try:
        await clients.connect(f"{url}?session_id={SESSION}", subscribe=True)
        since = cpu_seconds(process.pid), time.process_time()
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.post(
                "/api/stream/start",
                json={
                    "session_id": SESSION,
                    "stream_type": "gmail_messages",
                    "batch_size": args.batch,
                    "max_results": args.events,
                    "filters": {"include_spam_trash": True},
                    "rate_limit_per_minute": 100_000_000,
                },
            )
            response.raise_for_status()
        await clients.wait(args.events * args.clients, args.seconds)
        return clients.result(label, args.events * args.clients, process.pid, since)
    finally:
        await clients.close()
        await stop(process)


def payloads(count: int) -> list[dict[str, Any]]:
    """Events shaped and sized like ours: gmail messages from the same generator."""
    now = datetime.now(UTC)
    kind = KINDS["gmail_messages"]
    dataset = Dataset(
        kind,
        "google",
        seed=42,
        anchor=now,
        size=count,
        filters={"include_spam_trash": True},
        now=now,
    )
    return [
        {
            "event_type": "data_update",
            "session_id": SESSION,
            "provider": "google",
            "timestamp": 0.0,
            "data": {"data_type": kind.data_type, "payload": item, "stream_id": "stream-bench"},
        }
        for item in dataset.history()
    ]


async def run_bare(args: argparse.Namespace, page_ms: int, label: str) -> Result:
    stock = json.dumps(payloads(min(args.events, 1000))).encode() + b"\n"
    process, port = await spawn(BARE, "-", stdin=stock)
    url = f"http://127.0.0.1:{port}"
    clients = Clients(args.clients)
    try:
        await clients.connect(url, subscribe=False)
        since = cpu_seconds(process.pid), time.process_time()
        await clients.sios[0].emit(
            "go", {"count": args.events, "batch": args.batch, "page": page_ms / 1000}
        )
        await clients.wait(args.events * args.clients, args.seconds)
        return clients.result(label, args.events * args.clients, process.pid, since)
    finally:
        await clients.close()
        await stop(process)


async def main(args: argparse.Namespace) -> None:
    paced = f"{args.batch} per {args.page_ms} ms"
    print(f"{args.clients} clients, {args.events:,d} events each run; {uptime()}")
    print(
        f"{'run':38s} {'events':>9s} {'seconds':>7s} {'events/s':>10s} {'p50 ms':>8s} "
        f"{'p99 ms':>8s} {'max ms':>8s} {'lost':>6s} {'srv s':>6s} {'cli s':>6s}"
    )
    runs = [
        (run_ours, args.page_ms, f"realtime service, {paced}"),
        (run_bare, args.page_ms, f"bare python-socketio, {paced}"),
        (run_ours, 0, "realtime service, flat out"),
        (run_bare, 0, "bare python-socketio, flat out"),
    ]
    for run, page_ms, label in runs:
        print((await run(args, page_ms, label)).line(), flush=True)
    print(f"after: {uptime()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--events", type=int, default=6000, help="data updates per run")
    parser.add_argument("--batch", type=int, default=20, help="items per page")
    parser.add_argument("--page-ms", type=int, default=15, help="pause between pages")
    parser.add_argument("--seconds", type=float, default=30.0, help="give up after this idle")
    uvloop.run(main(parser.parse_args()))  # for the clients' process; servers use asyncio

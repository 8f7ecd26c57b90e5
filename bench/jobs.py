"""Jobs server under load: N connections x M concurrent short jobs, with a bare echo baseline.

The server runs in a process of its own (the jobs server with the spec's limits and
one extra bench action, `tick`: `--steps` progress updates `--step-ms` apart, then a
result); the clients share this process, one `JobsClient` per connection, each
keeping `--concurrent` jobs in flight for `--seconds`. Progress latency is receive
time minus the server's send time carried in the progress message (same machine,
same clock). Reported: jobs/s completed, progress messages/s delivered, latency
p50/p99, errors (RATE_LIMITED and the like) and the server's CPU seconds.

Baseline, same run: a bare `websockets` echo server (its own process too), the same
number of connections each keeping `--concurrent` messages of the same size in
flight: round trips/s and round-trip p50/p99. The ratios compare delivered progress
messages/s with echoed messages/s and the latencies.

    .venv/bin/python bench/jobs.py [--connections 100] [--concurrent 10] [--steps 5]
        [--step-ms 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from backends.common.clock import SystemClock  # noqa: E402
from backends.jobs.client import JobsClient, JobsError, Progress, mint_token  # noqa: E402
from backends.settings import Settings  # noqa: E402


class TickPayload(BaseModel):
    steps: int = 5
    step_ms: float = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- server processes ---------------------------------------------------------------


async def serve_jobs(port: int, secret: str) -> None:
    from backends.jobs.api import start_jobs
    from backends.jobs.handlers import JobContext, builtin_registry

    registry = builtin_registry().copy()

    @registry.handler("tick", payload=TickPayload, estimated_duration=0.1)
    async def tick(ctx: JobContext, payload: TickPayload) -> dict[str, int]:
        for step in range(payload.steps):
            await ctx.progress(100 * step / payload.steps, repr(time.time()), step=f"s{step}")
            await asyncio.sleep(payload.step_ms / 1000)
        await ctx.progress(100, repr(time.time()), step="done")
        return {"steps": payload.steps}

    settings = Settings()
    settings.jobs = settings.jobs.model_copy(
        update={"secret": secret, "port": port, "progress_interval_ms": 0}
    )
    backend = await start_jobs(settings, SystemClock(), registry=registry)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await backend.aclose()


async def serve_echo(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", port):
        print("ready", flush=True)
        await asyncio.Event().wait()


def start_server(kind: str, port: int, secret: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--secret", secret],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise SystemExit(f"{kind} server did not start: {line!r}")
    return process


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- load ----------------------------------------------------------------------------


@dataclass
class Tally:
    jobs: int = 0
    progress: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def on_progress(self, update: Progress) -> None:
        self.progress += 1
        self.latencies.append(time.time() - float(update.message))


async def jobs_connection(
    url: str, token: str, args: argparse.Namespace, tally: Tally, deadline: float
) -> None:
    payload = {"steps": args.steps, "step_ms": args.step_ms}
    async with JobsClient(url, token, reconnect=False) as client:

        async def lane() -> None:
            while time.monotonic() < deadline:
                try:
                    await client.request("tick", payload, on_progress=tally.on_progress)
                    tally.jobs += 1
                except JobsError as exc:
                    tally.errors[exc.code] = tally.errors.get(exc.code, 0) + 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(lane() for _ in range(args.concurrent)))


async def echo_connection(
    url: str, args: argparse.Namespace, tally: Tally, deadline: float
) -> None:
    filler = "x" * 180  # about the size of a progress message
    loop = asyncio.get_running_loop()
    async with connect(url) as ws:
        pending: dict[str, tuple[float, asyncio.Future[None]]] = {}

        async def reader() -> None:
            async for raw in ws:
                sent, waiter = pending.pop(orjson.loads(raw)["id"])
                tally.latencies.append(time.perf_counter() - sent)
                tally.progress += 1
                waiter.set_result(None)

        async def lane(lane_id: int) -> None:
            count = 0
            while time.monotonic() < deadline:
                ident = f"{lane_id}-{count}"
                count += 1
                waiter = loop.create_future()
                pending[ident] = (time.perf_counter(), waiter)
                await ws.send(orjson.dumps({"id": ident, "pad": filler}).decode())
                await waiter

        read = asyncio.create_task(reader())
        await asyncio.gather(*(lane(i) for i in range(args.concurrent)))
        read.cancel()


async def run_load(
    kind: str, url: str, token: str, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    tally = Tally()
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    deadline = started + args.seconds
    if kind == "jobs":
        tasks = [
            jobs_connection(url, token, args, tally, deadline) for _ in range(args.connections)
        ]
    else:
        tasks = [echo_connection(url, args, tally, deadline) for _ in range(args.connections)]
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    latencies = sorted(tally.latencies)

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000

    return {
        "jobs_per_s": tally.jobs / elapsed,
        "messages_per_s": tally.progress / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": tally.errors,
        "server_cpu_s": cpu_seconds(pid) - cpu_before,
        "elapsed_s": elapsed,
    }


async def bench(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    secret = secrets.token_urlsafe(48)
    print(
        f"load average before: {os.getloadavg()[0]:.2f}  "
        f"({args.connections} connections x {args.concurrent} in flight, {args.seconds:g} s)"
    )
    results = {}
    for kind in ("echo", "jobs"):
        port = free_port()
        server = start_server(kind, port, secret)
        try:
            settings = Settings().jobs.model_copy(update={"secret": secret})
            token = mint_token(settings, "bench", "bench")
            url = f"ws://127.0.0.1:{port}" + ("/production" if kind == "jobs" else "/")
            results[kind] = await run_load(kind, url, token, args, server.pid)
        finally:
            server.terminate()
            server.wait(10)
    echo, jobs = results["echo"], results["jobs"]
    print(f"{'run':<28}{'jobs/s':>10}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'srv cpu s':>11}")
    print(
        f"{'bare websockets echo':<28}{'-':>10}{echo['messages_per_s']:>10.0f}"
        f"{echo['p50_ms']:>9.1f}{echo['p99_ms']:>9.1f}{echo['server_cpu_s']:>11.1f}"
    )
    print(
        f"{'jobs server (progress)':<28}{jobs['jobs_per_s']:>10.0f}"
        f"{jobs['messages_per_s']:>10.0f}{jobs['p50_ms']:>9.1f}{jobs['p99_ms']:>9.1f}"
        f"{jobs['server_cpu_s']:>11.1f}"
    )
    print(
        f"progress msgs/s ÷ echo msgs/s: {jobs['messages_per_s'] / echo['messages_per_s']:.2f}"
        f"   p99 progress latency ÷ echo p99 round trip: "
        f"{jobs['p99_ms'] / echo['p99_ms']:.2f}"
    )
    print(
        f"errors: {jobs['errors'] or 'none'}; jobs take ≥ {args.steps * args.step_ms:g} ms "
        f"by design; load average after: {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve", choices=("jobs", "echo"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "jobs":
        asyncio.run(serve_jobs(args.port, args.secret))
    elif args.serve == "echo":
        asyncio.run(serve_echo(args.port))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()

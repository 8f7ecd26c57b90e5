"""The spec's own client samples against our server, each in a process of its own.

- JavaScript (`socket.io-client` 4): the connect and subscribe samples, verbatim but
  for the port. Needs Node.js and the package, which `make services`
  (scripts/provision_services.sh) installs into .services/realtime-js (git-ignored)
  from scripts/js/package.json; skipped without them, failed instead when
  STREAMOPS_REQUIRE_SERVICES=1, like the Kafka and Redis tests.
- Python (`python-socketio`): the sample cannot run verbatim with any python-socketio
  release, whose `AsyncClient.connect()` has no `query=` argument (TypeError, proven
  below); with the query moved into the URL — the one change — it runs unchanged.
Both use the session id the samples use, `your-session-id`: our demo session.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import socketio

from backends.common.clock import SystemClock
from backends.common.server import start_server
from backends.realtime.api import RealtimeBackend, start_realtime
from backends.realtime.models import StreamStartRequest
from backends.settings import RealtimeSettings, Settings
from tests.conftest import NODE_MODULES, require_node_packages

JS_SAMPLE = """
const { io } = require('socket.io-client');
// Connect with session ID
const socket = io('http://localhost:5000', {
    query: {
        session_id: 'your-session-id',
        agent_id: 'optional-agent-id'
    }
});

socket.on('connect', () => {
    console.log('Connected to streaming');
});

socket.on('stream_event', (data) => {
    console.log('Stream event:', data);
});
// Subscribe to specific data types
socket.emit('subscribe_data', {
    session_id: 'your-session-id',
    data_types: ['gmail_messages', 'calendar_events']
});

socket.on('subscription_confirmed', (data) => {
    console.log('Subscribed to:', data.data_types);
});
"""

PY_SAMPLE = """
import asyncio
import socketio

sio = socketio.AsyncClient()

@sio.event
async def stream_event(data):
    print(f"Received: {data['event_type']}")
    # Process streaming data
    if data['event_type'] == 'data_update':
        process_data_update(data['data'])

async def main():
    await sio.connect('http://localhost:5000', 
                     query={'session_id': 'your-session-id'})
    
    # Subscribe to data types
    await sio.emit('subscribe_data', {
        'session_id': 'your-session-id',
        'data_types': ['gmail_messages']
    })
    
    # Keep connection alive
    await sio.wait()

asyncio.run(main())
"""  # noqa: W291, W293 - verbatim, trailing spaces included


@pytest.fixture
async def backend() -> AsyncIterator[tuple[RealtimeBackend, str]]:
    realtime = RealtimeSettings(page_delay_ms=0, arrival_interval_seconds=0.02)
    built = await start_realtime(Settings(realtime=realtime), SystemClock())
    running = await start_server(built.app, "127.0.0.1", 0)
    try:
        yield built, f"http://localhost:{running.port}"
    finally:
        await built.aclose()
        await running.stop()


async def run_until(
    argv: list[str], wanted: list[str], env: dict[str, str] | None = None, within: float = 20.0
) -> str:
    """Run a sample until its output holds every `wanted` line start; then stop it."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(within):
            while not all(any(line.startswith(w) for line in output) for w in wanted):
                line = await process.stdout.readline()
                if not line:
                    break
                output.append(line.decode().rstrip())
    except TimeoutError:
        pass
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
    text = "\n".join(output)
    for want in wanted:
        assert any(line.startswith(want) for line in output), f"no {want!r} in:\n{text}"
    return text


async def stream_for_the_samples(backend: RealtimeBackend) -> None:
    """Start the demo session's streams once a sample's connection has subscribed."""
    service = backend.service
    async with asyncio.timeout(20):
        while not service.connected_sids():
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # the sample subscribes right after connecting
    for stream_type in ("gmail_messages", "calendar_events"):
        await service.start_stream(
            StreamStartRequest(
                session_id="your-session-id",
                stream_type=stream_type,
                max_results=3,
                real_time=True,
                rate_limit_per_minute=100_000,
            )
        )


async def test_javascript_sample_verbatim(
    backend: tuple[RealtimeBackend, str], tmp_path: Path
) -> None:
    require_node_packages("socket.io-client")
    built, url = backend
    script = tmp_path / "sample.js"
    script.write_text(JS_SAMPLE.replace("http://localhost:5000", url))
    streams = asyncio.create_task(stream_for_the_samples(built))
    output = await run_until(
        ["node", str(script)],
        [
            "Connected to streaming",
            "Subscribed to: [ 'gmail_messages', 'calendar_events' ]",
            "Stream event: {",
            "  event_type: 'data_update'",
        ],
        env={"NODE_PATH": str(NODE_MODULES)},
    )
    await streams
    assert "  session_id: 'your-session-id'," in output.splitlines()


async def test_python_sample_needs_only_its_query_in_the_url(
    backend: tuple[RealtimeBackend, str], tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="query"):
        await socketio.AsyncClient().connect("http://localhost:5000", query={})
    built, url = backend
    connect = "await sio.connect('http://localhost:5000', \n" + " " * 21
    connect += "query={'session_id': 'your-session-id'})"
    sample = PY_SAMPLE.replace(connect, f"await sio.connect('{url}?session_id=your-session-id')")
    assert sample != PY_SAMPLE
    script = tmp_path / "sample.py"
    script.write_text(sample)
    streams = asyncio.create_task(stream_for_the_samples(built))
    output = await run_until([sys.executable, str(script)], ["Received: data_update"])
    await streams
    # The sample calls process_data_update(), which it never defines; python-socketio
    # logs that NameError and keeps receiving.
    assert output.count("Received: data_update") >= 1

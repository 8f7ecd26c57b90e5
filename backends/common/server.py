"""Running ASGI apps under uvicorn inside an existing event loop.

The runtime hosts several servers on one loop, so we bind the socket ourselves
(port 0 gives an ephemeral port we can report) and drive `Server.serve()` as a task.
Uvicorn installs no signal handlers off the main thread, which is where the host runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class RunningServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_server(app: Any, host: str, port: int) -> RunningServer:
    """Serve `app` on host:port (0 = ephemeral) and return once it accepts connections."""
    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"server on {host}:{port} exited during start-up")
        await asyncio.sleep(0.01)
    return RunningServer(server, task, host, sock.getsockname()[1])

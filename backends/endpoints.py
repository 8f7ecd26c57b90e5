"""Where each backend is reached: what the runtime reports and the console connects to."""

from __future__ import annotations

from pydantic import BaseModel

SERVICES: tuple[str, ...] = ("retail", "export", "realtime", "jobs")


class ExportStream(BaseModel):
    """A stream a consumer can read: what the console lists and the credentials file holds."""

    name: str
    consumer_key: str
    data_type: str


class ExportCredentials(BaseModel):
    api_key_id: str
    api_key_secret: str
    streams: list[ExportStream] = []


class Endpoints(BaseModel):
    mode: str = "embedded"
    retail: str | None = None
    export: str | None = None
    export_credentials: ExportCredentials | None = None
    realtime: str | None = None  # base URL: REST under /api, Socket.IO at /socket.io
    realtime_session_id: str | None = None  # the demo session the console can connect with
    jobs: str | None = None  # WebSocket URL of the jobs server (report files over HTTP there)
    jobs_token: str | None = None  # a ready token for the demo tenant
    jobs_issuer: str | None = None

"""Where each backend is reached: what the runtime reports and the console connects to."""

from __future__ import annotations

from pydantic import BaseModel

SERVICES: tuple[str, ...] = ("retail",)


class Endpoints(BaseModel):
    mode: str = "embedded"
    retail: str | None = None

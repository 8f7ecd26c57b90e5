"""Files the jobs server hands out over HTTP, and payload paths confined to their folders.

Payload paths are confined to their configured folder (see `confined`).
A report (or a pipeline's output) is published under an unguessable token:
`GET {base}/files/{token}/{name}` serves it until its expiry, like the presigned
URL of the spec's example, and answers 404 afterwards (the file is deleted). No
JWT is needed for the download itself, so the url works in a browser or curl.
"""

from __future__ import annotations

import contextlib
import mimetypes
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from backends.common.clock import Clock

FILES_PREFIX = "/files/"


class PathOutsideFolder(ValueError):
    pass


def confined(folder: Path, relative: str) -> Path:
    """`relative` resolved inside `folder`. An absolute path names itself when it lies in
    the folder, else it is read from the folder's root like a chroot (`/data/input.csv`
    → `{folder}/data/input.csv`), so the spec's sample paths work. `..` never escapes."""
    root = folder.resolve()
    candidate = Path(relative)
    if candidate.is_absolute():
        inside = candidate.resolve() == root or root in candidate.resolve().parents
        candidate = candidate if inside else Path(*candidate.parts[1:])
    target = (root / candidate).resolve()
    if target != root and root not in target.parents:
        raise PathOutsideFolder(f"{relative!r} is outside the configured folder")
    return target


@dataclass(frozen=True)
class PublishedFile:
    path: Path
    name: str
    content_type: str
    expires_mono: float
    expires_at: datetime


class FileRegistry:
    def __init__(self, clock: Clock, base_url: str = "") -> None:
        self._clock = clock
        self.base_url = base_url.rstrip("/")
        self._files: dict[str, PublishedFile] = {}

    def publish(self, path: Path, ttl_seconds: float) -> tuple[str, datetime]:
        """Serve `path` for `ttl_seconds`; returns its url and expiry time."""
        token = secrets.token_urlsafe(18)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        expires_at = self._clock.now() + timedelta(seconds=ttl_seconds)
        self._files[token] = PublishedFile(
            path, path.name, kind, self._clock.monotonic() + ttl_seconds, expires_at
        )
        return f"{self.base_url}{FILES_PREFIX}{token}/{path.name}", expires_at

    def lookup(self, url_path: str) -> PublishedFile | None:
        """The live file a request path names (`/files/{token}/{name}`), if any."""
        token, _, name = url_path.removeprefix(FILES_PREFIX).partition("/")
        published = self._files.get(token)
        if published is None or published.name != name:
            return None
        if self._clock.monotonic() >= published.expires_mono:
            self._drop(token)
            return None
        return published

    def purge(self) -> int:
        now = self._clock.monotonic()
        expired = [t for t, f in self._files.items() if now >= f.expires_mono]
        for token in expired:
            self._drop(token)
        return len(expired)

    def _drop(self, token: str) -> None:
        published = self._files.pop(token)
        with contextlib.suppress(OSError):
            published.path.unlink()

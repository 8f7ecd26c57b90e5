"""UI state that outlives a session: cursors per export stream, saved filters, running jobs.

A small JSON file at `$STREAMOPS_STATE_FILE`, else `$XDG_STATE_HOME/streamops/state.json`
(default `~/.local/state/streamops/state.json`) — state, not configuration, so it
never lands in the user's config file. Why it is shaped this way:

- Writes are atomic (a temporary file in the same directory, fsync, `os.replace`):
  a console killed mid-write leaves the old file, never half a file.
- Writes are debounced: a tail moves its cursor thousands of times a second, so
  cursors only mark the state dirty and `flush()` writes at most every
  `min_interval` seconds (forced on disconnect and exit).
- A missing, unreadable or corrupt file is not an error: the console starts with
  empty state and says why in `problem`, since losing a cursor is never worth a crash.
- Unknown keys are kept, so an older console does not erase a newer one's state.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

STATE_FILE_ENV = "STREAMOPS_STATE_FILE"


def default_state_path(environ: Mapping[str, str] = os.environ) -> Path:
    if explicit := environ.get(STATE_FILE_ENV):
        return Path(explicit).expanduser()
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home).expanduser() / "streamops" / "state.json"


class RememberedJob(BaseModel):
    """A job the console submitted and has not seen finish: re-attached (subscribe) at start."""

    model_config = ConfigDict(extra="allow")

    endpoint: str
    action: str
    label: str = ""
    submitted_at: str
    """ISO-8601 UTC, so a restarted console can still show the elapsed time."""


class UiState(BaseModel):
    model_config = ConfigDict(extra="allow")

    cursors: dict[str, str] = {}
    """Last cursor seen, by stream (see `StateStore.cursor`)."""
    filters: dict[str, str] = {}
    """Saved tail filters, by name."""
    jobs: dict[str, RememberedJob] = {}
    """Running jobs, by request id."""


class StateStore:
    def __init__(
        self,
        path: Path,
        *,
        min_interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.min_interval = min_interval
        self._monotonic = monotonic
        self._dirty = False
        self._written_at: float | None = None
        self.problem: str | None = None
        """Why the file was ignored or could not be written; None when all is well."""
        self.state = self._read()

    def _read(self) -> UiState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return UiState()
        except OSError as exc:
            self.problem = f"cannot read {self.path}: {exc.strerror or exc}"
            return UiState()
        try:
            return UiState.model_validate_json(raw)
        except ValidationError:
            self.problem = f"ignored {self.path}: not a valid state file"
            return UiState()

    # -- cursors and filters ----------------------------------------------------

    def cursor(self, stream: str) -> str | None:
        return self.state.cursors.get(stream)

    def set_cursor(self, stream: str, cursor: str) -> None:
        """Cheap enough to call per message: it only marks the state dirty."""
        if self.state.cursors.get(stream) != cursor:
            self.state.cursors[stream] = cursor
            self._dirty = True

    @property
    def filters(self) -> dict[str, str]:
        return dict(self.state.filters)

    def save_filter(self, name: str, source: str) -> bool:
        """Saved at once: a user action is rare and should survive a crash right after."""
        self.state.filters[name] = source
        self._dirty = True
        return self.flush(force=True)

    # -- running jobs -----------------------------------------------------------

    def jobs(self, endpoint: str) -> dict[str, RememberedJob]:
        """The jobs left running on this job server (another server's ids mean nothing here)."""
        return {rid: job for rid, job in self.state.jobs.items() if job.endpoint == endpoint}

    def remember_job(self, request_id: str, job: RememberedJob) -> bool:
        """Saved at once: the point is to survive a console that dies right after submitting."""
        self.state.jobs[request_id] = job
        self._dirty = True
        return self.flush(force=True)

    def forget_job(self, request_id: str) -> bool:
        if self.state.jobs.pop(request_id, None) is None:
            return True
        self._dirty = True
        return self.flush(force=True)

    # -- writing ----------------------------------------------------------------

    def flush(self, *, force: bool = False) -> bool:
        """Write if dirty and due (or forced); False only when the write failed."""
        if not self._dirty:
            return True
        now = self._monotonic()
        due = self._written_at is None or now - self._written_at >= self.min_interval
        if not (force or due):
            return True
        try:
            self._write_atomically(self.state.model_dump_json(indent=2).encode())
        except OSError as exc:
            self.problem = f"cannot write {self.path}: {exc.strerror or exc}"
            return False
        finally:
            self._written_at = now  # a failing disk is retried at the same pace, not per call
        self._dirty = False
        self.problem = None
        return True

    def _write_atomically(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

"""The UI state file: location, round trip, debounced atomic writes, tolerance of bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from console.state import StateStore, default_state_path


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_path_from_env_then_xdg_then_home(tmp_path: Path) -> None:
    explicit = tmp_path / "s.json"
    assert default_state_path({"STREAMOPS_STATE_FILE": str(explicit)}) == explicit
    xdg = default_state_path({"XDG_STATE_HOME": str(tmp_path)})
    assert xdg == tmp_path / "streamops" / "state.json"
    assert default_state_path({}) == Path.home() / ".local/state/streamops/state.json"


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.json"
    store = StateStore(path)
    assert store.cursor("k") is None and store.filters == {} and store.problem is None
    store.set_cursor("k", "1735689600000-5")
    assert store.save_filter("phones", "type=phone")
    again = StateStore(path)
    assert again.cursor("k") == "1735689600000-5"
    assert again.filters == {"phones": "type=phone"}


def test_cursor_writes_are_debounced(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ticks = Ticks()
    store = StateStore(path, min_interval=2.0, monotonic=ticks)
    store.set_cursor("k", "1-0")
    store.flush()
    assert json.loads(path.read_text())["cursors"] == {"k": "1-0"}
    written = path.stat().st_mtime_ns
    store.set_cursor("k", "2-0")
    ticks.now += 1.0
    store.flush()
    assert path.stat().st_mtime_ns == written
    assert json.loads(path.read_text())["cursors"] == {"k": "1-0"}
    ticks.now += 1.5
    store.flush()
    assert json.loads(path.read_text())["cursors"] == {"k": "2-0"}
    store.set_cursor("k", "3-0")
    store.flush(force=True)
    assert json.loads(path.read_text())["cursors"] == {"k": "3-0"}


def test_nothing_is_written_when_nothing_changed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.flush(force=True)
    assert not path.exists()


def test_write_is_atomic_and_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.set_cursor("k", "1-0")
    store.flush(force=True)

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    store.set_cursor("k", "2-0")
    assert not store.flush(force=True)
    assert store.problem is not None and "No space left" in store.problem
    assert json.loads(path.read_text())["cursors"] == {"k": "1-0"}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

    monkeypatch.undo()
    assert store.flush(force=True)
    assert store.problem is None
    assert json.loads(path.read_text())["cursors"] == {"k": "2-0"}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"cursors": {"k": 5}}', b""])
def test_a_corrupt_file_is_tolerated_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = StateStore(path)
    assert store.cursor("k") is None
    assert store.problem is not None and "not a valid state file" in store.problem
    store.set_cursor("k", "1-0")
    store.flush(force=True)
    assert StateStore(path).cursor("k") == "1-0"


def test_unknown_keys_survive_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"cursors": {}, "filters": {}, "from_a_newer_console": [1]}))
    store = StateStore(path)
    store.set_cursor("k", "1-0")
    store.flush(force=True)
    assert json.loads(path.read_text())["from_a_newer_console"] == [1]

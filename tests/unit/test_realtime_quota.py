"""Fixed-window quotas: limit, remaining, reset time and retry-after."""

from __future__ import annotations

from backends.realtime.quota import FixedWindow, KeyedWindows, Quota


def test_fixed_window_counts_down_and_resets_on_the_window_edge() -> None:
    window = FixedWindow(3, 60)
    hits = [window.hit(1000.0 + n) for n in range(4)]
    assert [q.remaining for q in hits] == [2, 1, 0, 0]
    assert [q.allowed for q in hits] == [True, True, True, False]
    assert {q.reset_at for q in hits} == {1020.0}  # windows are aligned to the epoch
    assert hits[-1].retry_after(1003.0) == 17.0
    assert hits[-1].retry_after_seconds(1019.5) == 1
    assert window.peek(1019.0) == Quota(3, 0, 1020.0, allowed=False)
    assert window.hit(1020.0) == Quota(3, 2, 1080.0)


def test_keyed_windows_are_independent_and_prune_idle_keys() -> None:
    windows = KeyedWindows(1, 60)
    assert windows.hit("a", 0.0).allowed
    assert not windows.hit("a", 1.0).allowed
    assert windows.hit("b", 1.0).allowed
    windows.forget("a")
    assert windows.hit("a", 2.0).allowed
    for n in range(KeyedWindows.PRUNE_AT):
        windows.hit(f"k{n}", 10.0)
    assert windows.hit("late", 60.0).allowed  # the 1025th key: windows that ended go
    assert len(windows._windows) == 1

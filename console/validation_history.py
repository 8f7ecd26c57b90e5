"""Past validation reports: a bounded folder of report JSON files beside the UI state file.

Reports are kept as files (`<state dir>/validation-reports/<stamp>-<seq>.json`)
rather than inside `state.json`: a report with samples and a schema is tens of
kilobytes, and the state file is rewritten on every cursor flush. Why it is shaped
this way:

- Bounded: only the newest `limit` reports are kept; adding one deletes the oldest.
- Ordered by a sequence number in the file name, not by time, so runs on a
  `ManualClock` (same timestamp every time) still list in the order they ran.
- Writes are atomic (temporary file + `os.replace`); a file that no longer parses
  (a newer report version, a half-copied file) is skipped when listing, never fatal.
- Every method does file I/O: call them from a thread worker, not the UI loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:  # the engine imports polars: imported where used, off the UI loop
    from backends.validation.report import ValidationReport

DEFAULT_LIMIT = 20
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6})-(?P<seq>\d+)\.json$")


@dataclass(frozen=True)
class HistoryEntry:
    """One stored report, with what the history list shows (the report itself is loaded)."""

    id: str
    """The file name without `.json`; stable while the report is kept."""
    seq: int
    report: ValidationReport

    @property
    def label(self) -> str:
        s = self.report.summary
        return f"#{self.seq} {s.started_at[:19].replace('T', ' ')} {s.source}"


def reports_dir(state_path: Path) -> Path:
    return state_path.parent / "validation-reports"


class ReportHistory:
    def __init__(self, directory: Path, *, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.directory = directory
        self.limit = limit

    def _files(self) -> list[tuple[int, Path]]:
        """(seq, path) of every report file, oldest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _NAME.match(name)
            if match:
                found.append((int(match.group("seq")), self.directory / name))
        return sorted(found)

    def add(self, report: ValidationReport) -> HistoryEntry:
        """Store a report as the newest one and drop the oldest beyond `limit`. Raises OSError."""
        files = self._files()
        seq = files[-1][0] + 1 if files else 1
        stamp = re.sub(r"[^0-9T]", "", report.summary.started_at)[:15].ljust(15, "0")
        name = f"{stamp}-{seq:05d}"
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".report-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(report.to_json(indent=False))
            os.replace(temp, self.directory / f"{name}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        for _, old in files[: max(len(files) + 1 - self.limit, 0)]:
            with contextlib.suppress(OSError):
                old.unlink()
        return HistoryEntry(id=name, seq=seq, report=report)

    def entries(self) -> list[HistoryEntry]:
        """Every readable stored report, newest first."""
        from backends.validation.report import ValidationReport

        out = []
        for seq, path in reversed(self._files()):
            try:
                report = ValidationReport.from_json(path.read_bytes())
            except (OSError, ValidationError, ValueError):
                continue
            out.append(HistoryEntry(id=path.stem, seq=seq, report=report))
        return out


@dataclass(frozen=True)
class RuleDiff:
    """One rule across two reports; None where the rule is absent from that report."""

    name: str
    severity: str
    failed_a: int | None
    failed_b: int | None
    passed_a: bool | None
    passed_b: bool | None

    @property
    def delta(self) -> int | None:
        if self.failed_a is None or self.failed_b is None:
            return None
        return self.failed_b - self.failed_a

    @property
    def change(self) -> str:
        """What an operator asks first: did it start or stop failing, or get worse?"""
        if self.passed_a is None:
            return "only in B"
        if self.passed_b is None:
            return "only in A"
        if self.passed_a and not self.passed_b:
            return "now failing"
        if not self.passed_a and self.passed_b:
            return "fixed"
        delta = self.delta or 0
        if delta > 0:
            return "worse"
        if delta < 0:
            return "better"
        return "same"


_CHANGE_ORDER = {
    "now failing": 0,
    "worse": 1,
    "only in B": 2,
    "fixed": 3,
    "better": 4,
    "only in A": 5,
    "same": 6,
}


def compare_reports(a: ValidationReport, b: ValidationReport) -> list[RuleDiff]:
    """Rules of both reports matched by name: changes first, then by severity and failures."""
    from backends.validation.rules import severity_rank

    rules_a = {r.name: r for r in a.rules}
    rules_b = {r.name: r for r in b.rules}
    names = list(rules_a) + [n for n in rules_b if n not in rules_a]
    diffs = []
    for name in names:
        ra, rb = rules_a.get(name), rules_b.get(name)
        either = rb or ra
        if either is None:
            continue
        diffs.append(
            RuleDiff(
                name=name,
                severity=either.severity,
                failed_a=ra.failed if ra else None,
                failed_b=rb.failed if rb else None,
                passed_a=ra.passed if ra else None,
                passed_b=rb.passed if rb else None,
            )
        )
    return sorted(
        diffs,
        key=lambda d: (
            _CHANGE_ORDER[d.change],
            -severity_rank(d.severity),
            -max(d.failed_a or 0, d.failed_b or 0),
        ),
    )

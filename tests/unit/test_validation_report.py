"""ValidationReport: run figures, renderings, and the scale-out merge."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from rich.console import Console

from backends.common.clock import ManualClock
from backends.validation import Progress, ValidationReport, merge, run_validation
from backends.validation.check import Checker
from backends.validation.report import SAMPLE_CAP, PartitionSummary
from backends.validation.rules import Rule, ruleset
from backends.validation.runner import report_from_checker

RULES = ruleset(
    [
        Rule(type="not_null", column="user", severity="critical"),
        Rule(type="range", column="payload.total", min=0, severity="medium"),
        Rule(type="allowed_values", column="kind", values=["a", "b"], severity="low", mostly=0.5),
        Rule(type="row_count", min=5),
        Rule(type="freshness", column="ts", max_age="1h", severity="low"),
        Rule(type="required_columns", columns=["user", "extra"]),
        Rule(type="unique", column="id"),
    ],
    name="test rules",
)


def clock() -> ManualClock:
    return ManualClock(datetime(2024, 1, 15, 12, 0, tzinfo=UTC))


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "id": i % 7,
            "user": None if i % 4 == 3 else f"u{i}",
            "kind": "a" if i % 2 else "c",
            "ts": f"2024-01-15T11:{i % 60:02d}:00Z",
            "payload": {"total": -1.0 if i % 5 == 0 else float(i)},
        }
        for i in range(start, start + n)
    ]


async def test_run_figures_from_a_file_source(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [orjson.dumps(r) for r in rows(8)]
    lines.insert(3, b'{"id": 1, "user": ')  # line 4 is malformed
    path.write_bytes(b"\n".join(lines) + b"\n")
    manual = clock()
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        manual.advance(0.5)
        seen.append(p)

    report = await run_validation(
        str(path), rules=RULES, max_messages=100, clock=manual, on_progress=on_progress
    )
    s = report.summary
    assert (s.source, s.rule_set, s.max_messages) == (f"file:{path}", "test rules", 100)
    assert s.started_at == "2024-01-15T12:00:00.000Z"
    assert s.messages == 9
    assert [(p.partition, p.messages, p.first_offset, p.last_offset) for p in s.partitions] == [
        (0, 9, 1, 9)
    ]
    assert [(m.partition, m.offset) for m in s.skipped] == [(0, 4)] and s.skipped_count == 1
    assert s.duration_seconds == pytest.approx(0.5 * len(seen)) and seen
    assert s.messages_per_second == pytest.approx(9 / s.duration_seconds, rel=1e-3)
    assert seen[-1].consumed == 9 and seen[-1].target == 100
    assert (s.rules_total, s.rules_passed, s.rules_failed) == (7, 3, 4)
    by_name = {r.name: r for r in report.rules}
    user = by_name["not_null(user)"]
    assert (user.failed, user.checked) == (2, 8)  # rows 3 and 7, on lines 5 and 9
    assert [(x.partition, x.offset) for x in user.samples] == [(0, 5), (0, 9)]
    assert by_name["allowed_values(kind)"].passed  # half pass, mostly 0.5
    assert by_name["row_count [5, inf]"].observed == "8 rows"
    assert by_name["freshness(ts) <= 3600s"].passed
    assert by_name["required_columns(user, extra)"].observed == "missing: extra"
    assert by_name["unique(id)"].failed == 1  # ids 0..6 then 0 again
    schema = {f.name: f.type for f in report.inferred_schema}
    assert schema["payload"] == "struct{total: f64}" and schema["payload.total"] == "f64"


def report_for(partitions: list[int], per_partition: int, now: ManualClock) -> ValidationReport:
    checker = Checker(RULES, clock=now)
    summaries = []
    for p in partitions:
        data = rows(per_partition, start=p * 100)
        frame = pl.DataFrame(data)
        offsets = pl.Series(range(10, 10 + per_partition), dtype=pl.Int64)
        checker.feed(frame, pl.Series([p] * per_partition, dtype=pl.Int32), offsets)
        summaries.append(
            PartitionSummary(
                partition=p, messages=per_partition, first_offset=10, last_offset=9 + per_partition
            )
        )
    return report_from_checker(
        checker,
        source="kafka://b/t",
        started=now.now(),
        duration=2.0,
        partitions=summaries,
        messages=per_partition * len(partitions),
    )


def test_merge_adds_counts_and_rejudges_table_rules() -> None:
    now = clock()
    left = report_for([0, 1], 2, now)
    now.advance(1)
    right = report_for([2, 3], 2, now)
    assert not left.rules[3].passed and not right.rules[3].passed  # 4 rows < 5 each
    merged = merge([left, right])
    s = merged.summary
    assert s.messages == 8 and s.workers == 2
    assert [p.partition for p in s.partitions] == [0, 1, 2, 3]
    assert s.started_at == "2024-01-15T12:00:00.000Z" and s.duration_seconds == pytest.approx(3.0)
    assert s.messages_per_second == round(8 / 3.0, 1)
    by_name = {r.name: r for r in merged.rules}
    count = by_name["row_count [5, inf]"]
    assert count.passed and count.observed == "8 rows"
    user = by_name["not_null(user)"]
    assert user.failed == sum(r.rules[0].failed for r in (left, right))
    assert user.checked == 8
    total = by_name["range(payload.total) [0, inf]"]
    assert total.failed == 4 and len(total.samples) <= SAMPLE_CAP
    assert [x.partition for x in total.samples] == sorted(x.partition for x in total.samples)
    assert by_name["required_columns(user, extra)"].observed == "missing: extra"
    assert by_name["freshness(ts) <= 3600s"].stats["newest"] == "2024-01-15T11:41:00Z"
    assert (s.rules_passed, s.rules_failed) == (5, 2)  # range and required_columns


def test_merge_of_one_is_itself_and_rule_sets_must_match() -> None:
    now = clock()
    report = report_for([0], 3, now)
    assert merge([report]) is report
    other = report.model_copy(update={"rules": report.rules[:2]})
    with pytest.raises(ValueError, match="different rule sets"):
        merge([report, other])
    with pytest.raises(ValueError, match="at least one"):
        merge([])


def test_merge_sums_skipped_and_partition_offsets() -> None:
    now = clock()
    a, b = report_for([0], 2, now), report_for([0], 2, now)
    b.summary.partitions[0].first_offset, b.summary.partitions[0].last_offset = 12, 13
    merged = merge([a, b])
    [p] = merged.summary.partitions
    assert (p.messages, p.first_offset, p.last_offset) == (4, 10, 13)


def test_json_round_trip_and_issue_order() -> None:
    report = report_for([0, 1], 4, clock())
    again = ValidationReport.from_json(report.to_json())
    assert again == report
    data = orjson.loads(report.to_json())
    assert set(data) == {"version", "summary", "inferred_schema", "rules"}
    assert [r.severity for r in report.issues] == sorted(
        (r.severity for r in report.issues),
        key=["critical", "high", "medium", "low"].index,
    )


def test_markdown_html_and_rich_renderings() -> None:
    report = report_for([0, 1], 4, clock())
    report.rules[2].samples[0].value = "<script>alert(1)</script>"
    md = report.to_markdown()
    assert md.startswith("# Validation report: kafka://b/t\n")
    assert "| FAIL | critical | not_null(user) | 2 | 25.00 |  |" in md
    assert "- `p0@13`: `null`" in md
    assert "| `payload.total` | `f64` |" in md
    html = report.to_html()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "http" not in html.replace("kafka://b/t", "")  # nothing fetched from elsewhere
    buffer = io.StringIO()
    Console(file=buffer, width=140, color_system=None).print(report)
    text = buffer.getvalue()
    assert "not_null(user)" in text and "rule(s) failed" in text

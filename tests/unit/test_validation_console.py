"""The Validation tab's non-UI parts: report history, report comparison, rules as TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints
from backends.settings import KafkaSettings, RedisSettings, Settings
from backends.validation.report import RuleResult, RunSummary, ValidationReport
from backends.validation.retail_rules import retail_rules
from backends.validation.rules import RuleError, load_rules
from console.screens.rules_editor import check_rules_text, error_line, ruleset_to_toml
from console.screens.validation import default_export_name, render_report
from console.state import StateStore
from console.tabs.validation import ValidationTab, default_specs, kafka_options
from console.validation_history import ReportHistory, compare_reports


def rule(name: str, failed: int, *, severity: str = "high", checked: int = 100) -> RuleResult:
    return RuleResult(
        name=name,
        rule="range",
        column="payload.total",
        severity=severity,  # type: ignore[arg-type]
        passed=failed == 0,
        failed=failed,
        checked=checked,
        percent=100.0 * failed / checked,
    )


def report(
    source: str, *rules: RuleResult, started: str = "2024-01-15T10:30:00.000Z"
) -> ValidationReport:
    failed = sum(not r.passed for r in rules)
    return ValidationReport(
        summary=RunSummary(
            source=source,
            rule_set="test",
            started_at=started,
            duration_seconds=0.5,
            messages=100,
            messages_per_second=200.0,
            rules_total=len(rules),
            rules_passed=len(rules) - failed,
            rules_failed=failed,
        ),
        rules=list(rules),
    )


def test_history_keeps_the_newest_reports_in_run_order(tmp_path: Path) -> None:
    history = ReportHistory(tmp_path / "reports", limit=3)
    assert history.entries() == []
    # The same start time every run (a ManualClock): order must come from the sequence.
    for i in range(5):
        history.add(report(f"source-{i}", rule("r", i)))
    entries = history.entries()
    assert [e.report.summary.source for e in entries] == ["source-4", "source-3", "source-2"]
    assert [e.seq for e in entries] == [5, 4, 3]
    assert len(list((tmp_path / "reports").iterdir())) == 3
    assert entries[0].report.rules[0].failed == 4


def test_history_skips_a_file_that_does_not_parse(tmp_path: Path) -> None:
    history = ReportHistory(tmp_path)
    history.add(report("good", rule("r", 0)))
    (tmp_path / "20240115T103000-00002.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [e.report.summary.source for e in history.entries()] == ["good"]
    assert history.add(report("next", rule("r", 0))).seq == 3


def test_compare_puts_changes_first_and_matches_rules_by_name() -> None:
    a = report(
        "a",
        rule("steady", 2),
        rule("fixed", 5, severity="critical"),
        rule("breaks", 0, severity="medium"),
        rule("grows", 1),
        rule("gone", 0),
    )
    b = report(
        "b",
        rule("steady", 2),
        rule("fixed", 0, severity="critical"),
        rule("breaks", 3, severity="medium"),
        rule("grows", 9),
        rule("new", 4, severity="low"),
    )
    diffs = compare_reports(a, b)
    assert [(d.name, d.change, d.delta) for d in diffs] == [
        ("breaks", "now failing", 3),
        ("grows", "worse", 8),
        ("new", "only in B", None),
        ("fixed", "fixed", -5),
        ("gone", "only in A", None),
        ("steady", "same", 0),
    ]


def test_builtin_rules_round_trip_through_toml(tmp_path: Path) -> None:
    builtin = retail_rules()
    text = ruleset_to_toml(builtin)
    path = tmp_path / "retail.toml"
    path.write_text(text)
    loaded = load_rules(path)
    assert loaded.rules == builtin.rules
    assert check_rules_text(text, str(path)).rules == builtin.rules


def test_invalid_rule_text_says_where() -> None:
    with pytest.raises(RuleError) as bad_toml:
        check_rules_text('name = "x"\n[[rules]]\ntype = \n', "r.toml")
    assert "invalid TOML" in str(bad_toml.value)
    assert error_line(str(bad_toml.value)) == 3
    with pytest.raises(RuleError) as bad_rule:
        check_rules_text('[[rules]]\ntype = "range"\ncolumn = "payload.total"\n', "r.toml")
    assert "range needs min and/or max" in str(bad_rule.value)
    assert "rules[0]" in str(bad_rule.value)
    assert error_line(str(bad_rule.value)) is None


def test_export_renders_every_format_and_names_the_file() -> None:
    r = report("kafka://localhost:9092/retail-events", rule("total ≥ 0", 3))
    assert default_export_name(r, "md") == "validation-retail-events-20240115T103000.md"
    assert render_report(r, "json").startswith("{")
    assert render_report(r, "md").startswith("# Validation report")
    assert "<html" in render_report(r, "html")
    with pytest.raises(ValueError):
        render_report(r, "pdf")


def test_source_defaults_come_from_the_config() -> None:
    assert default_specs(Settings())["kafka"] == ""
    settings = Settings(
        kafka=KafkaSettings(
            bootstrap_servers="b1:9092,b2:9092",
            topic="orders",
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password="p",
        ),
        redis=RedisSettings(url="redis://cache:6380/2", retail_stream="events"),
    )
    specs = default_specs(settings)
    assert specs["kafka"] == "kafka://b1:9092,b2:9092/orders"
    assert specs["redis"] == "redis://cache:6380/2?stream=events"
    assert specs["memory"] == "memory"
    assert kafka_options(settings) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "u",
        "sasl_password": "p",
    }
    assert kafka_options(Settings()) == {}


def test_the_default_source_is_kafka_once_configured(tmp_path: Path) -> None:
    def tab(settings: Settings) -> ValidationTab:
        store = StateStore(tmp_path / "state.json")
        endpoints = Endpoints(retail="http://127.0.0.1:9/api")
        return ValidationTab(
            settings=settings, endpoints=endpoints, store=store, clock=ManualClock()
        )

    assert tab(Settings()).kind == "memory"
    assert tab(Settings(kafka=KafkaSettings(bootstrap_servers="b:9092"))).kind == "kafka"
    assert tab(Settings()).history.directory == tmp_path / "validation-reports"

"""Every rule of the shared vocabulary on known data: passes, failures, mostly, severity, paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from backends import validation as th
from backends.common.clock import ManualClock
from backends.validation.check import Checker, flatten_schema, resolve, type_name
from backends.validation.report import RuleResult, ValidationReport
from backends.validation.rules import Rule, RuleError, make_rule, ruleset

CLOCK = ManualClock(datetime(2024, 1, 15, 12, 0, tzinfo=UTC))


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 2, None, 4, 4],
            "action": ["login", "logout", "purchase", "hack", None],
            "timestamp": [
                "2024-01-15T10:00:00Z",
                "2024-01-15T10:05:00.250Z",
                "2024-01-15 11:00:00",
                "yesterday",
                None,
            ],
            "amount": [10.0, -1.0, 3.5, 1000.0, None],
            "code": ["AB-1", "AB-22", "zz", "AB-333", "AB-4"],
            "payload": [
                {"total": 10.0, "kind": "a", "tags": [1]},
                {"total": -5.0, "kind": "b", "tags": [1, 2, 3]},
                {"total": None, "kind": "a", "tags": []},
                {"total": 7.0, "kind": "b", "tags": [4]},
                None,
            ],
        }
    )


def run(rules: dict[str, Any] | list[Rule], data: pl.DataFrame | None = None) -> ValidationReport:
    data = frame() if data is None else data
    if isinstance(rules, list):
        return th.check(data, rules=ruleset(rules), clock=CLOCK)
    return th.check(data, rules=rules, clock=CLOCK)


def only(report: ValidationReport) -> RuleResult:
    [result] = report.rules
    return result


def test_spec_sample_validators_and_rules_forms() -> None:
    df = frame()
    report = th.check(df, validators=["null", "type"], columns=["user_id", "action"], clock=CLOCK)
    assert [r.name for r in report.rules] == [
        "not_null(user_id)",
        "not_null(action)",
        "type(user_id)",
        "type(action)",
    ]
    assert [r.name for r in report.issues] == ["not_null(user_id)", "not_null(action)"]
    report = th.check(
        df,
        rules={
            "user_id": ["not_null"],
            "action": [{"type": "allowed_values", "values": ["login", "logout", "purchase"]}],
            "timestamp": ["not_null", {"type": "datetime"}],
        },
        clock=CLOCK,
    )
    failed = {r.name: r.failed for r in report.issues}
    assert failed == {
        "not_null(user_id)": 1,
        "allowed_values(action)": 1,
        "not_null(timestamp)": 1,
        "datetime(timestamp)": 1,
    }


def test_check_accepts_a_lazyframe_and_defaults_validators_to_all_columns() -> None:
    report = th.check(frame().lazy(), validators=["not_null"], clock=CLOCK)
    assert [r.column for r in report.rules] == list(frame().columns)
    assert report.summary.messages == 5


def test_not_null_counts_every_row_and_samples_carry_offsets() -> None:
    result = only(run({"user_id": ["not_null"]}))
    assert (result.failed, result.checked, result.passed) == (1, 5, False)
    assert result.percent == pytest.approx(20.0)
    assert [(s.offset, s.value) for s in result.samples] == [(2, None)]


def test_not_null_over_several_columns_fails_a_row_when_any_is_null() -> None:
    rule = Rule(type="not_null", columns=["user_id", "action"])
    result = only(run([rule]))
    assert result.failed == 2
    assert [s.value for s in result.samples] == [["user_id"], ["action"]]


def test_unique_counts_repeats_beyond_the_first_across_batches() -> None:
    checker = Checker(ruleset([Rule(type="unique", column="user_id")]), clock=CLOCK)
    checker.feed(frame())
    checker.feed(pl.DataFrame({"user_id": [1, 9]}))
    [result] = checker.results()
    assert (result.failed, result.checked) == (2, 6)  # 4 repeated in batch 1, 1 in batch 2
    assert [(s.offset, s.value) for s in result.samples] == [(4, 4), (5, 1)]


def test_allowed_values_skips_nulls_and_compares_numbers_and_text() -> None:
    result = only(run({"action": [{"type": "allowed_values", "values": ["login", "logout"]}]}))
    assert (result.failed, result.checked) == (2, 4)
    assert [s.value for s in result.samples] == ["purchase", "hack"]
    result = only(run({"user_id": [{"type": "allowed_values", "values": [1, 2, 4]}]}))
    assert result.passed and result.checked == 4


def test_regex_searches_and_anchors_when_asked() -> None:
    assert only(run({"code": [{"type": "regex", "pattern": "AB"}]})).failed == 1
    result = only(run({"code": [{"type": "regex", "pattern": r"^AB-\d{1,2}$"}]}))
    assert [s.value for s in result.samples] == ["zz", "AB-333"]


def test_range_and_min_max_aliases() -> None:
    assert only(run({"amount": [{"type": "range", "min": 0, "max": 100}]})).failed == 2
    assert only(run({"amount": [{"type": "min", "value": 0}]})).failed == 1
    assert only(run({"amount": [{"type": "max", "value": 100}]})).failed == 1
    assert only(run({"amount": [{"type": "between", "min": -1, "max": 1000}]})).passed


def test_range_on_text_numbers() -> None:
    df = pl.DataFrame({"n": ["1", "5", "x", None]})
    result = only(run({"n": [{"type": "range", "max": 2}]}, df))
    assert result.failed == 1  # "x" is the type rule's business, not range's


def test_type_with_dtype_and_mixed_json_types() -> None:
    assert only(run({"user_id": [{"type": "type", "dtype": "int"}]})).passed
    assert only(run({"amount": [{"type": "type", "dtype": "number"}]})).passed
    assert only(run({"action": [{"type": "type", "dtype": "int"}]})).failed == 4
    mixed = pl.DataFrame({"total": ["1.5", "abc", "3", None]})  # the JSON had a string in it
    result = only(run({"total": [{"type": "type", "dtype": "float"}]}, mixed))
    assert [(s.offset, s.value) for s in result.samples] == [(1, "abc")]
    floats = pl.DataFrame({"n": [1.0, 2.5, None]})
    assert only(run({"n": [{"type": "type", "dtype": "int"}]}, floats)).failed == 1


def test_type_without_dtype_flags_the_odd_ones_in_a_mostly_numeric_column() -> None:
    df = pl.DataFrame({"n": ["1", "2", "3", "x"], "s": ["a", "b", "c", "1"]})
    assert only(run({"n": ["type"]}, df)).failed == 1
    assert only(run({"s": ["type"]}, df)).passed


def test_type_over_several_fields() -> None:
    rule = Rule(type="type", dtypes={"payload.total": "float", "payload.kind": "int"})
    result = only(run([rule]))
    assert result.failed == 4  # kind is text in every row that has a payload
    assert result.samples[0].value == {"payload.kind": "a"}  # total is a float: cannot fail


def test_datetime_default_iso_and_explicit_format() -> None:
    result = only(run({"timestamp": [{"type": "datetime"}]}))
    assert [s.value for s in result.samples] == ["yesterday"]
    fmt = {"type": "datetime", "format": "%Y-%m-%dT%H:%M:%S%.f%#z"}
    assert only(run({"timestamp": [fmt]})).failed == 2
    assert only(run({"amount": ["datetime"]})).failed == 4  # numbers are no timestamps


def test_length_of_text_and_lists() -> None:
    assert only(run({"code": [{"type": "length", "min": 3, "max": 5}]})).failed == 2
    assert only(run({"payload.tags": [{"type": "length", "min": 1}]})).failed == 1


def test_dotted_paths_reach_struct_fields() -> None:
    result = only(run({"payload.total": [{"type": "range", "min": 0}]}))
    assert [(s.offset, s.value) for s in result.samples] == [(1, -5.0)]
    result = only(run({"payload.total": ["not_null"]}))
    assert result.failed == 2  # a null payload has a null total too


def test_a_path_the_frame_lacks_is_all_null() -> None:
    assert only(run({"payload.missing": ["not_null"]})).failed == 5
    assert only(run({"payload.missing": [{"type": "range", "min": 0}]})).passed
    assert only(run({"nope.deeper": ["not_null"]})).failed == 5


def test_when_limits_a_rule_to_matching_rows() -> None:
    rule = Rule(type="range", column="payload.total", min=0, when={"payload.kind": "b"})
    result = only(run([rule]))
    assert (result.failed, result.checked) == (1, 2)
    assert result.name == "range(payload.total) [0, inf] where payload.kind=b"
    rule = Rule(type="not_null", column="user_id", when={"action": ["purchase", "hack"]})
    assert only(run([rule])).failed == 1
    rule = Rule(type="not_null", column="user_id", when={"absent": "x"})
    assert only(run([rule])).checked == 0


def test_mostly_tolerates_a_share_of_failures() -> None:
    spec = {"type": "allowed_values", "values": ["login", "logout", "purchase"]}
    assert not only(run({"action": [{**spec, "mostly": 0.8}]})).passed  # 3/4 pass = 0.75
    result = only(run({"action": [{**spec, "mostly": 0.75}]}))
    assert result.passed and result.failed == 1


def test_severity_defaults_to_high_and_orders_issues() -> None:
    report = run(
        {
            "action": [{"type": "allowed_values", "values": ["login"], "severity": "low"}],
            "user_id": [{"type": "not_null", "severity": "critical"}],
            "amount": [{"type": "min", "value": 0}],
        }
    )
    assert [(r.column, r.severity) for r in report.issues] == [
        ("user_id", "critical"),
        ("amount", "high"),
        ("action", "low"),
    ]
    assert [r.column for r in report.failed_at("high")] == ["user_id", "amount"]
    assert len(report.failed_at("low")) == 3


def test_required_columns_row_count_and_freshness() -> None:
    report = run(
        [
            Rule(type="required_columns", columns=["user_id", "payload.total", "absent"]),
            Rule(type="row_count", min=1, max=4),
            Rule(type="freshness", column="timestamp", max_age="1h"),
            Rule(type="freshness", column="timestamp", max_age="30m", name="fresh 30m"),
        ]
    )
    required, count, fresh, stale = report.rules
    assert (required.passed, required.failed, required.observed) == (False, 1, "missing: absent")
    assert (count.passed, count.observed) == (False, "5 rows")
    # newest parsable timestamp is 11:00, the clock says 12:00
    assert fresh.passed and fresh.observed == "newest 2024-01-15T11:00:00Z, 3,600 s old"
    assert not stale.passed


def test_freshness_without_any_timestamp_fails() -> None:
    df = pl.DataFrame({"t": [None, "bad"]})
    result = only(run([Rule(type="freshness", column="t", max_age=60)], df))
    assert not result.passed and result.observed == "no timestamps"


def test_schema_is_readable_and_nested() -> None:
    fields = {f.name: f.type for f in flatten_schema(frame().schema)}
    assert fields["payload"] == "struct{total: f64, kind: str, tags: list[i64]}"
    assert fields["payload.tags"] == "list[i64]"
    assert fields["user_id"] == "i64"
    assert type_name(pl.Datetime("us", "UTC")) == "datetime[UTC]"
    assert resolve("payload.kind", frame().schema) is not None
    assert resolve("payload.kind.deeper", frame().schema) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "allowed_values"}, "allowed_values needs values"),
        ({"type": "regex"}, "regex needs pattern"),
        ({"type": "regex", "pattern": "("}, "invalid regex"),
        ({"type": "range"}, "range needs min and/or max"),
        ({"type": "range", "min": 5, "max": 1}, "min (5.0) is greater than max (1.0)"),
        ({"type": "type", "dtype": "decimal128"}, "unknown dtype 'decimal128'"),
        ({"type": "freshness"}, "freshness needs column and max_age"),
        ({"type": "freshness", "max_age": "soon"}, "not a duration: 'soon'"),
        ({"type": "wat"}, "type: Input should be 'not_null'"),
        ({"type": "not_null", "severity": "urgent"}, "severity: Input should be 'low'"),
        ({"type": "not_null", "mostly": 1.5}, "mostly: Input should be less than or equal to 1"),
        ({"type": "not_null", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"values": [1]}, "missing 'type'"),
    ],
)
def test_invalid_rules_say_what_is_wrong(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=r"^where: ") as caught:
        make_rule(spec, column="c", where="where")
    assert message in str(caught.value)


def test_a_row_rule_needs_a_column_and_names_are_unique() -> None:
    with pytest.raises(RuleError, match="not_null needs a column"):
        make_rule("not_null", where="r")
    with pytest.raises(RuleError, match="two rules are named 'not_null\\(a\\)'"):
        ruleset([Rule(type="not_null", column="a"), Rule(type="not_null", column="a")])
    with pytest.raises(RuleError, match="check\\(\\) needs rules"):
        th.check(frame())


def test_one_pass_per_batch_then_samples_only_for_failed_rules() -> None:
    """Samples stop being fetched once full; counts keep adding up batch after batch."""
    checker = Checker(ruleset([Rule(type="range", column="x", max=0)]), clock=CLOCK, sample_size=2)
    for start in range(0, 30, 10):
        checker.feed(pl.DataFrame({"x": list(range(start, start + 10))}))
    [result] = checker.results()
    assert (result.failed, result.checked) == (29, 30)
    assert [s.offset for s in result.samples] == [1, 2]

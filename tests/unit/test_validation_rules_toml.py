"""TOML rule files: both shapes, defaults, and errors that name the file and the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.validation.rules import RuleError, load_rules


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def test_rules_tables_and_columns_shorthand(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name = "orders"
        default_severity = "medium"

        [[rules]]
        type = "allowed_values"
        column = "status"
        values = ["NEW", "PAID"]
        severity = "critical"
        mostly = 0.99
        when = { kind = ["order", "refund"] }

        [[rules]]
        type = "freshness"
        column = "ts"
        max_age = "2h"

        [columns]
        id = ["not_null", "unique"]
        "payload.total" = [{ type = "min", value = 0 }]
        "*" = [{ type = "row_count", min = 10 }]
        """,
    )
    rules = load_rules(path)
    assert rules.name == "orders"
    status, fresh, id_nn, id_unique, total, count = rules.rules
    assert (status.kind, status.severity, status.mostly) == ("allowed_values", "critical", 0.99)
    assert status.when == {"kind": ["order", "refund"]}
    assert (fresh.max_age, fresh.severity) == (7200.0, "medium")
    assert (id_nn.kind, id_unique.kind, id_nn.column) == ("not_null", "unique", "id")
    assert (total.kind, total.column, total.min, total.max) == ("range", "payload.total", 0, None)
    assert (count.kind, count.column, count.min) == ("row_count", None, 10)


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = write(tmp_path, '[[rules]]\ntype = "not_null"\ncolumn = "a"\n')
    assert load_rules(path).name == "rules"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules]]\ntype = "not_null"\ncolumn = \n', "invalid TOML: Invalid value (at line 3"),
        ('[[rules]]\ntype = "regex"\ncolumn = "a"\n', "rules[0] (a): regex needs pattern"),
        (
            '[[rules]]\ntype = "allowed_values"\ncolumn = "a"\nvalues = [1]\n'
            '[[rules]]\ntype = "bogus"\ncolumn = "b"\n',
            "rules[1] (b): type: Input should be 'not_null'",
        ),
        (
            '[[rules]]\ntype = "not_null"\ncolumn = "a"\nseverity = "huge"\n',
            "rules[0] (a): severity: Input should be 'low', 'medium', 'high' or 'critical'",
        ),
        ('[[rules]]\ncolumn = "a"\n', "rules[0] (a): missing 'type'"),
        ('colums = { a = ["not_null"] }\n', "unknown top-level key(s) colums"),
        ("name = 'empty'\n", "no rules"),
        ('default_severity = "urgent"\n', "default_severity must be one of"),
        ('[columns]\na = [{ type = "range" }]\n', "columns['a'][0]: range needs min and/or max"),
        ("rules = 3\n", "'rules' must be an array of tables"),
    ],
)
def test_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_a_missing_file_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read rule file"):
        load_rules(tmp_path / "absent.toml")

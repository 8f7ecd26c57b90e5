"""Validation rules: the shared vocabulary of data-validation tools, as pydantic models.

A `Rule` names a check (`type`), the column it looks at (a dotted path such as
`payload.total` walks into struct fields), its parameters, a severity and a
tolerance (`mostly`: the share of checked values that must pass, as in Great
Expectations). Rules come from `check(df, validators=..., columns=...)`,
`check(df, rules={column: [...]})`, TOML files, or the built-in retail set.

Semantics where the spec is silent:
- Row rules skip nulls, except `not_null`: a null is "unknown", not "wrong". Their
  percentage is over the non-null values in scope; `not_null` counts every row in
  scope. `when = {event_type = "receipt_created"}` limits a rule to rows whose
  columns equal the value (or one of a list); payload fields differ per event type.
- `not_null` may take `columns = [...]`: a row fails when any of them is null (one
  report row per event type's payload instead of one per field); likewise `type`
  may take `dtypes = {path = "int", ...}`.
- `unique` counts the repeats beyond the first occurrence, across the whole run.
- Table rules (`required_columns`, `row_count`, `freshness`) pass or fail as a
  whole: failed is 1 or 0 and `observed` says what was seen.
- `regex` searches (anchor with `^…$` to match whole values); polars' Rust regex
  syntax, so no look-around.
- Default severity is `high` (the CLI's default `--fail-on`), so a rule written
  without one fails CI; the notable-but-legitimate retail rules say `low`/`medium`.

TOML rule files: top-level `name`, `description`, optional `default_severity`,
then `[[rules]]` tables (`type`, `column`, parameters, `severity`, `mostly`,
`when`, `name`) and/or a `[columns]` table in the same shape as `check(rules=...)`
(`"payload.total" = ["not_null", {type = "range", min = 0}]`). See
`examples/rules/retail.toml`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
Scalar = str | int | float | bool

RuleKind = Literal[
    "not_null",
    "unique",
    "allowed_values",
    "regex",
    "range",
    "type",
    "datetime",
    "length",
    "required_columns",
    "row_count",
    "freshness",
]
ROW_KINDS = frozenset(
    {"not_null", "unique", "allowed_values", "regex", "range", "type", "datetime", "length"}
)
TABLE_KINDS = frozenset({"required_columns", "row_count", "freshness"})
ALIASES: dict[str, str] = {
    "null": "not_null",
    "notnull": "not_null",
    "not null": "not_null",
    "nullity": "not_null",
    "in_set": "allowed_values",
    "allowed": "allowed_values",
    "values": "allowed_values",
    "pattern": "regex",
    "between": "range",
    "dtype": "type",
    "date": "datetime",
    "timestamp": "datetime",
    "required": "required_columns",
    "required columns": "required_columns",
    "columns": "required_columns",
    "count": "row_count",
    "row count": "row_count",
}
DTYPES: dict[str, str] = {  # accepted spelling -> canonical family
    "int": "int",
    "integer": "int",
    "float": "float",
    "number": "float",
    "numeric": "float",
    "str": "string",
    "string": "string",
    "bool": "bool",
    "boolean": "bool",
    "datetime": "datetime",
    "date": "datetime",
    "struct": "struct",
    "object": "struct",
    "list": "list",
    "array": "list",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class RuleError(ValueError):
    """A rule, a rule set or a rule file is invalid; the message says where and why."""


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)  # type: ignore[arg-type]


def parse_duration(value: float | int | str) -> float:
    """Seconds from `90`, `"90s"`, `"15m"`, `"1h"`, `"2d"`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. '15m', '1h')")
    return float(match.group(1)) * _UNITS[match.group(2)]


class Rule(BaseModel):
    """One check. `type` is the kind (as in the spec's `{"type": "allowed_values", ...}`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: RuleKind = Field(alias="type")
    column: str | None = None
    columns: list[str] | None = None
    name: str | None = None
    description: str | None = None
    severity: Severity = "high"
    mostly: float = Field(1.0, ge=0.0, le=1.0)
    when: dict[str, Scalar | list[Scalar]] | None = None
    values: list[Scalar | None] | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    dtype: str | None = None
    dtypes: dict[str, str] | None = None
    format: str | None = None
    max_age: float | None = None

    @field_validator("kind", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            key = value.strip().lower()
            return ALIASES.get(key, key)
        return value

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str | None) -> str | None:
        if value is None:
            return None
        family = DTYPES.get(value.strip().lower())
        if family is None:
            raise ValueError(f"unknown dtype {value!r}; one of {', '.join(DTYPES)}")
        return family

    @field_validator("dtypes")
    @classmethod
    def _dtypes(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        return {path: cls._dtype(dtype) or "" for path, dtype in value.items()}

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pl.select(pl.lit("").str.contains(value))
            except pl.exceptions.PolarsError as exc:
                raise ValueError(f"invalid regex {value!r}: {str(exc).splitlines()[0]}") from exc
        return value

    @model_validator(mode="after")
    def _parameters(self) -> Rule:
        kind = self.kind
        several = (kind == "not_null" and self.columns) or (kind == "type" and self.dtypes)
        if kind in ROW_KINDS and not (self.column or several):
            raise ValueError(f"{kind} needs a column")
        if self.dtypes is not None and kind != "type":
            raise ValueError("dtypes is a parameter of the type rule")
        if self.columns is not None and kind not in ("not_null", "required_columns"):
            raise ValueError(f"{kind} takes one column, not columns")
        if kind == "required_columns" and not (self.columns or self.column):
            raise ValueError("required_columns needs columns = [...]")
        if kind == "allowed_values" and self.values is None:
            raise ValueError("allowed_values needs values = [...]")
        if kind == "regex" and self.pattern is None:
            raise ValueError("regex needs pattern")
        if kind in ("range", "length", "row_count") and self.min is None and self.max is None:
            raise ValueError(f"{kind} needs min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if kind == "freshness" and (self.column is None or self.max_age is None):
            raise ValueError("freshness needs column and max_age (seconds, or e.g. '15m')")
        return self

    @property
    def is_table(self) -> bool:
        return self.kind in TABLE_KINDS

    @property
    def target(self) -> str | None:
        """The column(s) as shown in reports."""
        if self.columns and self.kind == "not_null":
            return ", ".join(self.columns)
        if self.dtypes and self.kind == "type":
            return ", ".join(self.dtypes)
        if self.kind == "required_columns":
            return ", ".join(self.columns or [self.column or ""])
        return self.column

    def display_name(self) -> str:
        if self.name:
            return self.name
        detail = ""
        if self.kind in ("range", "length", "row_count"):
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            detail = f" [{lo}, {hi}]"
        elif self.kind == "type" and self.dtype:
            detail = f" {self.dtype}"
        elif self.kind == "freshness" and self.max_age is not None:
            detail = f" <= {self.max_age:g}s"
        target = "" if self.kind in ("row_count",) else f"({self.target})"
        where = ""
        if self.when:
            where = " where " + ", ".join(f"{k}={_show(v)}" for k, v in self.when.items())
        return f"{self.kind}{target}{detail}{where}"

    def params(self) -> dict[str, Any]:
        """The parameters, for reports and for re-judging merged table rules."""
        return self.model_dump(
            exclude={"kind", "column", "name", "description", "severity", "mostly"},
            exclude_none=True,
        )


def _show(value: Any) -> str:
    return "|".join(map(str, value)) if isinstance(value, list) else str(value)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "rules"
    description: str | None = None
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            name = rule.display_name()
            if name in seen:
                raise ValueError(f"two rules are named {name!r}; give one a distinct name")
            seen.add(name)
        return self

    def __len__(self) -> int:
        return len(self.rules)


def _error(where: str, exc: ValidationError | ValueError) -> RuleError:
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        return RuleError(f"{where}: {'; '.join(parts)}")
    return RuleError(f"{where}: {exc}")


def make_rule(
    spec: str | Mapping[str, Any],
    *,
    column: str | None = None,
    where: str = "rule",
    default_severity: Severity | None = None,
) -> Rule:
    """A rule from `"not_null"` or `{"type": "range", "min": 0}`, bound to `column`."""
    fields: dict[str, Any] = {"type": spec} if isinstance(spec, str) else dict(spec)
    if "type" not in fields and "kind" in fields:
        fields["type"] = fields.pop("kind")
    if "type" not in fields:
        raise RuleError(f"{where}: missing 'type' (e.g. type = \"not_null\")")
    kind = ALIASES.get(str(fields["type"]).strip().lower(), str(fields["type"]).strip().lower())
    if kind in ("min", "max"):  # {"type": "min", "value": 0} is range with one bound
        fields["type"] = "range"
        if "value" in fields:
            fields[kind] = fields.pop("value")
    if column is not None and column != "*" and "column" not in fields and "columns" not in fields:
        if kind == "required_columns":
            fields["columns"] = [column]
        else:
            fields["column"] = column
    if default_severity is not None:
        fields.setdefault("severity", default_severity)
    try:
        return Rule.model_validate(fields)
    except ValidationError as exc:
        raise _error(where, exc) from None


def rules_from_columns(
    rules: Mapping[str, Sequence[str | Mapping[str, Any]] | str | Mapping[str, Any]],
    *,
    where: str = "rules",
    default_severity: Severity | None = None,
) -> list[Rule]:
    """`{"user_id": ["not_null"], "action": [{"type": "allowed_values", ...}]}` -> rules.

    The key `"*"` holds table rules (`row_count`, `required_columns`).
    """
    out: list[Rule] = []
    for column, specs in rules.items():
        items = [specs] if isinstance(specs, str | Mapping) else list(specs)
        for i, spec in enumerate(items):
            out.append(
                make_rule(
                    spec,
                    column=column,
                    where=f"{where}[{column!r}][{i}]",
                    default_severity=default_severity,
                )
            )
    return out


def rules_from_validators(validators: Iterable[str], columns: Iterable[str]) -> list[Rule]:
    """`validators=["null", "type"], columns=[...]`: each parameterless check on each column."""
    out: list[Rule] = []
    for validator in validators:
        for column in columns:
            out.append(make_rule(validator, column=column, where=f"validator {validator!r}"))
    return out


def ruleset(
    rules: Iterable[Rule], *, name: str = "rules", description: str | None = None
) -> RuleSet:
    try:
        return RuleSet(name=name, description=description, rules=list(rules))
    except ValidationError as exc:
        raise _error(name, exc) from None


def parse_ruleset(data: Mapping[str, Any], *, source: str = "rules") -> RuleSet:
    """A rule set from the TOML shape (already parsed into a dict)."""
    known = {"name", "description", "default_severity", "rules", "columns"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RuleError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(known))}"
        )
    default = data.get("default_severity")
    if default is not None and default not in SEVERITIES:
        raise RuleError(f"{source}: default_severity must be one of {', '.join(SEVERITIES)}")
    rules: list[Rule] = []
    listed = data.get("rules", [])
    if not isinstance(listed, list):
        raise RuleError(f"{source}: 'rules' must be an array of tables ([[rules]])")
    for i, spec in enumerate(listed):
        if not isinstance(spec, Mapping):
            raise RuleError(f"{source}: rules[{i}] must be a table")
        label = spec.get("name") or spec.get("column") or spec.get("type")
        rules.append(
            make_rule(spec, where=f"{source}: rules[{i}] ({label})", default_severity=default)
        )
    columns = data.get("columns", {})
    if not isinstance(columns, Mapping):
        raise RuleError(f"{source}: 'columns' must be a table of column = [rules]")
    rules += rules_from_columns(columns, where=f"{source}: columns", default_severity=default)
    if not rules:
        raise RuleError(f"{source}: no rules (add [[rules]] tables or a [columns] table)")
    return ruleset(rules, name=str(data.get("name") or source), description=data.get("description"))


def load_rules(path: str | Path) -> RuleSet:
    """Read a TOML rule file; every problem is a `RuleError` naming the file and the place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read rule file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: invalid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    return parse_ruleset(data, source=str(path))

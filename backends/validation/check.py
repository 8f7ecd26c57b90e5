"""The rule engine: rules compiled to polars expressions, evaluated in one pass per frame.

`Checker.feed(frame)` runs ONE `select` over the frame that yields, for every row
rule, its failed and checked counts (and what table rules need: row count, newest
timestamp; the values of `unique` columns). Only for rules that failed and still
want samples does a second `select` fetch failing values with their partition and
offset, so once samples are full, a batch costs exactly one pass. The runner feeds
batch after batch (memory stays bounded by a batch); `check(df, ...)` feeds once.

Dotted paths (`payload.total`) walk struct fields; a path the frame lacks reads as
all-null (a payload field no message in the batch had), so only `not_null` and
`required_columns` see it. `type` compares the column's polars type with the rule's
`dtype` family; when the JSON mixed types (a field is a string in some messages),
the rows whose value cannot be read as the wanted type fail. Without `dtype`, `type`
flags the odd ones out in a string column that is mostly numeric. `datetime` with no
`format` accepts ISO 8601 (with or without fraction and zone) and `YYYY-MM-DD`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from backends.common.clock import Clock, SystemClock, iso_z
from backends.validation.report import (
    SAMPLE_CAP,
    RuleResult,
    Sample,
    SchemaField,
    _percent,
    passes,
)
from backends.validation.rules import (
    Rule,
    RuleError,
    RuleSet,
    rules_from_columns,
    rules_from_validators,
    ruleset,
)

PARTITION = "__sv_partition"
OFFSET = "__sv_offset"
ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)
_INT = frozenset({pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64})
_FLOAT = frozenset({pl.Float32, pl.Float64})


# -- schema -----------------------------------------------------------------------------


def type_name(dtype: pl.DataType) -> str:
    """Readable polars types: `i64`, `str`, `list[i64]`, `struct{a: i64, b: str}`."""
    if isinstance(dtype, pl.Struct):
        return "struct{" + ", ".join(f"{f.name}: {type_name(f.dtype)}" for f in dtype.fields) + "}"
    if isinstance(dtype, pl.List | pl.Array):
        return f"list[{type_name(dtype.inner)}]"  # type: ignore[arg-type]
    if isinstance(dtype, pl.Datetime):
        return "datetime" + (f"[{dtype.time_zone}]" if dtype.time_zone else "")
    names = {pl.String: "str", pl.Boolean: "bool", pl.Null: "null", pl.Date: "date"}
    for base, name in names.items():
        if dtype == base:
            return name
    if dtype in _INT or dtype in _FLOAT:
        return str(dtype).lower().replace("int", "i").replace("float", "f").replace("ui", "u")
    return str(dtype).lower()


def flatten_schema(schema: Mapping[str, pl.DataType], prefix: str = "") -> list[SchemaField]:
    """Every field as a dotted path, struct fields after their struct."""
    out: list[SchemaField] = []
    for name, dtype in schema.items():
        if name in (PARTITION, OFFSET):
            continue
        path = f"{prefix}{name}"
        out.append(SchemaField(name=path, type=type_name(dtype)))
        if isinstance(dtype, pl.Struct):
            out += flatten_schema({f.name: f.dtype for f in dtype.fields}, prefix=f"{path}.")
    return out


def resolve(path: str, schema: Mapping[str, pl.DataType]) -> tuple[pl.Expr, pl.DataType] | None:
    """The expression and type of a column or dotted struct path; None if the frame lacks it."""
    if path in schema:
        return pl.col(path), schema[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # longest top-level name first ("a.b" may be a column)
        head = ".".join(parts[:cut])
        if head not in schema:
            continue
        expr, dtype = pl.col(head), schema[head]
        for part in parts[cut:]:
            if not isinstance(dtype, pl.Struct):
                return None
            fields = {f.name: f.dtype for f in dtype.fields}
            if part not in fields:
                return None
            expr, dtype = expr.struct.field(part), fields[part]
        return expr, dtype
    return None


# -- compiling rules ---------------------------------------------------------------------


def _parse_datetime(expr: pl.Expr, dtype: pl.DataType, fmt: str | None) -> pl.Expr | None:
    """Datetime values (UTC for zoned text), or None when the type cannot hold one."""
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return expr.cast(pl.Datetime("us"))
    if dtype != pl.String:
        return None
    if fmt:
        parsed = expr.str.to_datetime(fmt, strict=False, time_unit="us")
        return (
            parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            if "z" in fmt.lower()
            else parsed
        )
    zoned = expr.str.to_datetime(ISO_FORMATS[0], strict=False, time_unit="us")
    candidates = [zoned.dt.convert_time_zone("UTC").dt.replace_time_zone(None)]
    for f in ISO_FORMATS[1:]:
        parsed = expr.str.to_datetime(f, strict=False, time_unit="us")
        if "z" in f:
            parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        candidates.append(parsed)
    return pl.coalesce(candidates)


def _dtype_family(dtype: pl.DataType) -> str:
    if dtype in _INT:
        return "int"
    if dtype in _FLOAT:
        return "float"
    if dtype == pl.String:
        return "string"
    if dtype == pl.Boolean:
        return "bool"
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return "datetime"
    if isinstance(dtype, pl.Struct):
        return "struct"
    if isinstance(dtype, pl.List | pl.Array):
        return "list"
    return "null" if dtype == pl.Null else str(dtype)


def _type_failures(value: pl.Expr, dtype: pl.DataType, want: str | None) -> pl.Expr | None:
    """Rows whose value is not of the `want` family; None when the column's type settles it."""
    present = value.is_not_null()
    family = _dtype_family(dtype)
    if family == "null":
        return None
    if want is None:  # consistency: a mostly-numeric text column should be all numeric
        if family != "string":
            return None
        numeric = value.cast(pl.Float64, strict=False).is_not_null()
        return present & ~numeric & (numeric.sum() * 2 > present.sum())
    if family == want or (want == "float" and family == "int"):
        return None
    if want == "int" and family == "float":
        return present & (value != value.floor())
    if family == "string":
        if want in ("int", "float"):
            target = pl.Int64 if want == "int" else pl.Float64
            return present & value.cast(target, strict=False).is_null()
        if want == "bool":
            return present & ~value.str.to_lowercase().is_in(["true", "false"])
        if want == "datetime":
            parsed = _parse_datetime(value, dtype, None)
            return present & parsed.is_null()  # type: ignore[union-attr]
    return present


def _failures(rule: Rule, value: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """True where a (non-null, except for not_null) value breaks the rule."""
    kind = rule.kind
    if kind == "not_null":
        return value.is_null()
    present = value.is_not_null()
    if kind == "allowed_values":
        allowed = [v for v in rule.values or [] if v is not None]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in allowed)
        if numeric and _dtype_family(dtype) in ("int", "float"):
            return present & ~value.is_in(allowed)
        text = value if dtype == pl.String else value.cast(pl.String, strict=False)
        return present & ~text.is_in([_text(v) for v in allowed])
    if kind == "regex":
        text = value if dtype == pl.String else value.cast(pl.String, strict=False)
        return present & ~text.str.contains(rule.pattern or "").fill_null(False)
    if kind == "range":
        family = _dtype_family(dtype)
        number = value if family in ("int", "float") else value.cast(pl.Float64, strict=False)
        out = pl.lit(False)
        if rule.min is not None:
            out = out | (number < rule.min)
        if rule.max is not None:
            out = out | (number > rule.max)
        return present & out.fill_null(False)
    if kind == "length":
        if isinstance(dtype, pl.List):
            size = value.list.len()
        elif dtype == pl.String:
            size = value.str.len_chars()
        else:
            size = value.cast(pl.String, strict=False).str.len_chars()
        out = pl.lit(False)
        if rule.min is not None:
            out = out | (size < rule.min)
        if rule.max is not None:
            out = out | (size > rule.max)
        return present & out.fill_null(False)
    if kind == "type":
        return _type_failures(value, dtype, rule.dtype)
    if kind == "datetime":
        parsed = _parse_datetime(value, dtype, rule.format)
        return present if parsed is None else present & parsed.is_null()
    raise AssertionError(f"not a row rule: {kind}")


def _multi_type_failures(rule: Rule, schema: Mapping[str, pl.DataType]) -> pl.Expr | None:
    """Any of the `dtypes` fields holds a value of the wrong type."""
    checks = [
        _type_failures(*_resolve_or_null(path, schema), want)
        for path, want in (rule.dtypes or {}).items()
    ]
    live = [c for c in checks if c is not None]
    return pl.any_horizontal(live) if live else None


def _row_failures(
    rule: Rule, value: pl.Expr, dtype: pl.DataType, schema: Mapping[str, pl.DataType]
) -> pl.Expr | None:
    """The failing-row mask, or None when the schema alone shows no row can fail."""
    if rule.kind == "type" and rule.dtypes:
        return _multi_type_failures(rule, schema)
    if rule.kind == "not_null" and rule.columns:
        return pl.any_horizontal([_resolve_or_null(c, schema)[0].is_null() for c in rule.columns])
    return _failures(rule, value, dtype)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scope(rule: Rule, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    if not rule.when:
        return pl.lit(True)
    out = pl.lit(True)
    for path, wanted in rule.when.items():
        found = resolve(path, schema)
        if found is None:
            return pl.lit(False)
        expr, dtype = found
        values = wanted if isinstance(wanted, list) else [wanted]
        if dtype != pl.String and not all(isinstance(v, int | float) for v in values):
            expr = expr.cast(pl.String, strict=False)
            values = [_text(v) for v in values]
        out = out & expr.is_in(values).fill_null(False)
    return out


def _several(rule: Rule) -> list[str] | None:
    """The paths of a multi-column rule (`not_null` with columns, `type` with dtypes)."""
    if rule.kind == "not_null" and rule.columns:
        return rule.columns
    if rule.kind == "type" and rule.dtypes:
        return list(rule.dtypes)
    return None


def _sample_value(rule: Rule, value: pl.Expr, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """What a sample shows: the value; for several columns, what is wrong with them.

    `not_null` over columns shows the names of the null ones; `type` over dtypes shows
    the fields whose type the schema could not settle (the ones that can fail).
    """
    if rule.kind == "not_null" and rule.columns:
        names = [
            pl.when(_resolve_or_null(c, schema)[0].is_null()).then(pl.lit(c)) for c in rule.columns
        ]
        return pl.concat_list(names).list.drop_nulls()
    if rule.kind == "type" and rule.dtypes:
        live = [
            path
            for path, want in rule.dtypes.items()
            if _type_failures(*_resolve_or_null(path, schema), want) is not None
        ]
        return pl.struct([_resolve_or_null(c, schema)[0].alias(c) for c in live])
    return value


def _resolve_or_null(path: str, schema: Mapping[str, pl.DataType]) -> tuple[pl.Expr, pl.DataType]:
    found = resolve(path, schema)
    return found if found is not None else (pl.repeat(None, pl.len(), dtype=pl.Null), pl.Null)


# -- the checker ---------------------------------------------------------------------------


@dataclass
class _Tally:
    failed: int = 0
    checked: int = 0
    samples: list[Sample] = field(default_factory=list)
    newest: datetime | None = None
    missing: set[str] | None = None
    unique_values: list[pl.DataFrame] = field(default_factory=list)


class Checker:
    """Evaluates a rule set over one frame or a sequence of batches."""

    def __init__(
        self, rules: RuleSet, *, clock: Clock | None = None, sample_size: int = SAMPLE_CAP
    ) -> None:
        self.rules = rules
        self._clock = clock or SystemClock()
        self._sample_size = sample_size
        self._tallies = [_Tally() for _ in rules.rules]
        self._rows = 0
        self._schema: dict[str, list[str]] = {}

    @property
    def rows(self) -> int:
        return self._rows

    def feed(
        self,
        frame: pl.DataFrame | pl.LazyFrame,
        partitions: pl.Series | None = None,
        offsets: pl.Series | None = None,
    ) -> None:
        """Check one batch. `partitions`/`offsets` are row-aligned (default: row numbers)."""
        lf = frame.lazy()
        schema = dict(lf.collect_schema())
        self._note_schema(schema)
        if partitions is not None and offsets is not None:
            lf = lf.with_columns(
                partitions.cast(pl.Int32).alias(PARTITION), offsets.cast(pl.Int64).alias(OFFSET)
            )
        else:
            lf = lf.with_columns(
                pl.lit(None, dtype=pl.Int32).alias(PARTITION),
                (pl.int_range(pl.len(), dtype=pl.Int64) + self._rows).alias(OFFSET),
            )
        aggs: list[pl.Expr] = [pl.len().alias("__rows")]
        masks: dict[int, tuple[pl.Expr, pl.Expr]] = {}  # rule index -> (failing mask, value)
        for i, rule in enumerate(self.rules.rules):
            if rule.kind in ("required_columns", "row_count"):
                continue
            scope = _scope(rule, schema)
            value, dtype = _resolve_or_null(rule.column or "", schema)
            if rule.kind == "freshness":
                parsed = _parse_datetime(value, dtype, rule.format)
                newest = pl.lit(None, dtype=pl.Datetime("us")) if parsed is None else parsed
                aggs.append(newest.filter(scope).max().alias(f"n{i}"))
                continue
            if rule.kind == "unique":
                keep = scope & value.is_not_null()
                row = pl.struct(
                    value.alias("v"), pl.col(PARTITION).alias("p"), pl.col(OFFSET).alias("o")
                )
                aggs.append(row.filter(keep).implode().alias(f"u{i}"))
                continue
            several = _several(rule) is not None
            if several or rule.kind == "not_null":
                checked = scope.fill_null(False).sum() if rule.when else pl.len()
            else:
                checked = (scope & value.is_not_null()).fill_null(False).sum()
            aggs.append(checked.alias(f"c{i}"))
            failing = _row_failures(rule, value, dtype, schema)
            if failing is not None:
                fails = (failing & scope).fill_null(False)
                aggs.append(fails.sum().alias(f"f{i}"))
                masks[i] = (fails, _sample_value(rule, value, schema))
        result = lf.select(aggs).collect()
        out = result.select(c for c in result.columns if not c.startswith("u")).row(0, named=True)
        self._rows += out["__rows"]
        wanting: list[pl.Expr] = []
        for i, rule in enumerate(self.rules.rules):
            tally = self._tallies[i]
            if rule.kind == "required_columns":
                wanted = rule.columns or [rule.column or ""]
                missing = {c for c in wanted if resolve(c, schema) is None}
                tally.missing = missing if tally.missing is None else tally.missing | missing
            elif rule.kind == "freshness":
                newest = out[f"n{i}"]
                if newest is not None and (tally.newest is None or newest > tally.newest):
                    tally.newest = newest
            elif rule.kind == "unique":
                values = result[f"u{i}"].explode().struct.unnest()
                tally.unique_values.append(values.filter(pl.col("o").is_not_null()))
            elif rule.kind != "row_count":
                tally.checked += out[f"c{i}"]
                failed = out.get(f"f{i}", 0)
                tally.failed += failed
                need = self._sample_size - len(tally.samples)
                if failed and need > 0:
                    fails, value = masks[i]
                    row = pl.struct(
                        value.alias("v"), pl.col(PARTITION).alias("p"), pl.col(OFFSET).alias("o")
                    )
                    wanting.append(row.filter(fails).head(need).implode().alias(f"s{i}"))
        if wanting:
            found = lf.select(wanting).collect().row(0, named=True)
            for name, rows in found.items():
                tally = self._tallies[int(name[1:])]
                tally.samples += [_sample(r) for r in rows]

    def _note_schema(self, schema: Mapping[str, pl.DataType]) -> None:
        for f in flatten_schema(schema):
            seen = self._schema.setdefault(f.name, [])
            if f.type not in seen:
                seen.append(f.type)

    def schema(self) -> list[SchemaField]:
        return [SchemaField(name=n, type=" | ".join(t)) for n, t in self._schema.items()]

    def results(self) -> list[RuleResult]:
        """Judge every rule on what was fed so far."""
        out: list[RuleResult] = []
        for rule, tally in zip(self.rules.rules, self._tallies, strict=True):
            base = _base(rule)
            if rule.is_table:
                stats = _table_stats(rule, tally, self._rows)
                out.append(judge_table(base, [stats], self._rows, now=self._clock.now()))
                continue
            if rule.kind == "unique":
                self._judge_unique(tally)
            failed, checked = tally.failed, tally.checked
            out.append(
                base.model_copy(
                    update={
                        "failed": failed,
                        "checked": checked,
                        "percent": _percent(failed, checked),
                        "passed": passes(failed, checked, rule.mostly),
                        "samples": tally.samples[: self._sample_size],
                    }
                )
            )
        return out

    def _judge_unique(self, tally: _Tally) -> None:
        if not tally.unique_values:
            tally.failed, tally.checked, tally.samples = 0, 0, []
            return
        frames = [f for f in tally.unique_values if f.height]
        values = pl.concat(frames, how="vertical_relaxed") if frames else tally.unique_values[0]
        tally.unique_values = [values]
        repeats = values.filter(~pl.col("v").is_first_distinct())
        tally.failed, tally.checked = repeats.height, values.height
        tally.samples = [_sample(r) for r in repeats.head(self._sample_size).to_dicts()]


def _sample(row: Mapping[str, Any]) -> Sample:
    return Sample(partition=row["p"], offset=row["o"], value=_plain(row["v"]))


def _plain(value: Any) -> Any:
    """JSON-ready sample values (datetimes as ISO text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _base(rule: Rule) -> RuleResult:
    return RuleResult(
        name=rule.display_name(),
        rule=rule.kind,
        column=rule.target,
        severity=rule.severity,
        mostly=rule.mostly,
        passed=True,
        failed=0,
        checked=0,
        percent=0.0,
        description=rule.description,
        params=rule.params(),
    )


def _table_stats(rule: Rule, tally: _Tally, rows: int) -> dict[str, Any]:
    if rule.kind == "required_columns":
        wanted = rule.columns or [rule.column or ""]
        missing = tally.missing if tally.missing is not None else set(wanted)
        return {"missing": sorted(missing), "required": len(wanted)}
    if rule.kind == "freshness":
        return {"newest": iso_z(tally.newest.replace(tzinfo=UTC)) if tally.newest else None}
    return {"rows": rows}


def judge_table(
    base: RuleResult, parts: Sequence[Mapping[str, Any]], rows: int, *, now: datetime | None = None
) -> RuleResult:
    """Judge a table rule from one or several (merged) members' stats."""
    kind, params = base.rule, base.params
    if kind == "required_columns":
        sets = [set(p.get("missing", [])) for p in parts]
        missing = sorted(set.intersection(*sets)) if sets else []
        stats: dict[str, Any] = {"missing": missing, "required": parts[0].get("required", 0)}
        failed, checked = len(missing), int(stats["required"])
        observed = f"missing: {', '.join(missing)}" if missing else "all present"
        ok = not missing
    elif kind == "row_count":
        count = rows
        stats = {"rows": count}
        lo, hi = params.get("min"), params.get("max")
        ok = (lo is None or count >= lo) and (hi is None or count <= hi)
        failed, checked, observed = int(not ok), 1, f"{count:,} rows"
    else:  # freshness
        newest = max((p["newest"] for p in parts if p.get("newest")), default=None)
        stats = {"newest": newest}
        if now is None:  # merging: judge at the latest moment a member judged
            now = max(_parse_ts(p["now"]) for p in parts if p.get("now"))
        stats["now"] = iso_z(now)
        if newest is None:
            ok, observed = False, "no timestamps"
        else:
            age = (now - _parse_ts(newest)).total_seconds()
            ok = age <= params["max_age"]
            observed = f"newest {newest}, {age:,.0f} s old"
        failed, checked = int(not ok), 1
    return base.model_copy(
        update={
            "failed": failed,
            "checked": checked,
            "percent": _percent(failed, checked),
            "passed": ok,
            "observed": observed,
            "stats": stats,
        }
    )


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the spec's entry point -----------------------------------------------------------------


def build_ruleset(
    *,
    validators: Iterable[str] | None = None,
    columns: Iterable[str] | None = None,
    rules: Mapping[str, Any] | RuleSet | Sequence[Rule] | None = None,
    schema: Mapping[str, pl.DataType] | None = None,
) -> RuleSet:
    """The rule set `check()` runs: from `rules=`, or validators x columns (default: all)."""
    if isinstance(rules, RuleSet):
        return rules
    if rules is not None and not isinstance(rules, Mapping):
        return ruleset(list(rules))
    found: list[Rule] = []
    if validators is not None:
        cols = list(columns) if columns is not None else list(schema or {})
        found += rules_from_validators(validators, cols)
    if rules is not None:
        found += rules_from_columns(rules)
    if not found:
        raise RuleError("check() needs rules={...} or validators=[...]")
    return ruleset(found, name="check")


def check(
    data: pl.DataFrame | pl.LazyFrame,
    validators: Iterable[str] | None = None,
    columns: Iterable[str] | None = None,
    *,
    rules: Mapping[str, Any] | RuleSet | Sequence[Rule] | None = None,
    clock: Clock | None = None,
    source: str = "dataframe",
) -> Any:
    """Validate a polars frame, as the spec's `th.check(df, validators=..., rules=...)`.

    Returns a `ValidationReport`; `report.issues` lists the failing rules.
    """
    from backends.validation.runner import report_from_checker

    clock = clock or SystemClock()
    schema = dict(data.lazy().collect_schema())
    rule_set = build_ruleset(validators=validators, columns=columns, rules=rules, schema=schema)
    started, t0 = clock.now(), clock.monotonic()
    checker = Checker(rule_set, clock=clock)
    checker.feed(data)
    return report_from_checker(
        checker, source=source, started=started, duration=clock.monotonic() - t0
    )

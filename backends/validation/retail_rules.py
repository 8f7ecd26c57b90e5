"""The built-in rule set for the retail event envelope (`retail_rules()`).

Run against a healthy generator, every rule passes; what fails tells what is wrong:

- critical/high — structure: the envelope's required fields, known event types,
  `payload` an object, every event type's required payload fields present (derived
  from the payload models in `backends.retail.events`), numeric payload fields
  numbers (a message whose `total` is `"abc"` fails here), ISO timestamps, unique
  trace ids, non-negative money and positive quantities, at least one message.
- medium — conventions of our generator that a foreign producer may not follow:
  trace id and partition key formats, schema version, the payload timestamps'
  format, known inventory reasons, payment statuses, reorder priorities.
- low/medium — what disruptions cause (legitimate data, but worth a look):
  `inventory_shortage` writes stock down (`inventory_updated` reason `SHORTAGE`,
  never produced otherwise) and drives stockouts and urgent reorders; a
  `dc_outage` starves stores of deliveries so stockouts climb. Healthy streams
  run at ~0.03% stockouts among events and ~98% NORMAL reorders (a shortage
  makes ~80% of them urgent), so the rules tolerate 0.08% and 25% (`mostly`).
  Truck breakdowns and weather delays only move arrivals in time, which no
  per-message rule can see.
- low — freshness: the newest event is at most 15 minutes old.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from backends.retail.events import EVENT_TYPES, PAYLOAD_MODELS
from backends.validation.rules import Rule, RuleSet, ruleset

ENVELOPE_FIELDS = ("event_type", "payload", "trace_id", "ingest_timestamp")
INVENTORY_REASONS = ["SALE", "DELIVERY", "SHORTAGE", "RETURN", "ADJUSTMENT"]
PAYLOAD_TIMES = {
    "payment_processed": "processing_time",
    "stockout_detected": "detection_time",
    "customer_zone_changed": "timestamp",
    "truck_arrived": "arrival_time",
    "truck_departed": "departure_time",
    "store_opened": "operation_time",
    "store_closed": "operation_time",
}
_NUMERIC = {int: "int", float: "float"}


def _family(annotation: Any) -> str | None:
    """`int`, `float`, `int | None` -> the dtype family; anything else -> None."""
    if annotation in _NUMERIC:
        return _NUMERIC[annotation]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        found = {_NUMERIC.get(a) for a in typing.get_args(annotation) if a is not type(None)}
        if len(found) == 1:
            return found.pop()
    return None


def _required(model: type[BaseModel]) -> list[str]:
    return [f"payload.{name}" for name, info in model.model_fields.items() if info.is_required()]


def _numeric_fields() -> dict[str, str]:
    """Every numeric payload field once (`float` wins where types share a name)."""
    found: dict[str, str] = {}
    for model in PAYLOAD_MODELS.values():
        for name, info in model.model_fields.items():
            family = _family(info.annotation)
            if family and found.get(f"payload.{name}") != "float":
                found[f"payload.{name}"] = family
    return found


def _r(**fields: Any) -> Rule:
    return Rule.model_validate(fields)


def retail_rules() -> RuleSet:
    rules: list[Rule] = [
        _r(
            type="required_columns",
            columns=[*ENVELOPE_FIELDS, "schema_version", "source"],
            severity="critical",
            name="envelope fields present",
        ),
        *(
            _r(type="not_null", column=c, severity="critical", name=f"{c} present")
            for c in ENVELOPE_FIELDS
        ),
        _r(
            type="allowed_values",
            column="event_type",
            values=list(EVENT_TYPES),
            severity="critical",
            name="event_type is known",
        ),
        _r(
            type="type",
            column="payload",
            dtype="struct",
            severity="critical",
            name="payload is an object",
        ),
        _r(type="row_count", min=1, severity="high", name="at least one message"),
        _r(type="unique", column="trace_id", severity="high", name="trace_id unique"),
        _r(
            type="datetime",
            column="ingest_timestamp",
            severity="high",
            name="ingest_timestamp is ISO 8601",
        ),
        _r(
            type="type",
            dtypes=_numeric_fields(),
            severity="high",
            name="numeric payload fields are numbers",
        ),
    ]
    for event_type in EVENT_TYPES:
        rules.append(
            _r(
                type="not_null",
                columns=_required(PAYLOAD_MODELS[event_type]),
                when={"event_type": event_type},
                severity="high",
                name=f"{event_type}: required payload fields",
            )
        )
    rules += [
        _r(
            type="range",
            column="payload.total",
            min=0,
            when={"event_type": "receipt_created"},
            severity="high",
            name="receipt total >= 0",
        ),
        _r(
            type="range",
            column="payload.amount",
            min=0,
            when={"event_type": "payment_processed"},
            severity="high",
            name="payment amount >= 0",
        ),
        _r(
            type="range",
            column="payload.quantity",
            min=1,
            when={"event_type": "receipt_line_added"},
            severity="high",
            name="line quantity >= 1",
        ),
        _r(
            type="range",
            column="payload.unit_price",
            min=0,
            when={"event_type": "receipt_line_added"},
            severity="high",
            name="line unit_price >= 0",
        ),
        _r(
            type="regex",
            column="trace_id",
            pattern=r"^TR_[0-9]{8}_[A-Za-z0-9]+$",
            severity="medium",
            name="trace_id format TR_<date>_<id>",
        ),
        _r(
            type="regex",
            column="partition_key",
            pattern=r"^(store_\d+|dc_\d+|AD_[0-9a-f]+)$",
            severity="medium",
            name="partition_key format",
        ),
        _r(
            type="allowed_values",
            column="schema_version",
            values=["1.0"],
            severity="medium",
            name="schema_version 1.0",
        ),
        *(
            _r(
                type="datetime",
                column=f"payload.{field}",
                when={"event_type": event_type},
                format="%Y-%m-%dT%H:%M:%S%#z",
                severity="medium",
                name=f"{event_type}: {field} is a timestamp",
            )
            for event_type, field in PAYLOAD_TIMES.items()
        ),
        _r(
            type="allowed_values",
            column="payload.reason",
            values=INVENTORY_REASONS,
            when={"event_type": "inventory_updated"},
            severity="medium",
            name="inventory reason is known",
        ),
        _r(
            type="allowed_values",
            column="payload.status",
            values=["APPROVED", "DECLINED"],
            when={"event_type": "payment_processed"},
            severity="medium",
            name="payment status is known",
        ),
        _r(
            type="allowed_values",
            column="payload.priority",
            values=["NORMAL", "HIGH", "CRITICAL"],
            when={"event_type": "reorder_triggered"},
            severity="medium",
            name="reorder priority is known",
        ),
        # What disruptions cause: legitimate, notable.
        _r(
            type="allowed_values",
            column="payload.reason",
            values=[r for r in INVENTORY_REASONS if r != "SHORTAGE"],
            when={"event_type": "inventory_updated"},
            severity="medium",
            name="no shortage write-downs (inventory_shortage)",
            description="inventory_updated SHORTAGE only comes from an inventory_shortage",
        ),
        _r(
            type="allowed_values",
            column="event_type",
            values=[t for t in EVENT_TYPES if t != "stockout_detected"],
            mostly=0.9992,
            severity="low",
            name="stockouts at most 0.08% of events",
            description="healthy ~0.03%; shortages and DC outages drive it up",
        ),
        _r(
            type="allowed_values",
            column="payload.priority",
            values=["NORMAL"],
            mostly=0.75,
            when={"event_type": "reorder_triggered"},
            severity="low",
            name="reorders mostly NORMAL priority",
            description="healthy ~98% NORMAL; shortages make ~80% urgent",
        ),
        _r(
            type="freshness",
            column="ingest_timestamp",
            max_age="15m",
            severity="low",
            name="newest event at most 15 min old",
        ),
    ]
    return ruleset(
        rules,
        name="retail (built-in)",
        description="The retail event envelope: structure, conventions, disruptions.",
    )

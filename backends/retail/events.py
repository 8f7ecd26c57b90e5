"""The event envelope and the 15 payload models of the retail streaming spec.

The generator's hot path builds plain dicts in exactly these shapes (pydantic per
event would cap throughput far below the bench targets); these models are the
contract those dicts are checked against in tests and parsed with by clients.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

EVENT_TYPES: tuple[str, ...] = (
    "receipt_created",
    "receipt_line_added",
    "payment_processed",
    "inventory_updated",
    "stockout_detected",
    "reorder_triggered",
    "customer_entered",
    "customer_zone_changed",
    "ble_ping_detected",
    "truck_arrived",
    "truck_departed",
    "store_opened",
    "store_closed",
    "ad_impression",
    "promotion_applied",
)


class EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: str
    payload: dict[str, Any]
    trace_id: str
    ingest_timestamp: str
    schema_version: str = "1.0"
    source: str = "retail-datagen"
    correlation_id: str | None = None
    partition_key: str | None = None

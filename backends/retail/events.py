"""The event envelope and the 15 payload models of the retail streaming spec.

The generator's hot path builds plain dicts in exactly these shapes (pydantic per
event would cap throughput far below the bench targets); these models are the
contract those dicts are checked against in tests and parsed with by clients.
Payload models ignore unknown fields so our clients keep working against a real
service that adds some; the tests check our own payloads' key sets exactly.
Timestamps inside payloads stay strings (`2024-01-15T10:40:15Z`) so a parse and
re-dump round-trips byte for byte.
"""

from __future__ import annotations

from typing import Any, Literal

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


class ReceiptCreated(BaseModel):
    store_id: int
    customer_id: int
    receipt_id: str
    subtotal: float
    tax: float
    total: float
    tender_type: str
    item_count: int


class ReceiptLineAdded(BaseModel):
    receipt_id: str
    line_number: int
    product_id: int
    quantity: int
    unit_price: float
    extended_price: float
    promo_code: str | None = None


class PaymentProcessed(BaseModel):
    receipt_id: str
    payment_method: str
    amount: float
    transaction_id: str
    processing_time: str
    status: str


class InventoryUpdated(BaseModel):
    store_id: int | None = None
    dc_id: int | None = None
    product_id: int
    quantity_delta: int
    reason: str
    source: str


class StockoutDetected(BaseModel):
    store_id: int | None = None
    dc_id: int | None = None
    product_id: int
    last_known_quantity: int
    detection_time: str


class ReorderTriggered(BaseModel):
    store_id: int | None = None
    dc_id: int | None = None
    product_id: int
    current_quantity: int
    reorder_quantity: int
    reorder_point: int
    priority: str


class CustomerEntered(BaseModel):
    store_id: int
    sensor_id: str
    zone: str
    customer_count: int
    dwell_time: int


class CustomerZoneChanged(BaseModel):
    store_id: int
    customer_ble_id: str
    from_zone: str
    to_zone: str
    timestamp: str


class BlePingDetected(BaseModel):
    store_id: int
    beacon_id: str
    customer_ble_id: str
    rssi: int
    zone: str


class TruckArrived(BaseModel):
    truck_id: str
    dc_id: int | None = None
    store_id: int | None = None
    shipment_id: str
    arrival_time: str
    estimated_unload_duration: int


class TruckDeparted(BaseModel):
    truck_id: str
    dc_id: int | None = None
    store_id: int | None = None
    shipment_id: str
    departure_time: str
    actual_unload_duration: int


class StoreOperation(BaseModel):
    """Shared by `store_opened` and `store_closed`, as in the spec."""

    store_id: int
    operation_time: str
    operation_type: Literal["opened", "closed"]


class AdImpression(BaseModel):
    channel: str
    campaign_id: str
    creative_id: str
    customer_ad_id: str
    impression_id: str
    cost: float
    device_type: str


class PromotionApplied(BaseModel):
    receipt_id: str
    promo_code: str
    discount_amount: float
    discount_type: str
    product_ids: list[int]


PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "receipt_created": ReceiptCreated,
    "receipt_line_added": ReceiptLineAdded,
    "payment_processed": PaymentProcessed,
    "inventory_updated": InventoryUpdated,
    "stockout_detected": StockoutDetected,
    "reorder_triggered": ReorderTriggered,
    "customer_entered": CustomerEntered,
    "customer_zone_changed": CustomerZoneChanged,
    "ble_ping_detected": BlePingDetected,
    "truck_arrived": TruckArrived,
    "truck_departed": TruckDeparted,
    "store_opened": StoreOperation,
    "store_closed": StoreOperation,
    "ad_impression": AdImpression,
    "promotion_applied": PromotionApplied,
}

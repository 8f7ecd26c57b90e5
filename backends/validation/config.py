"""Configuration of the bounded streaming sources (kafka-validation.md `KafkaDataSourceConfig`).

Every field of the spec keeps its name and default. Choices where the spec is silent:

- `consume_timeout` is an idle timeout: consumption stops when no message arrived
  for that many seconds. The end offsets snapshotted at start already bound a run,
  so a large topic is never cut short by a wall-clock deadline.
- `end_offset` is exclusive, like Kafka's own end offsets: `start_offset=1000,
  end_offset=2000` reads offsets 1000..1999 of each selected partition.
- `group_id` set (the spec's default) means Kafka consumer-group semantics: a
  partition starts at the group's committed offset when it has one (else at
  `auto_offset_reset`), and processed offset + 1 is committed once per batch
  (`commit_per_batch`). `group_id=None` reads without a group and commits nothing.
- `deserializer_type="string"` is "treated as JSON" as the spec's table says, except
  that a message which is not a JSON object becomes a row `{"value": text}`
  instead of being skipped. `bytes` gives a `value` Binary column.
- `deserializer_type="avro"` uses `avro_schema` (schemaless Avro); without it but
  with `schema_registry_url` it reads the Confluent wire format; `confluent_avro`
  always expects the wire format (schema from `avro_schema` or the registry).
- `strict=True` raises `DeserializationError` at the first bad message; by default
  bad messages are skipped and reported with their partition and offset.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DeserializerType = Literal["json", "string", "bytes", "avro", "confluent_avro"]
KeyDeserializerType = Literal["json", "string", "bytes"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class StreamingDataSourceConfig(BaseModel):
    """What every bounded streaming source shares (the spec's base config)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_messages: int | None = Field(10_000, ge=1)
    consume_timeout: float = Field(30.0, gt=0)
    deserializer_type: DeserializerType = "json"
    encoding: str = "utf-8"
    avro_schema: dict[str, Any] | list[Any] | str | None = None
    schema_registry_url: str | None = None
    strict: bool = False
    include_metadata: bool = False
    metadata_prefix: str = "_kafka_"
    schema_sample_size: int = Field(100, ge=1)


class KafkaDataSourceConfig(StreamingDataSourceConfig):
    # Connection
    bootstrap_servers: str = "localhost:9092"
    topic: str
    group_id: str | None = "truthound-datasource"
    client_id: str = "streamops-validation"
    connect_timeout: float = Field(10.0, gt=0)

    # Consumption
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit_per_batch: bool = True
    fetch_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_partition_fetch_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    # Security
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None

    # Partition control
    partition: int | None = Field(None, ge=0)
    partitions: list[int] | None = None
    use_group_assignment: bool = False
    start_offset: int | None = Field(None, ge=0)
    end_offset: int | None = Field(None, ge=0)

    # Message handling
    key_deserializer: KeyDeserializerType = "string"
    include_key: bool = True
    include_headers: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> KafkaDataSourceConfig:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        if self.sasl_mechanism is not None and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs a username and password")
        if self.use_group_assignment and not self.group_id:
            raise ValueError("use_group_assignment needs a group_id")
        if self.use_group_assignment and (self.partition is not None or self.partitions):
            raise ValueError("use_group_assignment and explicit partitions exclude each other")
        if (
            self.start_offset is not None
            and self.end_offset is not None
            and self.end_offset < self.start_offset
        ):
            raise ValueError("end_offset must not be before start_offset")
        return self

    def selected_partitions(self) -> list[int] | None:
        """The partitions asked for explicitly, or None for all of the topic."""
        if self.partitions is not None:
            return sorted(set(self.partitions))
        if self.partition is not None:
            return [self.partition]
        return None

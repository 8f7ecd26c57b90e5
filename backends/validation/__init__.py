"""Bounded validation of streams: sources (Kafka, memory sink, Redis, files), rules, reports.

The names of kafka-validation.md live here, so its samples run with
`from backends.validation import ...` and `from backends import validation as th`.
"""

from backends.validation.base import (
    Batch,
    ConsumptionStats,
    PartitionStats,
    Skipped,
    ValidationSource,
)
from backends.validation.check import Checker, check
from backends.validation.config import KafkaDataSourceConfig, StreamingDataSourceConfig
from backends.validation.deserializers import (
    AvroDeserializer,
    BytesDeserializer,
    ConfluentAvroDeserializer,
    JSONDeserializer,
    MessageDeserializer,
    StringDeserializer,
)
from backends.validation.errors import (
    DeserializationError,
    KafkaConnectionError,
    KafkaDataSourceError,
    SourceError,
    StreamingDataSourceError,
)
from backends.validation.kafka_source import KafkaDataSource, from_kafka
from backends.validation.report import RuleResult, ValidationReport, merge
from backends.validation.retail_rules import retail_rules
from backends.validation.rules import Rule, RuleError, RuleSet, load_rules
from backends.validation.runner import Progress, run_validation
from backends.validation.sources import (
    BaseStreamingDataSource,
    FileSource,
    MemorySinkSource,
    RedisStreamSource,
    open_source,
)

__all__ = [
    "AvroDeserializer",
    "BaseStreamingDataSource",
    "Batch",
    "BytesDeserializer",
    "Checker",
    "ConfluentAvroDeserializer",
    "ConsumptionStats",
    "DeserializationError",
    "FileSource",
    "JSONDeserializer",
    "KafkaConnectionError",
    "KafkaDataSource",
    "KafkaDataSourceConfig",
    "KafkaDataSourceError",
    "MemorySinkSource",
    "MessageDeserializer",
    "PartitionStats",
    "Progress",
    "RedisStreamSource",
    "Rule",
    "RuleError",
    "RuleResult",
    "RuleSet",
    "Skipped",
    "SourceError",
    "StreamingDataSourceConfig",
    "StreamingDataSourceError",
    "StringDeserializer",
    "ValidationReport",
    "ValidationSource",
    "check",
    "from_kafka",
    "load_rules",
    "merge",
    "open_source",
    "retail_rules",
    "run_validation",
]

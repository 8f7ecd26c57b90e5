"""Errors of the validation sources, named as kafka-validation.md names them.

Hierarchy: `SourceError` (any source) > `StreamingDataSourceError` (the spec's
base) > `KafkaDataSourceError` > `KafkaConnectionError`; `DeserializationError`
is a `StreamingDataSourceError` so a file or Redis source raises it too.
"""

from __future__ import annotations


class SourceError(Exception):
    """Anything a validation source cannot do: bad spec, unreachable server, bad data."""


class StreamingDataSourceError(SourceError):
    """The spec's base error of streaming data sources."""


class KafkaDataSourceError(StreamingDataSourceError):
    """A Kafka-side failure: unknown topic, authorization, a broker error mid-run."""


class KafkaConnectionError(KafkaDataSourceError):
    """The brokers could not be reached (or refused us) within the timeout."""

    def __init__(self, message: str, *, bootstrap_servers: str) -> None:
        super().__init__(message)
        self.bootstrap_servers = bootstrap_servers


class DeserializationError(StreamingDataSourceError):
    """A message that does not decode; raised only in strict mode (else it is skipped)."""

    def __init__(self, message: str, *, offset: int, partition: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.partition = partition

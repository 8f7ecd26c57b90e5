"""Where the retail generator's events go: memory (default), Kafka, Redis Streams, Event Hubs.

Every sink implements `Sink` (see `base`); `build_sink` picks one by kind. Failure
kinds the sinks report in `SendResult.errors`, the same words for every sink:
`connection_timeout`, `connection_error`, `authentication`, `throttling`,
`message_too_large`, `serialization`, `unknown`. `connection_failure` is set
when the destination could not be reached (timeouts, refused or lost
connections, rejected credentials).
"""

from backends.retail.sinks.base import (
    Event,
    SendResult,
    Sink,
    SinkNotConfigured,
    SinkTestResult,
)
from backends.retail.sinks.factory import build_sink
from backends.retail.sinks.memory import MemorySink

__all__ = [
    "Event",
    "MemorySink",
    "SendResult",
    "Sink",
    "SinkNotConfigured",
    "SinkTestResult",
    "build_sink",
]

"""Export streams: Redis Streams served over cursor polling and SSE (export-stream.md)."""

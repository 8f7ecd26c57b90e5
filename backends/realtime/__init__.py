"""Realtime streams: sessions, the stream REST API and Socket.IO `stream_event`s."""

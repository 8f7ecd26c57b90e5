"""WebSocket job server (websocket-jobs.md): protocol, auth, handlers, server, client."""

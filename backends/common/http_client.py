"""What every typed HTTP client shares: one pooled httpx client and how a dead network reads.

Each service's client keeps its own error type and its own way of reading an error
body (the specs differ); the plumbing around them is the same, so it lives here.
A failure to get any answer becomes the client's error with status 0 and a code of
`TIMEOUT` or `UNREACHABLE`, so the console can say which.
"""

from __future__ import annotations

from typing import Any, Self

import httpx


class JsonApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _no_answer(self, code: str, message: str) -> Exception:
        """The client's own error for a request that got no answer."""
        raise NotImplementedError

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise self._no_answer("TIMEOUT", f"Timed out talking to {self.base_url}") from exc
        except httpx.HTTPError as exc:
            raise self._no_answer("UNREACHABLE", f"Cannot reach {self.base_url}: {exc}") from exc

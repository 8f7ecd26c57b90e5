"""Domain errors that carry the HTTP status and message a spec prescribes.

Domain cores raise these without knowing HTTP; the API adapters turn them into
the spec's error body (`{"detail": ...}` for the retail API).
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code: int = 500

    def __init__(self, detail: str, *, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ServiceError):
    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class RateLimited(ServiceError):
    status_code = 429

    def __init__(
        self, detail: str = "Rate limit exceeded. Try again later.", *, retry_after: float = 0
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

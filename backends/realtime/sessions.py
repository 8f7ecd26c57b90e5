"""Sessions and per-session counters, kept in Redis so every realtime process shares them.

A session stands for an authorised connection to a provider: an access token that
expires after `expires_in` seconds and is refreshed, for as long as the session
lives (`session_expires_at`; None = for ever, the demo session). With no Redis
configured the store is an in-process fakeredis, so embedded and scaled-out
deployments run the same code. Redis key TTLs only collect garbage; validity is
always decided against the injected clock.

Refreshing is a compare-and-set on the token's expiry (WATCH/MULTI), so when
several processes notice a token is due, exactly one refreshes it and announces it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict
from redis.exceptions import WatchError

from backends.realtime.models import PROVIDER_STREAM_TYPES, Provider, SessionInfo
from backends.realtime.quota import Quota, window_bounds

GC_GRACE_SECONDS = 86400  # how long Redis keeps a session after it can no longer be used


class Session(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    provider: Provider
    agent_id: str | None = None
    created_at: float
    expires_at: float
    expires_in: int
    session_expires_at: float | None = None

    def token_valid(self, now: float) -> bool:
        return now < self.expires_at

    def refreshable(self, now: float) -> bool:
        return self.session_expires_at is None or now < self.session_expires_at

    def usable(self, now: float) -> bool:
        """A valid token, or one that can still be refreshed."""
        return self.token_valid(now) or self.refreshable(now)

    def refresh_due(self, now: float, margin: float) -> bool:
        """Due when less than `margin` (or a quarter of the lifetime) is left."""
        return self.expires_at - now <= min(margin, self.expires_in / 4)

    def info(self, now: float) -> SessionInfo:
        return SessionInfo(
            **self.model_dump(),
            status="active" if self.usable(now) else "expired",
            stream_types=list(PROVIDER_STREAM_TYPES[self.provider]),
        )


class SessionStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:session:{session_id}"

    @staticmethod
    def _ttl(session: Session, now: float) -> int | None:
        if session.session_expires_at is None:
            return None
        end = max(session.session_expires_at, session.expires_at)
        return max(int(end - now), 1) + GC_GRACE_SECONDS

    async def create(self, session: Session, now: float) -> bool:
        """Store a new session; False (and nothing changed) if its id is taken."""
        created = await self._redis.set(
            self._key(session.session_id),
            orjson.dumps(session.model_dump()),
            ex=self._ttl(session, now),
            nx=True,
        )
        return bool(created)

    async def get(self, session_id: str) -> Session | None:
        raw = await self._redis.get(self._key(session_id))
        return Session.model_validate_json(raw) if raw else None

    async def all(self) -> AsyncIterator[Session]:
        async for key in self._redis.scan_iter(match=self._key("*"), count=500):
            raw = await self._redis.get(key)
            if raw:
                yield Session.model_validate_json(raw)

    async def refresh(self, session_id: str, seen_expires_at: float, now: float) -> Session | None:
        """Renew the token unless someone did since we saw `seen_expires_at`; None if not."""
        key = self._key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if not raw:
                    return None
                current = Session.model_validate_json(raw)
                if current.expires_at != seen_expires_at or not current.refreshable(now):
                    return None
                renewed = current.model_copy(update={"expires_at": now + current.expires_in})
                pipe.multi()
                pipe.set(key, orjson.dumps(renewed.model_dump()), ex=self._ttl(renewed, now))
                await pipe.execute()
            except WatchError:
                return None
        return renewed

    async def hit(self, name: str, key: str, limit: int, window: float, now: float) -> Quota:
        """Count one event in a fixed window shared by every process (INCR on one key)."""
        index, reset_at = window_bounds(now, window)
        counter = f"{self._prefix}:{name}:{key}:{index}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, int(window) * 2 + 60)
            count, _ = await pipe.execute()
        return Quota(limit, max(limit - count, 0), reset_at, allowed=count <= limit)

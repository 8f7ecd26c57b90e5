"""JWT verification of the `Authorization` query parameter (PyJWT).

The accepted algorithms come from the configuration, never from the token's header,
and each family only ever gets its own kind of key: HMAC algorithms the shared
secret (at least 32 bytes), RS256/ES256 the configured public key. So `alg: none`
and algorithm confusion (an HS256 token signed with the RSA public key as secret)
fail like any other bad signature. `exp`, `iat`, `sub` and `tenant_id` are
required, `iss` when configured; `leeway_seconds` absorbs clock skew. Time comes
from the injected clock, so expiry is testable without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt

from backends.common.clock import Clock
from backends.settings import JobsSettings

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
MIN_SECRET_BYTES = 32


class AuthError(Exception):
    """A token that is refused; the message is the close reason (short, no internals)."""


@dataclass(frozen=True)
class Principal:
    sub: str
    tenant_id: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    claims: dict[str, Any] = field(default_factory=dict, compare=False)


class TokenVerifier:
    def __init__(self, settings: JobsSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._keys: dict[str, Any] = {}
        for algorithm in settings.algorithms:
            if algorithm in HMAC_ALGORITHMS:
                secret = (settings.secret or "").encode()
                if len(secret) < MIN_SECRET_BYTES:
                    raise ValueError(
                        f"jobs.secret must be at least {MIN_SECRET_BYTES} bytes for {algorithm}"
                    )
                self._keys[algorithm] = secret
            else:
                if not settings.public_key:
                    raise ValueError(f"jobs.public_key (PEM) is required for {algorithm}")
                self._keys[algorithm] = jwt.algorithms.get_default_algorithms()[
                    algorithm
                ].prepare_key(settings.public_key)

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("UNAUTHORIZED: missing Authorization token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("UNAUTHORIZED: malformed token") from None
        algorithm = header.get("alg")
        key = self._keys.get(algorithm) if isinstance(algorithm, str) else None
        if key is None:
            raise AuthError(f"UNAUTHORIZED: algorithm {str(algorithm)[:16]!r} not accepted")
        settings = self._settings
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={
                    "require": ["exp", "iat", "sub", *(["iss"] if settings.issuer else [])],
                    "verify_exp": False,  # checked below against the injected clock
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"UNAUTHORIZED: missing claim {exc.claim}") from None
        except jwt.InvalidIssuerError:
            raise AuthError("UNAUTHORIZED: wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthError("UNAUTHORIZED: bad signature") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"UNAUTHORIZED: invalid token ({type(exc).__name__})") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        leeway = self._settings.leeway_seconds
        now = self._clock.now().timestamp()
        for name in ("exp", "iat", "nbf"):
            if name in claims and not isinstance(claims[name], int | float):
                raise AuthError(f"UNAUTHORIZED: claim {name} must be a number")
        if claims["exp"] <= now - leeway:
            raise AuthError("UNAUTHORIZED: token expired")
        if claims["iat"] > now + leeway:
            raise AuthError("UNAUTHORIZED: token issued in the future")
        if "nbf" in claims and claims["nbf"] > now + leeway:
            raise AuthError("UNAUTHORIZED: token not yet valid")
        tenant = claims.get("tenant_id")
        if not isinstance(tenant, str) or not tenant:
            raise AuthError("UNAUTHORIZED: missing claim tenant_id")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise AuthError("UNAUTHORIZED: missing claim sub")
        permissions = claims.get("permissions", self._settings.default_permissions)
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise AuthError("UNAUTHORIZED: permissions must be a list of strings")
        return Principal(sub, tenant, frozenset(permissions), claims)

"""API keys of the export streams: generation, hashing and constant-time checks.

A key is `key_id:secret` in the `X-API-Key` header. Only a salted digest of the
secret is stored (`HMAC-SHA256(salt, secret)`, a fresh 16-byte salt per key), and
digests are compared with `hmac.compare_digest`.

Why not PBKDF2 or another slow hash: those protect low-entropy passwords from
guessing. Our secrets are 256 random bits (`secrets.token_urlsafe(32)`), which no
offline attack can enumerate, while every poll authenticates: a deliberately slow
hash would only cost each request milliseconds of CPU.

An unknown key id is checked against a dummy digest all the same, so that the
answer takes as long whether the id exists or not.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from dataclasses import dataclass

KEY_ID_PREFIX = "ak_"
_DUMMY_SALT = bytes(16)
_DUMMY_DIGEST = hmac.new(_DUMMY_SALT, b"", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class HashedSecret:
    salt: str
    digest: str


def new_key_id(rng: random.Random | None = None) -> str:
    """A key id (`ak_` + 16 hex digits); from `rng` when ids must be reproducible (demo)."""
    token = f"{rng.getrandbits(64):016x}" if rng is not None else secrets.token_hex(8)
    return KEY_ID_PREFIX + token


def new_secret() -> str:
    """256 random bits, URL-safe (never contains the header's `:` separator)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, salt: bytes | None = None) -> HashedSecret:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()
    return HashedSecret(salt=salt.hex(), digest=digest)


def verify_secret(secret: str, stored: HashedSecret | None) -> bool:
    """Does `secret` match `stored`? `None` (unknown key id) is checked against a dummy."""
    if stored is None:
        hmac.compare_digest(hash_secret(secret, _DUMMY_SALT).digest, _DUMMY_DIGEST)
        return False
    try:
        salt = bytes.fromhex(stored.salt)
    except ValueError:
        return False
    return hmac.compare_digest(hash_secret(secret, salt).digest, stored.digest)


def parse_api_key(header: str | None) -> tuple[str, str] | None:
    """`key_id:secret` -> (key_id, secret); None when missing or malformed."""
    if not header:
        return None
    key_id, sep, secret = header.strip().partition(":")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


def admin_key_matches(provided: str | None, configured: str) -> bool:
    return provided is not None and hmac.compare_digest(provided.encode(), configured.encode())

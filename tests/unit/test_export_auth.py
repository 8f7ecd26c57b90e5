"""API-key helpers: salted digests, constant-time checks, header parsing."""

from __future__ import annotations

import random

from backends.export.auth import (
    admin_key_matches,
    hash_secret,
    new_key_id,
    new_secret,
    parse_api_key,
    verify_secret,
)


def test_hash_is_salted_and_verifies() -> None:
    secret = new_secret()
    first, second = hash_secret(secret), hash_secret(secret)
    assert first.salt != second.salt and first.digest != second.digest
    assert secret not in first.digest and len(bytes.fromhex(first.salt)) == 16
    assert verify_secret(secret, first) and verify_secret(secret, second)
    assert not verify_secret(secret + "x", first)
    assert not verify_secret(secret, None)
    assert not verify_secret(secret, type(first)(salt="not hex", digest=first.digest))


def test_secrets_and_key_ids() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) >= 43 and ":" not in s for s in secrets)
    assert new_key_id().startswith("ak_") and new_key_id() != new_key_id()
    assert new_key_id(random.Random(7)) == new_key_id(random.Random(7))


def test_parse_api_key() -> None:
    assert parse_api_key("kid:sec:ret") == ("kid", "sec:ret")
    assert parse_api_key(" kid:secret ") == ("kid", "secret")
    for bad in (None, "", "kid", "kid:", ":secret"):
        assert parse_api_key(bad) is None


def test_admin_key() -> None:
    assert admin_key_matches("s3cret", "s3cret")
    assert not admin_key_matches("s3cre", "s3cret")
    assert not admin_key_matches(None, "s3cret")

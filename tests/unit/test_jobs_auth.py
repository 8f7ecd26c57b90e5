"""JWT verification matrix: what the jobs server accepts and the reason it refuses."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from backends.common.clock import ManualClock
from backends.jobs.auth import AuthError, TokenVerifier
from backends.jobs.client import mint_token
from backends.settings import JobsSettings

SECRET = "s" * 40
clock = ManualClock()
NOW = int(clock.now().timestamp())


def claims(**changes: Any) -> dict[str, Any]:
    base = {
        "sub": "user-123",
        "tenant_id": "tenant-456",
        "permissions": ["read", "write"],
        "exp": NOW + 600,
        "iat": NOW,
        "iss": "streamops",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def verifier(**settings: Any) -> TokenVerifier:
    return TokenVerifier(JobsSettings(secret=SECRET, **settings), clock)


def refused(token: str, v: TokenVerifier | None = None) -> str:
    with pytest.raises(AuthError) as caught:
        (v or verifier()).verify(token)
    return str(caught.value)


def test_valid_token_gives_the_principal() -> None:
    principal = verifier().verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert (principal.sub, principal.tenant_id) == ("user-123", "tenant-456")
    assert principal.permissions == {"read", "write"}


def test_minted_token_is_accepted() -> None:
    settings = JobsSettings(secret=SECRET)
    token = mint_token(settings, "u", "t", permissions=["read"], now=clock.now())
    principal = TokenVerifier(settings, clock).verify(token)
    assert (principal.sub, principal.tenant_id, principal.permissions) == ("u", "t", {"read"})


def test_expired_token_is_refused_after_the_leeway() -> None:
    token = jwt.encode(claims(exp=NOW - 10), SECRET, algorithm="HS256")
    verifier(leeway_seconds=30).verify(token)  # within the leeway
    assert refused(token, verifier(leeway_seconds=5)) == "UNAUTHORIZED: token expired"


def test_token_issued_in_the_future_is_refused() -> None:
    token = jwt.encode(claims(iat=NOW + 3600), SECRET, algorithm="HS256")
    assert "issued in the future" in refused(token)


def test_wrong_signature() -> None:
    token = jwt.encode(claims(), "x" * 40, algorithm="HS256")
    assert refused(token) == "UNAUTHORIZED: bad signature"


def test_wrong_issuer_and_no_issuer_check_when_unset() -> None:
    token = jwt.encode(claims(iss="someone-else"), SECRET, algorithm="HS256")
    assert refused(token) == "UNAUTHORIZED: wrong issuer"
    assert verifier(issuer=None).verify(token).sub == "user-123"


@pytest.mark.parametrize("missing", ["sub", "tenant_id", "exp", "iat", "iss"])
def test_missing_required_claim(missing: str) -> None:
    token = jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256")
    assert refused(token) == f"UNAUTHORIZED: missing claim {missing}"


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(orjson.dumps(claims())).rstrip(b"=")
    token = (header + b"." + body + b".").decode()
    assert refused(token) == "UNAUTHORIZED: algorithm 'none' not accepted"


def test_algorithm_not_in_the_configured_list_is_refused() -> None:
    token = jwt.encode(claims(), SECRET * 2, algorithm="HS512")
    assert refused(token) == "UNAUTHORIZED: algorithm 'HS512' not accepted"


def _rsa() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_rs256_and_hs_rs_confusion() -> None:
    private, public = _rsa()
    settings = JobsSettings(algorithms=["RS256"], public_key=public)
    v = TokenVerifier(settings, clock)
    assert v.verify(jwt.encode(claims(), private, algorithm="RS256")).tenant_id == "tenant-456"
    # The classic confusion: an HS256 token whose HMAC key is the server's public key.
    forged_header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(orjson.dumps(claims())).rstrip(b"=")
    import hashlib
    import hmac

    signing_input = forged_header + b"." + body
    signature = hmac.new(public.encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    assert refused(forged, v) == "UNAUTHORIZED: algorithm 'HS256' not accepted"
    # Even with both families configured, HS tokens are checked against the secret only.
    both = TokenVerifier(
        JobsSettings(algorithms=["HS256", "RS256"], secret=SECRET, public_key=public), clock
    )
    assert refused(forged, both) == "UNAUTHORIZED: bad signature"


def test_es256_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    v = TokenVerifier(JobsSettings(algorithms=["ES256"], public_key=public), clock)
    assert v.verify(jwt.encode(claims(), key, algorithm="ES256")).sub == "user-123"


def test_short_secret_and_missing_key_are_configuration_errors() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(JobsSettings(secret="short"), clock)
    with pytest.raises(ValueError, match="public_key"):
        TokenVerifier(JobsSettings(algorithms=["RS256"]), clock)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_tokens(token: str) -> None:
    assert refused(token).startswith("UNAUTHORIZED: ")


def test_permissions_default_and_type() -> None:
    no_perms = jwt.encode(claims(permissions=None), SECRET, algorithm="HS256")
    assert verifier(default_permissions=["read"]).verify(no_perms).permissions == {"read"}
    bad = jwt.encode(claims(permissions="admin"), SECRET, algorithm="HS256")
    assert "permissions must be a list" in refused(bad)

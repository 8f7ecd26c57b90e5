"""Security for real: a dedicated broker with a SASL_PLAINTEXT listener (PLAIN and SCRAM)
and an SSL listener that requires client certificates.

The shared test broker has neither, so this module starts its own with
tests/services.py (PLAIN users in JAAS, SCRAM credentials written at format time,
PEM key and trust stores made here by a throwaway CA), and the validation source
connects through aiokafka with the spec's settings.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backends.validation import KafkaConnectionError, KafkaDataSource, KafkaDataSourceConfig
from tests import services
from tests.conftest import start_service

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
TOPIC = "secure-topic"
pytestmark = pytest.mark.kafka


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, broker_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("streamops test CA", ca_key, None, ca=True)
    broker = _certificate("127.0.0.1", broker_key, ("streamops test CA", ca_key))
    client = _certificate("validation-client", client_key, ("streamops test CA", ca_key))
    files = {
        "ca": (directory / "ca.pem", _pem(ca)),
        "keystore": (directory / "broker.pem", _pem_key(broker_key) + _pem(broker)),
        "client_cert": (directory / "client.pem", _pem(client)),
        "client_key": (directory / "client.key", _pem_key(client_key)),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in files.items()}


@pytest.fixture(scope="module")
def secure_broker(pki: dict[str, Path]) -> Iterator[services.KafkaServer]:
    tls = services.KafkaTls(keystore=pki["keystore"], truststore=pki["ca"])
    server = start_service(
        "Kafka (SASL + SSL)", lambda: services.start_kafka(sasl_users=USERS, tls=tls)
    )
    try:
        yield server
    finally:
        server.stop()


async def _fill(broker: services.KafkaServer) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for i in range(12):
            await producer.send_and_wait(TOPIC, orjson.dumps({"n": i}), partition=i % 2)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def secure_topic(secure_broker: services.KafkaServer) -> str:
    services._in_fresh_loop(lambda: _fill(secure_broker))
    return TOPIC


def sasl_source(
    broker: services.KafkaServer, mechanism: str, user: str, password: str
) -> KafkaDataSource:
    assert broker.sasl_bootstrap
    return KafkaDataSource(
        KafkaDataSourceConfig(
            bootstrap_servers=broker.sasl_bootstrap,
            topic=TOPIC,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_username=user,
            sasl_password=password,
            group_id=f"validation-{mechanism.lower()}",
            connect_timeout=10,
        )
    )


@pytest.mark.parametrize(
    ("mechanism", "user"),
    [("PLAIN", "alice"), ("SCRAM-SHA-256", "bob"), ("SCRAM-SHA-512", "alice")],
)
async def test_consumes_over_sasl(
    secure_broker: services.KafkaServer, secure_topic: str, mechanism: str, user: str
) -> None:
    source = sasl_source(secure_broker, mechanism, user, USERS[user])
    async with source:
        frame = await source.to_polars_async()
        committed = await source.commit_offsets_async()
    assert sorted(frame["n"].to_list()) == list(range(12))
    assert committed == {0: 6, 1: 6}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_wrong_password_is_a_connection_error(
    secure_broker: services.KafkaServer, secure_topic: str, mechanism: str
) -> None:
    source = sasl_source(secure_broker, mechanism, "alice", "not-the-password")
    with pytest.raises(KafkaConnectionError) as raised:
        async with source:
            pass
    assert raised.value.bootstrap_servers == secure_broker.sasl_bootstrap


async def test_consumes_over_ssl_with_a_client_certificate(
    secure_broker: services.KafkaServer, secure_topic: str, pki: dict[str, Path]
) -> None:
    assert secure_broker.ssl_bootstrap
    source = KafkaDataSource.from_connection_string(
        f"kafka://{secure_broker.ssl_bootstrap}/{TOPIC}",
        security_protocol="SSL",
        ssl_cafile=str(pki["ca"]),
        ssl_certfile=str(pki["client_cert"]),
        ssl_keyfile=str(pki["client_key"]),
        group_id=None,
    )
    async with source:
        frame = await source.to_polars_async()
    assert sorted(frame["n"].to_list()) == list(range(12))


async def test_ssl_without_a_client_certificate_is_refused(
    secure_broker: services.KafkaServer, secure_topic: str, pki: dict[str, Path]
) -> None:
    assert secure_broker.ssl_bootstrap
    source = KafkaDataSource(
        KafkaDataSourceConfig(
            bootstrap_servers=secure_broker.ssl_bootstrap,
            topic=TOPIC,
            security_protocol="SSL",
            ssl_cafile=str(pki["ca"]),
            connect_timeout=5,
        )
    )
    with pytest.raises(KafkaConnectionError):
        async with source:
            pass

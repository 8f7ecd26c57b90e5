"""Smoke tests of the real test services (tests/services.py, tests/conftest.py).

Why: every Kafka and Redis integration test trusts these fixtures, so they prove the
broker and the server are real, speak the protocol versions aiokafka and redis-py use,
and that the env switches (existing servers, required services) do what CI relies on.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.services import REPO_ROOT

N_MESSAGES = 200
N_KEYS = 20


async def test_kafka_keyed_roundtrip(kafka_bootstrap: str, kafka_topic: str) -> None:
    """Keyed messages come back complete, per-key ordered, one partition per key."""
    sent = [(f"key-{i % N_KEYS}".encode(), f"value-{i}".encode()) for i in range(N_MESSAGES)]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [await producer.send(kafka_topic, value=v, key=k) for k, v in sent]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    pairs = list(zip(sent, metadata, strict=True))
    partition_of = {key: meta.partition for (key, _), meta in pairs}
    assert all(meta.partition == partition_of[key] for (key, _), meta in pairs)
    assert len(set(partition_of.values())) > 1, "20 keys should spread over 4 partitions"

    consumer = AIOKafkaConsumer(
        kafka_topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"smoke-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received = []
    try:
        async with asyncio.timeout(30):
            while len(received) < N_MESSAGES:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    received.extend(records)
        await consumer.commit()
        partitions = [TopicPartition(kafka_topic, p) for p in range(4)]
        committed = [await consumer.committed(tp) for tp in partitions]
    finally:
        await consumer.stop()

    assert len(received) == N_MESSAGES
    assert Counter((r.key, r.value) for r in received) == Counter(sent)
    assert all(r.partition == partition_of[r.key] for r in received)
    for key in partition_of:
        assert [r.value for r in received if r.key == key] == [v for k, v in sent if k == key]
    assert sum(offset or 0 for offset in committed) == N_MESSAGES


async def test_kafka_topic_is_fresh_with_four_partitions(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    """The fixture's topic has 4 partitions and no data from other tests."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await consumer.start()
    try:
        partitions = await producer.partitions_for(kafka_topic)
        assert partitions == {0, 1, 2, 3}
        tps = [TopicPartition(kafka_topic, p) for p in partitions]
        assert set((await consumer.end_offsets(tps)).values()) == {0}
    finally:
        await consumer.stop()
        await producer.stop()


async def test_redis_stream_xadd_xrange(redis_client: aioredis.Redis) -> None:
    """XADD then XRANGE, whole and after a cursor, on a real server."""
    ids = [await redis_client.xadd("orders", {"n": str(i), "sku": f"sku-{i}"}) for i in range(5)]
    entries = await redis_client.xrange("orders")
    assert [entry_id for entry_id, _ in entries] == ids
    assert entries[2][1] == {b"n": b"2", b"sku": b"sku-2"}
    assert await redis_client.xlen("orders") == 5
    after = await redis_client.xrange("orders", min=f"({ids[1].decode()}")
    assert [entry_id for entry_id, _ in after] == ids[2:]


async def test_redis_is_a_real_server(redis_url: str, redis_client: aioredis.Redis) -> None:
    """The client talks to a redis-server on the fixture's port (not fakeredis)."""
    info = await redis_client.info("server")
    assert info["redis_version"]
    assert info["tcp_port"] == urlsplit(redis_url).port


# --- the env switches, checked in a child pytest that loads tests/conftest.py ---

OVERRIDE_TESTS = """
import os

async def test_kafka(kafka_bootstrap, kafka_topic):
    from aiokafka import AIOKafkaProducer
    assert kafka_bootstrap == os.environ["STREAMOPS_TEST_KAFKA"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(kafka_topic, b"hello")
    finally:
        await producer.stop()

async def test_redis(redis_url, redis_client):
    assert redis_url == os.environ["STREAMOPS_TEST_REDIS"]
    await redis_client.set("k", "v")
    assert (await redis_client.client_info())["db"] == 1
"""

NEEDS_REDIS_TEST = """
def test_needs_redis(redis_url):
    pass
"""


def _child_pytest(tmp_path: Path, source: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `source` as a test file under tests/conftest.py in a fresh interpreter."""
    test_file = tmp_path / "test_child.py"
    test_file.write_text(textwrap.dedent(source))
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STREAMOPS_TEST_", "STREAMOPS_REQUIRE", "PYTEST_"))
    }
    child_env.update(env)
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    argv += ["-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-rA", "-q"]
    return subprocess.run(
        [*argv, str(test_file)],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_existing_servers_are_used(tmp_path: Path, kafka_bootstrap: str, redis_url: str) -> None:
    """STREAMOPS_TEST_KAFKA/REDIS are used as given and nothing is started.

    The child cannot start servers (no jars, no redis-server) and must not skip.
    """
    result = _child_pytest(
        tmp_path,
        OVERRIDE_TESTS,
        STREAMOPS_TEST_KAFKA=kafka_bootstrap,
        STREAMOPS_TEST_REDIS=redis_url.rsplit("/", 1)[0] + "/1",
        STREAMOPS_KAFKA_LIB=str(tmp_path / "no-jars"),
        STREAMOPS_REDIS_SERVER=str(tmp_path / "no-redis-server"),
        STREAMOPS_REQUIRE_SERVICES="1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_missing_service_skips_or_fails_when_required(tmp_path: Path) -> None:
    """A missing redis-server skips its tests, but fails them under CI's switch."""
    missing = str(tmp_path / "no-redis-server")
    skipped = _child_pytest(tmp_path, NEEDS_REDIS_TEST, STREAMOPS_REDIS_SERVER=missing)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "1 skipped" in skipped.stdout
    assert "no-redis-server not found" in skipped.stdout

    failed = _child_pytest(
        tmp_path, NEEDS_REDIS_TEST, STREAMOPS_REDIS_SERVER=missing, STREAMOPS_REQUIRE_SERVICES="1"
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 error" in failed.stdout or "1 failed" in failed.stdout
    assert "STREAMOPS_REQUIRE_SERVICES=1" in failed.stdout

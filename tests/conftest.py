"""Suite-wide fixtures: real Kafka and Redis servers, started lazily.

A server starts only when a test first asks for it, once per session. To use servers
that already run, set STREAMOPS_TEST_KAFKA (bootstrap, e.g. "127.0.0.1:9092") and/or
STREAMOPS_TEST_REDIS (a redis:// URL; `redis_client` flushes its db after each test).
When a server cannot run here, its tests skip, unless STREAMOPS_REQUIRE_SERVICES=1
(CI) turns that into a failure so a broken machine never passes as green.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
import redis.asyncio as aioredis
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from tests import services

SERVICE_FIXTURES = {"kafka_bootstrap": "kafka", "redis_url": "redis"}
TOPIC_PARTITIONS = 4
S = TypeVar("S")
NODE_MODULES = Path(__file__).resolve().parents[1] / ".services" / "realtime-js" / "node_modules"


def services_required() -> bool:
    """CI sets STREAMOPS_REQUIRE_SERVICES=1: a missing service is then an error."""
    return os.environ.get("STREAMOPS_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def start_service(what: str, start: Callable[[], S]) -> S:
    """Start a server; skip its tests if it cannot run here (fail when required).

    A server that is installed but will not start is always a failure: that is a bug.
    """
    try:
        return start()
    except services.ServiceUnavailable as exc:
        problem, broken = f"{what} unavailable: {exc}", False
    except services.ServiceStartError as exc:
        problem, broken = f"{what} failed to start: {exc}", True
    # Outside the except blocks, so the report is the reason alone, not a chain.
    if broken:
        pytest.fail(problem, pytrace=False)
    unavailable(problem)


def unavailable(problem: str) -> NoReturn:
    """What this machine lacks: a skip here, a failure when services are required."""
    if services_required():
        pytest.fail(f"{problem} (required: STREAMOPS_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(problem)


def require_node_packages(*packages: str) -> Path:
    """Node.js and the npm packages a spec's JavaScript samples import
    (`make services` installs them); their `node_modules` folder."""
    if shutil.which("node") is None:
        unavailable("Node.js is not installed (make services installs it)")
    for package in packages:
        if not (NODE_MODULES / package).is_dir():
            unavailable(f"{package} is not in {NODE_MODULES} (run make services)")
    return NODE_MODULES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so `-m "not kafka"` deselects them."""
    for item in items:
        for fixture, marker in SERVICE_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real Kafka broker ("127.0.0.1:PORT")."""
    if existing := os.environ.get("STREAMOPS_TEST_KAFKA"):
        yield existing
        return
    server = start_service("Kafka", services.start_kafka)
    try:
        yield server.bootstrap
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis server ("redis://127.0.0.1:PORT/0")."""
    if existing := os.environ.get("STREAMOPS_TEST_REDIS"):
        yield existing
        return
    server = start_service("Redis", services.start_redis)
    try:
        yield server.url
    finally:
        server.stop()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topic: str) -> None:
    """Return once every partition has a leader, so the test starts on a usable topic."""
    while True:
        [described] = await admin.describe_topics([topic])
        partitions = described["partitions"]
        if (
            described["error_code"] == 0
            and len(partitions) == TOPIC_PARTITIONS
            and all(p["leader"] >= 0 for p in partitions)
        ):
            return
        await asyncio.sleep(0.1)


@pytest.fixture
async def kafka_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh topic with 4 partitions, named after the test, ready to use; then deleted."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:60].strip("-.")
    name = f"test-{stem}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, TOPIC_PARTITIONS, 1)])
        _topic, code, *_ = response.topic_errors[0]
        if code:
            raise kafka_errors.for_code(code)(f"creating topic {name}")
        async with asyncio.timeout(15):
            await _wait_for_leaders(admin, name)
        yield name
    finally:
        try:
            await admin.delete_topics([name])
        except KafkaError:
            pass  # best effort: the broker may be gone, and the name is unique anyway
        finally:
            await admin.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio Redis client on `redis_url`; its db is flushed after the test."""
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()

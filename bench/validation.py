"""Kafka validation throughput: ours vs the bare aiokafka loop vs truthound, on one topic.

One topic of `--messages` retail envelopes (default 1M) in 4 partitions, produced by
the project's Kafka sink, then consumed from the beginning to the end offsets by:
- (a) "bare aiokafka loop": `getmany` until every partition reached its end offset,
  counting records and nothing else (the ceiling; same large fetch sizes as ours);
- (b) "ours, 8 rules": `run_validation(kafka://…)` end to end — consume, decode with
  polars' `str.json_decode`, check the 8 rules below in one pass per batch, report;
  and, for reference, the same with the 47 built-in retail rules;
- (c) "truthound": truthound's `KafkaDataSource` + `th.check(df, validators=[…])`
  with the same 8 rules (truthound 3.x takes validator objects, not the spec's
  `rules=`), run by `.venv-bench/bin/python` in a temporary directory (created here
  with `pip install truthound` when missing; if that fails the run says so).
Prints messages/s and the ratios ours/bare and ours/truthound. Kafka is
$STREAMOPS_TEST_KAFKA or a broker started for the run (tests/services.py).

    .venv/bin/python bench/validation.py [--messages 1000000] [--skip-truthound]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from backends.common.clock import SystemClock
from backends.retail.events import EVENT_TYPES
from backends.retail.generator import RetailGenerator
from backends.retail.sinks.kafka import KafkaSink
from backends.retail.world import World
from backends.settings import KafkaSettings
from backends.validation import retail_rules, run_validation
from backends.validation.rules import rules_from_columns, ruleset

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"
PARTITIONS = 4
CHUNK = 20_000
FETCH = {"fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 16 * 1024 * 1024}
RULES: dict[str, Any] = {  # 8 rules, in the spec's `check(rules=...)` shape
    "event_type": ["not_null", {"type": "allowed_values", "values": list(EVENT_TYPES)}],
    "trace_id": ["not_null", "unique"],
    "ingest_timestamp": ["not_null", {"type": "datetime"}],
    "payload": ["not_null"],
    "partition_key": [{"type": "regex", "pattern": r"^(store_|dc_|AD_)"}],
}

TRUTHOUND = """
import asyncio, json, sys, time
import truthound as th
from truthound.datasources.streaming import KafkaDataSource, KafkaDataSourceConfig
from truthound.validators import (DateFormatValidator, InSetValidator, NotNullValidator,
                                  RegexValidator, UniqueValidator)

async def main():
    bootstrap, topic, n, types = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    started = time.perf_counter()
    config = KafkaDataSourceConfig(bootstrap_servers=bootstrap, topic=topic, max_messages=n,
                                   consume_timeout=60.0)
    async with KafkaDataSource(config) as source:
        df = (await source.to_polars_lazyframe_async()).collect()
    consumed = time.perf_counter()
    # truthound 3.x takes validator objects; these are the same 8 rules as ours.
    validators = [
        NotNullValidator(columns=("event_type", "trace_id", "ingest_timestamp", "payload")),
        InSetValidator(allowed_values=types, columns=("event_type",)),
        UniqueValidator(columns=("trace_id",)),
        DateFormatValidator(format="%Y-%m-%dT%H:%M:%S%.fZ", columns=("ingest_timestamp",)),
        RegexValidator(pattern=r"^(store_|dc_|AD_).*", columns=("partition_key",)),
    ]
    report = th.check(df, validators=validators)
    done = time.perf_counter()
    print(json.dumps({"messages": len(df), "seconds": done - started,
                      "consume_seconds": consumed - started, "issues": len(report.issues)}))

asyncio.run(main())
"""


def _services() -> ModuleType:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.services")


@contextlib.contextmanager
def _kafka() -> Iterator[str]:
    if existing := os.environ.get("STREAMOPS_TEST_KAFKA"):
        yield existing
        return
    server = _services().start_kafka()
    try:
        yield server.bootstrap
    finally:
        server.stop()


async def produce(bootstrap: str, topic: str, n: int) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    generator = RetailGenerator(
        world=World.build(random.Random(1)), clock=SystemClock(), rng=random.Random(2)
    )
    sink = KafkaSink(KafkaSettings(bootstrap_servers=bootstrap, topic=topic))
    await sink.open()
    started = time.perf_counter()
    try:
        pending: set[asyncio.Task[Any]] = set()
        for done in range(0, n, CHUNK):
            pending.add(asyncio.create_task(sink.send(generator.generate(min(CHUNK, n - done)))))
            if len(pending) >= 8:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        results = await asyncio.gather(*pending)
        del results
    finally:
        await sink.close()
    return time.perf_counter() - started


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def bare_loop(bootstrap: str, topic: str) -> tuple[int, float]:
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # no race with a reset to "latest" after assign()
        **FETCH,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        count = 0
        while left:
            batches = await consumer.getmany(*left, timeout_ms=500, max_records=1_000_000)
            for tp, records in batches.items():
                count += len(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    return count, time.perf_counter() - started


async def ours(bootstrap: str, topic: str, rules: Any) -> tuple[int, float, int]:
    started = time.perf_counter()
    report = await run_validation(f"kafka://{bootstrap}/{topic}", rules=rules)
    return report.summary.messages, time.perf_counter() - started, len(report.issues)


def truthound(bootstrap: str, topic: str, n: int) -> tuple[int, float] | str:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print("creating .venv-bench with `pip install truthound` ...", flush=True)
        made = subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=False)
        pip = BENCH_VENV / "bin" / "pip"
        if (
            made.returncode
            or subprocess.run(
                [str(pip), "install", "-q", "truthound", "aiokafka"], check=False
            ).returncode
        ):
            return "pip install truthound into .venv-bench failed"
    # truthound creates a `.truthound` workspace in its working directory: keep it out of ours.
    with tempfile.TemporaryDirectory() as workdir:
        proc = _truthound_run(python, workdir, bootstrap, topic, n)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"truthound failed: {last}"
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(data["messages"]), float(data["seconds"])


def _truthound_run(
    python: Path, workdir: str, bootstrap: str, topic: str, n: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", TRUTHOUND, bootstrap, topic, str(n), json.dumps(list(EVENT_TYPES))],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=workdir,
    )


def line(label: str, messages: int, seconds: float, extra: str = "") -> float:
    rate = messages / seconds if seconds else 0.0
    print(f"{label:34s} {messages:>10,d} {seconds:>8.2f} s {rate:>12,.0f} msg/s  {extra}")
    return rate


async def run(args: argparse.Namespace, bootstrap: str) -> None:
    topic = f"bench-validation-{uuid.uuid4().hex[:8]}"
    eight = ruleset(rules_from_columns(RULES), name="8 rules")
    assert len(eight) == 8
    try:
        seconds = await produce(bootstrap, topic, args.messages)
        line("produced (project Kafka sink)", args.messages, seconds)
        count, seconds = await bare_loop(bootstrap, topic)
        bare = line("(a) bare aiokafka loop", count, seconds)
        count, seconds, issues = await ours(bootstrap, topic, eight)
        mine = line("(b) ours, 8 rules", count, seconds, f"{issues} failing rules")
        count, seconds, issues = await ours(bootstrap, topic, retail_rules())
        line(
            f"    ours, {len(retail_rules())} built-in rules",
            count,
            seconds,
            f"{issues} failing rules",
        )
        if args.skip_truthound:
            other: tuple[int, float] | str = "skipped (--skip-truthound)"
        else:
            other = await asyncio.to_thread(truthound, bootstrap, topic, args.messages)
        print()
        print(f"ours / bare loop: {mine / bare:.2f}x")
        if isinstance(other, str):
            print(f"(c) truthound: unavailable: {other}")
        else:
            theirs = line("(c) truthound KafkaDataSource+check", *other)
            print(f"ours / truthound: {mine / theirs:.2f}x")
    finally:
        await delete_topic(bootstrap, topic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--skip-truthound", action="store_true")
    args = parser.parse_args()
    with _kafka() as bootstrap:
        print(f"kafka {bootstrap}, {args.messages:,} retail envelopes, {PARTITIONS} partitions")
        asyncio.run(run(args, bootstrap))


if __name__ == "__main__":
    main()

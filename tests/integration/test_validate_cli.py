"""`streamops validate` / `validate-merge`: exit codes for CI, formats, real Kafka, scale-out."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from click.testing import CliRunner

from backends.common.clock import ManualClock, SystemClock
from backends.retail.generator import RetailGenerator
from backends.retail.sinks.kafka import KafkaSink
from backends.retail.world import World
from backends.settings import KafkaSettings
from backends.validation import ValidationReport
from console.cli import cli

STREAMOPS = str(Path(sys.executable).with_name("streamops"))


def events(n: int, *, clock: Any = None, seed: int = 7) -> list[dict[str, Any]]:
    generator = RetailGenerator(
        world=World.build(random.Random(seed)),
        clock=clock or SystemClock(),
        rng=random.Random(seed + 1),
    )
    return generator.generate(n)


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in items))
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["validate", *args], catch_exceptions=False)


# -- exit codes and formats, on a file source ------------------------------------------


def test_a_clean_stream_exits_0_and_prints_json(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "clean.jsonl", events(2_000))
    result = invoke(str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    report = ValidationReport.from_json(result.stdout)
    assert report.summary.messages == 2_000 and report.passed


def test_fail_on_picks_the_severity_that_fails_the_build(tmp_path: Path) -> None:
    items = events(2_000)
    items[5]["trace_id"] = items[6]["trace_id"]  # trace_id unique: high
    items[9]["schema_version"] = "2.0"  # schema_version 1.0: medium
    path = write_jsonl(tmp_path / "bad.jsonl", items)
    assert invoke(str(path)).exit_code == 1  # default --fail-on high
    assert invoke(str(path), "--fail-on", "critical").exit_code == 0
    assert invoke(str(path), "--fail-on", "medium").exit_code == 1
    assert invoke(str(path), "--fail-on", "never").exit_code == 0
    text = invoke(str(path), "--fail-on", "never").stdout
    assert "trace_id unique" in text and "schema_version 1.0" in text and "2 rule(s) failed" in text


def test_old_events_fail_only_a_low_rule(tmp_path: Path) -> None:
    old = ManualClock(datetime(2020, 1, 1, tzinfo=UTC))
    path = write_jsonl(tmp_path / "old.jsonl", events(500, clock=old))
    assert invoke(str(path)).exit_code == 0
    result = invoke(str(path), "--fail-on", "low", "--format", "json")
    assert result.exit_code == 1
    issues = ValidationReport.from_json(result.stdout).issues
    assert "freshness" in {i.rule for i in issues} and {i.severity for i in issues} == {"low"}


def test_output_files_in_every_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", events(300))
    for fmt, head in (("md", "# Validation report"), ("html", "<!DOCTYPE html>"), ("text", "")):
        out = tmp_path / f"report.{fmt}"
        result = invoke(str(path), "--format", fmt, "--output", str(out))
        assert result.exit_code == 0
        assert "report written to" in result.stderr
        assert out.read_text().startswith(head) and "retail (built-in)" in out.read_text()


def test_custom_rules_and_max_messages(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", events(1_000))
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'name = "tiny"\n[columns]\nevent_type = [{type = "allowed_values", '
        'values = ["ad_impression"], severity = "medium"}]\n'
    )
    result = invoke(str(path), "--rules", str(rules), "--max-messages", "100", "--format", "json")
    assert result.exit_code == 0  # medium < high
    report = ValidationReport.from_json(result.stdout)
    assert report.summary.rule_set == "tiny" and report.summary.messages == 100
    assert report.rules[0].checked == 100 and not report.rules[0].passed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rules", "RULES"], "regex needs pattern"),
        (["--expect", "2"], "--expect needs --merge"),
        (["--merge", "redis://127.0.0.1:1/0"], "--merge needs --group"),
        (["--workers", "2"], "--workers needs a kafka:// source"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", events(10))
    rules = tmp_path / "bad.toml"
    rules.write_text('[[rules]]\ntype = "regex"\ncolumn = "x"\n')
    result = invoke(str(path), *[str(rules) if a == "RULES" else a for a in args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_source_errors_exit_3(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "absent.jsonl"))
    assert result.exit_code == 3 and "no such file" in result.stderr
    result = invoke("nowhere://x")
    assert result.exit_code == 3 and "unknown source" in result.stderr


# -- real Kafka ---------------------------------------------------------------------------


async def produce(bootstrap: str, topic: str, items: list[dict[str, Any]]) -> None:
    sink = KafkaSink(KafkaSettings(bootstrap_servers=bootstrap, topic=topic))
    await sink.open()
    try:
        results = await asyncio.gather(
            *(sink.send(items[i : i + 1000]) for i in range(0, len(items), 1000))
        )
        assert sum(r.sent for r in results) == len(items)
    finally:
        await sink.close()


async def produce_raw(bootstrap: str, topic: str, values: list[bytes], partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap)
    await consumer.start()  # subscribed, so the topic's metadata is known
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STREAMOPS, "validate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.kafka
async def test_end_to_end_against_kafka(kafka_bootstrap: str, kafka_topic: str) -> None:
    await produce(kafka_bootstrap, kafka_topic, events(3_000))
    await produce_raw(kafka_bootstrap, kafka_topic, [b"{broken", b"\xff\xfe"], partition=2)
    ends = await end_offsets(kafka_bootstrap, kafka_topic)
    proc = await asyncio.to_thread(
        run_cli, f"kafka://{kafka_bootstrap}/{kafka_topic}", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    report = ValidationReport.from_json(proc.stdout)
    s = report.summary
    assert s.messages == sum(ends.values()) == 3_002
    assert {p.partition: p.messages for p in s.partitions} == {p: n for p, n in ends.items() if n}
    assert sorted((m.partition, m.offset) for m in s.skipped) == [
        (2, ends[2] - 2),
        (2, ends[2] - 1),
    ]
    assert report.passed and s.rules_total == s.rules_passed
    assert {f.name for f in report.inferred_schema} >= {"payload.total", "trace_id"}
    failing = [e | {"event_type": "nope"} for e in events(10, seed=9)]
    await produce(kafka_bootstrap, kafka_topic, failing)
    proc = await asyncio.to_thread(
        run_cli, f"kafka://{kafka_bootstrap}/{kafka_topic}", "--format", "md"
    )
    assert proc.returncode == 1
    assert "| FAIL | critical | event_type is known | 10 |" in proc.stdout


@pytest.mark.kafka
async def test_two_workers_in_one_group_cover_the_topic_once(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    await produce(kafka_bootstrap, kafka_topic, events(6_000))
    ends = await end_offsets(kafka_bootstrap, kafka_topic)
    assert len([n for n in ends.values() if n]) == 4
    proc = await asyncio.to_thread(
        run_cli, f"kafka://{kafka_bootstrap}/{kafka_topic}", "--workers", "2", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    report = ValidationReport.from_json(proc.stdout)
    assert report.summary.workers == 2
    assert report.summary.messages == sum(ends.values()) == 6_000
    assert {p.partition: p.messages for p in report.summary.partitions} == ends
    unique = next(r for r in report.rules if r.name == "trace_id unique")
    assert unique.checked == 6_000 and unique.passed


@pytest.mark.kafka
@pytest.mark.redis
async def test_separate_members_merge_through_redis(
    kafka_bootstrap: str, kafka_topic: str, redis_url: str
) -> None:
    await produce(kafka_bootstrap, kafka_topic, events(4_000))
    ends = await end_offsets(kafka_bootstrap, kafka_topic)
    group = f"validate-{uuid.uuid4().hex[:8]}"
    args = [
        f"kafka://{kafka_bootstrap}/{kafka_topic}",
        "--group",
        group,
        "--merge",
        redis_url,
        "--expect",
        "2",
        "--format",
        "json",
        "--merge-timeout",
        "90",
    ]
    first, second = await asyncio.gather(
        asyncio.to_thread(run_cli, *args), asyncio.to_thread(run_cli, *args)
    )
    for proc in (first, second):
        assert proc.returncode == 0, proc.stderr
    a, b = (ValidationReport.from_json(p.stdout) for p in (first, second))
    assert a.summary.messages == b.summary.messages == sum(ends.values())
    assert {p.partition: p.messages for p in a.summary.partitions} == ends
    assert a.summary.workers == 2 and a.rules == b.rules


@pytest.mark.kafka
async def test_members_publish_to_a_kafka_topic_and_validate_merge_joins_them(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    await produce(kafka_bootstrap, kafka_topic, events(4_000))
    ends = await end_offsets(kafka_bootstrap, kafka_topic)
    group = f"validate-{uuid.uuid4().hex[:8]}"
    store = f"kafka://{kafka_bootstrap}/{kafka_topic}-reports"
    args = [f"kafka://{kafka_bootstrap}/{kafka_topic}", "--group", group, "--merge", store]
    members = await asyncio.gather(
        asyncio.to_thread(run_cli, *args), asyncio.to_thread(run_cli, *args)
    )
    for proc in members:
        assert proc.returncode == 0, proc.stderr
        assert "partial report of group" in proc.stderr
    merged = await asyncio.to_thread(
        subprocess.run,
        [
            STREAMOPS,
            "validate-merge",
            "--merge",
            store,
            "--group",
            group,
            "--expect",
            "2",
            "--format",
            "json",
            "--timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merged.returncode == 0, merged.stderr
    report = ValidationReport.from_json(merged.stdout)
    assert report.summary.messages == sum(ends.values())
    assert {p.partition: p.messages for p in report.summary.partitions} == ends
    missing = await asyncio.to_thread(
        subprocess.run,
        [
            STREAMOPS,
            "validate-merge",
            "--merge",
            store,
            "--group",
            group,
            "--expect",
            "3",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 3 and "2 of 3 members" in missing.stderr


def test_json_output_is_one_document(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", events(50))
    assert json.loads(invoke(str(path), "--format", "json").stdout)["summary"]["messages"] == 50

"""`streamops serve` with the jobs server, and `streamops jobs token|run|subscribe|cancel`."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner

from console.cli import cli
from tests.services import free_port
from tests.support import serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with serve(
        tmp_path_factory.mktemp("serve"),
        "--only",
        "retail,jobs",
        "--retail-port",
        str(free_port()),
        "--jobs-port",
        str(free_port()),
    ) as (process, credentials):
        yield {"process": process, **json.loads(credentials.read_text())}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_credentials_list_url_issuer_secret_and_demo_token(served: dict[str, Any]) -> None:
    jobs = served["jobs"]
    assert jobs["url"].startswith("ws://127.0.0.1:") and jobs["url"].endswith("/production")
    claims = jwt.decode(jobs["token"], jobs["secret"], algorithms=["HS256"], issuer=jobs["issuer"])
    assert (claims["sub"], claims["tenant_id"]) == ("demo-user", "demo-tenant")
    assert len(jobs["secret"].encode()) >= 32


def test_token_command_mints_for_the_secret(served: dict[str, Any]) -> None:
    secret = served["jobs"]["secret"]
    result = invoke(
        "jobs",
        "token",
        "--sub",
        "alice",
        "--tenant",
        "acme",
        "--secret",
        secret,
        "--permission",
        "read",
        "--lifetime",
        "60",
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), secret, algorithms=["HS256"], issuer="streamops")
    assert (claims["sub"], claims["tenant_id"], claims["permissions"]) == (
        "alice",
        "acme",
        ["read"],
    )
    assert claims["exp"] - claims["iat"] == 60


def test_run_health_and_a_report(served: dict[str, Any], tmp_path: Path) -> None:
    jobs = served["jobs"]
    conn = ["--url", jobs["url"], "--token", jobs["token"]]
    health = invoke("jobs", "run", "health", "--json", *conn)
    assert health.exit_code == 0, health.output
    assert json.loads(health.output)["status"] == "healthy"

    today = datetime.now(UTC).date().isoformat()
    payload = tmp_path / "report.json"
    payload.write_text(
        json.dumps(
            {"start_date": today, "end_date": today, "format": "csv", "report_type": "custom"}
        )
    )
    report = invoke("jobs", "run", "generate_report", "--payload", f"@{payload}", "--json", *conn)
    assert report.exit_code == 0, report.output
    data = json.loads(report.output.strip().splitlines()[-1])
    assert data["format"] == "csv" and data["url"].startswith("http://127.0.0.1:")

    human = invoke("jobs", "run", "generate_report", "--payload", payload.read_text(), *conn)
    assert human.exit_code == 0, human.output
    assert "size_bytes" in human.output and "records" in human.output


def test_errors_are_one_line(served: dict[str, Any]) -> None:
    jobs = served["jobs"]
    conn = ["--url", jobs["url"], "--token", jobs["token"]]
    bad = invoke("jobs", "run", "generate_report", "--payload", '{"format": "pdf"}', *conn)
    assert bad.exit_code == 1
    assert bad.output.startswith("error: VALIDATION_ERROR: Invalid payload.")
    missing = invoke("jobs", "cancel", "nope", *conn)
    assert (missing.exit_code, missing.output) == (1, "error: NOT_FOUND: No job 'nope'\n")
    gone = invoke("jobs", "subscribe", "nope", *conn)
    assert gone.exit_code == 1 and "NOT_FOUND" in gone.output
    refused = invoke("jobs", "run", "health", "--url", jobs["url"], "--token", "x.y.z")
    assert refused.exit_code == 1 and refused.output.startswith("error: UNAUTHORIZED:")


def test_serve_prints_the_jobs_endpoint(served: dict[str, Any]) -> None:
    process = served["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    output = process.stdout.read() if process.stdout else ""
    assert f"jobs       {served['jobs']['url']}" in output
    assert served["jobs"]["token"] in output

"""The spec's JavaScript samples (`ws` npm package) and Python sample against our server.

The connection line, request id generation, progress monitoring and error handling
samples of websocket-jobs.md, put together in one Node.js script (only the URL,
the port and the final printing are ours). Needs Node.js and `ws`, provisioned
into `.services/realtime-js` by `scripts/provision_services.sh`.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from pathlib import Path

import pytest

from backends.common.clock import SystemClock
from tests.conftest import NODE_MODULES, require_node_packages
from tests.jobs_support import make_settings, running_jobs, token

ROOT = Path(__file__).resolve().parents[2]

JS = """
const WebSocket = require('ws');
const ws = new WebSocket('URL?Authorization=TOKEN');
const requestId = `${Date.now()}-${Math.random().toString(36).substr(2, 9)}`;
const seen = { progress: [], errors: [] };

ws.on('open', () => {
  ws.send(JSON.stringify({ id: 'h-' + requestId, action: 'health', payload: {} }));
  ws.send(JSON.stringify({
    id: requestId,
    action: 'generate_report',
    payload: { start_date: 'START', end_date: 'END', format: 'csv', report_type: 'monthly' },
    metadata: { client_version: '1.0.0', trace_id: 'xyz' }
  }));
  ws.send(JSON.stringify({
    id: 'bad-' + requestId,
    action: 'generate_report',
    payload: { start_date: '01/20/2024', end_date: 'END', format: 'pdf', report_type: 'monthly' }
  }));
});

ws.on('message', (data) => {
  const msg = JSON.parse(data);
  if (msg.type === 'progress' && msg.progress.request_id === requestId) {
    seen.progress.push([msg.progress.progress, msg.progress.message]);
  }
  if (msg.type === 'error') {
    if (msg.error.code === 'VALIDATION_ERROR') {
      seen.errors.push(msg.error);
    }
  }
  if (msg.type === 'response') {
    if (msg.response.status === 'success') { seen.health = msg.response.data; }
    if (msg.response.status === 'queued') { seen.queued = msg.response; }
  }
  if (msg.type === 'result' && msg.result.request_id === requestId) {
    seen.result = msg.result;
  }
  if (seen.result && seen.errors.length) {
    console.log(JSON.stringify(seen));
    ws.close();
  }
});

ws.on('close', (code, reason) => {
  if (!seen.result) { console.log(JSON.stringify({ code, reason: reason.toString() })); }
});
"""


async def run_node(script: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        "node",
        "-e",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"NODE_PATH": str(NODE_MODULES)},
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture
def node() -> None:
    require_node_packages("ws")


@pytest.mark.usefixtures("node")
async def test_spec_javascript_samples(tmp_path: Path) -> None:
    clock = SystemClock()
    settings = make_settings(tmp_path)
    async with running_jobs(settings, clock) as backend:
        day = clock.now().date().isoformat()
        script = (
            JS.replace("URL", backend.url)
            .replace("TOKEN", token(settings, clock))
            .replace("START", day)
            .replace("END", day)
        )
        seen = await run_node(script)
        refused = await run_node(JS.replace("URL", backend.url).replace("TOKEN", "nope"))
    assert seen["health"]["status"] == "healthy"
    assert seen["queued"]["status"] == "queued" and seen["queued"]["estimated_duration"] == 120
    assert seen["progress"][-1][0] == 100
    assert seen["result"]["success"] is True
    assert seen["result"]["metadata"]["handler"] == "generate_report"
    assert seen["result"]["data"]["records"] == 0
    assert seen["errors"][0]["details"]["field"] == "payload.start_date"
    assert refused == {"code": 1008, "reason": "UNAUTHORIZED: malformed token"}


# websocket-jobs.md "SDK Examples / Python", verbatim but for the import line, the
# endpoint and token, the wrapping async function (the sample awaits at top level)
# and the final print.
PY_SAMPLE = """
import asyncio
from backends.jobs.client import JobsClient as StreamerClient

async def main():
    client = StreamerClient(
        endpoint='ENDPOINT',
        token='TOKEN'
    )

    # Async request with progress callback
    def on_progress(progress):
        print(f"{progress['progress']}% - {progress['message']}")

    result = await client.request(
        action='process_data',
        payload={
            'pipeline': 'classification',
            'data_source': {'type': 'file', 'path': '/data/input.csv'},
            'output': {'format': 'json'}
        },
        on_progress=on_progress
    )
    print(result['summary'])

asyncio.run(main())
"""


def write_input(data_dir: Path) -> None:
    """A separable two-class table at the sample's `/data/input.csv` (inside data_dir)."""
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    lines = ["x1,x2,label"] + [
        f"{i % 17},{(i * 7) % 13},{'big' if i % 17 + (i * 7) % 13 > 14 else 'small'}"
        for i in range(300)
    ]
    (data_dir / "data" / "input.csv").write_text("\n".join(lines) + "\n")


async def test_spec_python_sample(tmp_path: Path) -> None:
    clock = SystemClock()
    settings = make_settings(tmp_path)
    write_input(tmp_path / "data")
    async with running_jobs(settings, clock) as backend:
        script = PY_SAMPLE.replace("ENDPOINT", backend.url).replace("TOKEN", token(settings, clock))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "0% - Reading file source"
    assert lines[-2] == "100% - Done"
    summary = ast.literal_eval(lines[-1])
    assert summary["pipeline"] == "classification" and summary["total_records"] == 300
    assert summary["metrics"]["accuracy"] > 0.9

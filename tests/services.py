"""Real Apache Kafka and Redis servers for the integration tests.

Why real servers: the Kafka sink, validation consumer groups and the Redis Streams
store must be proven against the wire protocols they will meet in production, not
against fakes. Each server runs as a child process on free loopback ports, in its own
temp dir, and is stopped (terminate, then kill) and removed at the end.

Kafka is a single-node KRaft broker from the jars that scripts/provision_kafka.sh puts
in .services/kafka/lib; it counts as ready only once aiokafka has really talked to it.

Env: STREAMOPS_KAFKA_LIB (jar dir), STREAMOPS_REDIS_SERVER (redis-server binary),
JAVA_HOME (java), STREAMOPS_KAFKA_JAVA_OPTS (extra JVM options).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_LIB = Path(os.environ.get("STREAMOPS_KAFKA_LIB", REPO_ROOT / ".services" / "kafka" / "lib"))
PROVISION_HINT = "run `bash scripts/provision_services.sh` (what `make test` does)"

# Fast start and small footprint over throughput: tests run on 2 cores next to others.
KAFKA_JAVA_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class ServiceUnavailable(RuntimeError):
    """The service cannot run on this machine: a binary or the Kafka jars are missing."""


class ServiceStartError(RuntimeError):
    """The service is installed but did not come up; the message carries its log tail."""


class _PortInUse(ServiceStartError):
    """Lost the race for a free port to another process; worth one more try."""


def free_port() -> int:
    """A loopback port the OS just handed out (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> Callable[[], None] | None:
    """Ask Linux to SIGTERM the child if pytest dies, so no broker outlives a killed run.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only used
    from the main thread, whose end is the end of the run.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


@dataclass
class _Process:
    """A server child process, its temp dir and its log files."""

    name: str
    popen: subprocess.Popen[bytes]
    workdir: Path
    logs: tuple[Path, ...]
    _stopped: bool = field(default=False, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        """The end of each non-empty log, plus earlier ERROR lines: why a start failed.

        A broker's tail is often its shutdown sequence; the cause is logged before it.
        """
        parts = []
        for path in self.logs:
            try:
                all_lines = path.read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
            head, tail = all_lines[:-lines], all_lines[-lines:]
            errors = [line for line in head if " ERROR " in line or " FATAL " in line][:10]
            if errors:
                parts.append(f"--- first ERROR lines of {path} ---\n" + "\n".join(errors))
            if tail:
                parts.append(f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no log output in {self.workdir})"

    def log_contains(self, text: str) -> bool:
        """Whether any log of the server mentions `text` (anywhere, not just the tail)."""
        for path in self.logs:
            with contextlib.suppress(OSError):
                if text in path.read_text(errors="replace"):
                    return True
        return False

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate, kill after `timeout`, then remove the temp dir (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self.popen.kill()
                self.popen.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)
        _live.discard(self)

    __hash__ = object.__hash__


_live: set[_Process] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort when a session ends without fixture teardown (e.g. an internal error)."""
    for process in list(_live):
        process.stop(timeout=5)


def _spawn(name: str, argv: list[str], workdir: Path, *logs: Path) -> _Process:
    """Start `argv` in `workdir`; stdout and stderr go to the first of `logs`."""
    with logs[0].open("ab") as out:
        popen = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent(),
        )
    process = _Process(name, popen, workdir, logs)
    _live.add(process)
    return process


def _wait_for(process: _Process, ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `ready` until true; fail fast with the log tail if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.popen.poll()
        if code is not None:
            error = (
                _PortInUse if process.log_contains("Address already in use") else ServiceStartError
            )
            raise error(
                f"{process.name} exited with code {code} before {what}\n{process.log_tail()}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServiceStartError(
                f"{process.name} not ready ({what}) after {timeout:.0f} s\n{process.log_tail()}"
            )
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _in_fresh_loop(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an async probe on its own loop and thread, safe even inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


# --------------------------------------------------------------------------- Kafka


@dataclass
class KafkaServer:
    """A running single-node KRaft broker; `bootstrap` is what clients connect to."""

    bootstrap: str
    startup_seconds: float
    process: _Process
    sasl_bootstrap: str | None = None  # the SASL_PLAINTEXT listener, when started with users
    ssl_bootstrap: str | None = None  # the SSL listener, when started with TLS files

    def stop(self) -> None:
        """Stop the broker and delete its data."""
        self.process.stop()


def find_java() -> str | None:
    """JAVA_HOME's java, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return str(Path(java_home, "bin", "java"))
    return shutil.which("java")


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in unpadded URL-safe base64, as `random-uuid`.

    Like Kafka's own generator, never one starting with "-": the storage tool would
    read it as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass
class KafkaTls:
    """PEM files for an SSL listener that requires client certificates.

    `keystore`: the broker's unencrypted PKCS#8 private key followed by its certificate;
    `truststore`: the CA certificate(s) that sign accepted client certificates.
    """

    keystore: Path
    truststore: Path


def _secure_listeners(
    ports: dict[str, int],
    users: dict[str, str] | None,
    tls: KafkaTls | None,
) -> dict[str, str]:
    """Listeners next to PLAINTEXT (which stays the inter-broker one): SASL_PLAINTEXT
    with PLAIN users from JAAS and SCRAM users from the credentials `kafka-storage
    format --add-scram` wrote (see _scram_args); SSL with required client certificates."""
    names = [name for name in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL") if name in ports]
    settings = {
        "listeners": ",".join(
            [f"{n}://127.0.0.1:{ports[n]}" for n in names]
            + [f"CONTROLLER://127.0.0.1:{ports['CONTROLLER']}"]
        ),
        "advertised.listeners": ",".join(f"{n}://127.0.0.1:{ports[n]}" for n in names),
        "listener.security.protocol.map": ",".join(
            [f"{n}:{n}" for n in names] + ["CONTROLLER:PLAINTEXT"]
        ),
    }
    if users:
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        prefix = "listener.name.sasl_plaintext"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        settings |= {
            "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            f"{prefix}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            f"{prefix}.scram-sha-256.sasl.jaas.config": scram,
            f"{prefix}.scram-sha-512.sasl.jaas.config": scram,
        }
    if tls:
        settings |= {
            "listener.name.ssl.ssl.keystore.type": "PEM",
            "listener.name.ssl.ssl.keystore.location": str(tls.keystore),
            "listener.name.ssl.ssl.truststore.type": "PEM",
            "listener.name.ssl.ssl.truststore.location": str(tls.truststore),
            "listener.name.ssl.ssl.client.auth": "required",
        }
    return settings


def _scram_args(users: dict[str, str]) -> list[str]:
    return [
        arg
        for name, password in users.items()
        for mechanism in SASL_MECHANISMS[1:]
        for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]


def _kafka_properties(
    workdir: Path,
    broker_port: int,
    controller_port: int,
    secure_ports: dict[str, int] | None = None,
    sasl_users: dict[str, str] | None = None,
    tls: KafkaTls | None = None,
) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(workdir / "data"),
        # One node: every internal topic has one replica, and few partitions so the
        # first consumer group or transaction does not wait for 50 to be created.
        "num.partitions": "4",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # Tests join groups all the time: no 3 s wait for more members.
        "group.initial.rebalance.delay.ms": "0",
        "auto.leader.rebalance.enable": "false",
        # Few threads: the machine has 2 cores.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.threads": "1",
    }
    if secure_ports:
        ports = {"PLAINTEXT": broker_port, "CONTROLLER": controller_port, **secure_ports}
        settings |= _secure_listeners(ports, sasl_users, tls)
    return "".join(f"{key}={value}\n" for key, value in settings.items())


_LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <File name="file" fileName="{log}">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


async def _kafka_answers(bootstrap: str) -> bool:
    """True once aiokafka can bootstrap and list topics: the broker serves clients."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except (KafkaError, OSError):  # TimeoutError is an OSError
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def start_kafka(
    timeout: float = 60.0,
    attempts: int = 3,
    *,
    sasl_users: dict[str, str] | None = None,
    tls: KafkaTls | None = None,
) -> KafkaServer:
    """Format a fresh KRaft log dir and start a broker; raise if it cannot serve.

    With `sasl_users` ({name: password}) the broker also has a SASL_PLAINTEXT listener
    (`sasl_bootstrap`) taking those users over PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512;
    with `tls` an SSL listener (`ssl_bootstrap`) requiring client certificates.
    """
    java = find_java()
    if java is None:
        raise ServiceUnavailable(
            f"java not found (set JAVA_HOME or install a JRE); {PROVISION_HINT}"
        )
    if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
        raise ServiceUnavailable(f"Kafka jars missing in {KAFKA_LIB}; {PROVISION_HINT}")
    for attempt in range(1, attempts + 1):
        try:
            return _start_kafka_once(java, timeout, sasl_users, tls)
        except _PortInUse:
            if attempt == attempts:
                raise
            log.warning("Kafka lost a port race; retrying with new ports")
    raise AssertionError("unreachable")


def _start_kafka_once(
    java: str,
    timeout: float,
    sasl_users: dict[str, str] | None = None,
    tls: KafkaTls | None = None,
) -> KafkaServer:
    started = time.monotonic()
    broker_port, controller_port = free_port(), free_port()
    while controller_port == broker_port:
        controller_port = free_port()
    secure_ports: dict[str, int] = {}
    for name, wanted in (("SASL_PLAINTEXT", sasl_users), ("SSL", tls)):
        if wanted:
            port = free_port()
            while port in (broker_port, controller_port, *secure_ports.values()):
                port = free_port()
            secure_ports[name] = port
    workdir = Path(tempfile.mkdtemp(prefix="streamops-kafka-"))
    props = workdir / "server.properties"
    props.write_text(
        _kafka_properties(workdir, broker_port, controller_port, secure_ports, sasl_users, tls)
    )
    log4j = workdir / "log4j2.xml"
    log4j.write_text(_LOG4J2_XML.format(log=workdir / "server.log"))
    jvm = [
        java,
        *KAFKA_JAVA_OPTS,
        *shlex.split(os.environ.get("STREAMOPS_KAFKA_JAVA_OPTS", "")),
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={workdir}",
        "-cp",
        str(KAFKA_LIB / "*"),
    ]
    try:
        formatted = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                random_cluster_id(),
                "-c",
                str(props),
                *_scram_args(sasl_users or {}),
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServiceStartError(f"Kafka storage format took over {timeout:.0f} s") from exc
    if formatted.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServiceStartError(
            f"Kafka storage format failed ({formatted.returncode}):\n"
            f"{formatted.stdout}\n{formatted.stderr}"
        )
    process = _spawn(
        f"Kafka broker on 127.0.0.1:{broker_port}",
        [*jvm, "kafka.Kafka", str(props)],
        workdir,
        workdir / "stdout.log",  # JVM-level output: crashes before log4j is up
        workdir / "server.log",  # the broker's own log (log4j2)
    )
    bootstrap = f"127.0.0.1:{broker_port}"
    try:
        _wait_for(process, lambda: _port_open(broker_port), timeout, "listening")
        remaining = max(5.0, timeout - (time.monotonic() - started))
        _wait_for(
            process,
            lambda: _in_fresh_loop(lambda: _kafka_answers(bootstrap)),
            remaining,
            "answering aiokafka",
        )
    except BaseException:
        process.stop(timeout=5)
        raise
    elapsed = time.monotonic() - started
    log.info("Kafka broker %s ready in %.1f s", bootstrap, elapsed)
    sasl, ssl_port = secure_ports.get("SASL_PLAINTEXT"), secure_ports.get("SSL")
    return KafkaServer(
        bootstrap,
        elapsed,
        process,
        sasl_bootstrap=f"127.0.0.1:{sasl}" if sasl else None,
        ssl_bootstrap=f"127.0.0.1:{ssl_port}" if ssl_port else None,
    )


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """A running throwaway redis-server; `url` points at its db 0."""

    url: str
    startup_seconds: float
    process: _Process

    def stop(self) -> None:
        """Stop the server and delete its dir."""
        self.process.stop()


def find_redis_server() -> str | None:
    """STREAMOPS_REDIS_SERVER (a path or a name on PATH), else redis-server on PATH."""
    return shutil.which(os.environ.get("STREAMOPS_REDIS_SERVER", "redis-server"))


def _redis_pings(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis(timeout: float = 15.0, attempts: int = 3) -> RedisServer:
    """Start redis-server on a free loopback port without persistence; wait for PING."""
    binary = find_redis_server()
    if binary is None:
        wanted = os.environ.get("STREAMOPS_REDIS_SERVER", "redis-server")
        raise ServiceUnavailable(f"{wanted} not found; {PROVISION_HINT}")
    for attempt in range(1, attempts + 1):
        try:
            return _start_redis_once(binary, timeout)
        except _PortInUse:
            if attempt == attempts:
                raise
            log.warning("redis-server lost a port race; retrying with a new port")
    raise AssertionError("unreachable")


def _start_redis_once(binary: str, timeout: float) -> RedisServer:
    started = time.monotonic()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="streamops-redis-"))
    argv = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
        "--daemonize", "no",
        "--logfile", "",
    ]  # fmt: skip
    process = _spawn(f"redis-server on 127.0.0.1:{port}", argv, workdir, workdir / "redis.log")
    try:
        _wait_for(process, lambda: _redis_pings(port), timeout, "answering PING")
    except BaseException:
        process.stop(timeout=5)
        raise
    elapsed = time.monotonic() - started
    log.info("redis-server on port %d ready in %.2f s", port, elapsed)
    return RedisServer(f"redis://127.0.0.1:{port}/0", elapsed, process)

"""Real Apache Kafka (KRaft) and redis-server on loopback, without Docker.

The broker jars come from Maven Central through Maven (the only place these machines can
fetch Java artifacts from) into a cache folder outside the repository, reused across runs.
Both servers are started in their own process sessions so `stop` can kill the whole group
and leave nothing behind. Used by `vigil dev up|down|status` and by the test fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_VERSION = "1.7.36"
KAFKA_HEAP = "-Xms256m -Xmx512m"


class ServiceError(RuntimeError):
    """A service could not be resolved, started or reached; the message says why in one line."""


def cache_dir() -> Path:
    root = os.environ.get("VIGIL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "vigil"
    )
    return Path(root)


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports. Each socket stays bound until all are picked:
    the kernel may hand a just-closed port out again, and two workers started with the
    same web port (`free_port()` twice) left one of them dead at start-up while the other
    answered both health checks (a chaos test then waited on a group of none)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vigil</groupId><artifactId>kafka-broker-jars</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId><version>{slf4j}</version></dependency>
  </dependencies>
</project>
"""


def kafka_libs() -> Path:
    """Resolve the broker's runtime classpath once; later calls return the cached folder."""
    libs = cache_dir() / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is not installed: it is needed to fetch the Kafka jars")
    libs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, slf4j=SLF4J_VERSION))
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise ServiceError(f"Maven could not resolve Kafka {KAFKA_VERSION}: {' | '.join(tail)}")
    marker.touch()
    return libs


@dataclass
class ServiceProcess:
    name: str
    pid: int
    port: int
    data_dir: str
    log: str
    argv: list[str] = field(default_factory=list)
    """The command that runs it: `restart` runs it again on the same port and data (empty
    in state written by an older Vigil, which `dev down` can still stop)."""

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        if self.name == "kafka":
            wait_for_kafka(f"127.0.0.1:{self.port}", timeout_s, pid=self.pid, log=Path(self.log))
        else:
            wait_for_redis(f"redis://127.0.0.1:{self.port}/0", timeout_s)

    def kill(self, hard: bool = False) -> None:
        """Stop it (SIGKILL at once when `hard`, as a crash would), keeping its data."""
        _kill_group(self.pid, grace_s=0 if hard else 10.0)

    def restart(self) -> None:
        """Start it again from its data (a broker or Redis coming back after a failure)."""
        self.pid = _spawn(self.argv, Path(self.log))
        self.wait_ready()


@dataclass
class LocalServices:
    """What `start` launched; serialisable so `dev down` in another process can stop it."""

    kafka: ServiceProcess
    redis: ServiceProcess

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def exports(self) -> str:
        return exports(self.kafka_bootstrap, self.redis_url)

    def to_json(self) -> str:
        return json.dumps({"kafka": asdict(self.kafka), "redis": asdict(self.redis)})

    @classmethod
    def from_json(cls, text: str) -> LocalServices:
        raw = json.loads(text)
        return cls(kafka=ServiceProcess(**raw["kafka"]), redis=ServiceProcess(**raw["redis"]))

    def alive(self) -> bool:
        return all(_pid_alive(p.pid) for p in (self.kafka, self.redis))

    def stop(self) -> None:
        for proc in (self.kafka, self.redis):
            _kill_group(proc.pid)
            shutil.rmtree(proc.data_dir, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours still answers kill(0); reap it
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _kill_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL after `grace_s` (at once when it is 0)."""
    if grace_s > 0:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _pid_alive(pid):
        time.sleep(0.05)


def _spawn(cmd: list[str], log: Path, cwd: Path | None = None) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    return proc.pid


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError("java is not installed: Kafka needs a Java 17 runtime")
    return java


def _kafka_properties(port: int, controller_port: int, log_dirs: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={log_dirs}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.segment.bytes=67108864",
            "log.retention.hours=168",
            "message.max.bytes=4194304",
            "num.network.threads=2",
            "num.io.threads=4",
            "",
        ]
    )


def start_kafka(work: Path, timeout_s: float = 90.0) -> ServiceProcess:
    libs = kafka_libs()
    java = _java()
    data = work / "kafka"
    data.mkdir(parents=True, exist_ok=True)
    port, controller_port = free_ports(2)
    props = data / "server.properties"
    props.write_text(_kafka_properties(port, controller_port, data / "logs"))
    log = work / "kafka.log"
    jvm = [
        java,
        *KAFKA_HEAP.split(),
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{libs}/*",
    ]
    fmt = subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props)],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise ServiceError(f"Kafka storage format failed: {fmt.stderr.strip()[-300:]}")
    return _launch("kafka", [*jvm, "kafka.Kafka", str(props)], port, data, log, timeout_s)


def _launch(
    name: str, argv: list[str], port: int, data: Path, log: Path, timeout_s: float
) -> ServiceProcess:
    """Spawn and wait until it answers; on failure nothing is left running."""
    proc = ServiceProcess(name, _spawn(argv, log), port, str(data), str(log), argv)
    try:
        proc.wait_ready(timeout_s)
    except ServiceError:
        proc.kill(hard=True)
        raise
    return proc


def _cluster_id() -> str:
    """Kafka wants a base64url UUID without padding (what `kafka-storage random-uuid` prints).

    One in 64 of those starts with '-', which the storage tool's argument parser takes for
    an option ("--cluster-id/-t: expected one argument"); Kafka's own `Uuid.randomUuid`
    draws again in that case, and so does this (found by CI, 1 start in 64 failing)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def wait_for_kafka(
    bootstrap: str, timeout_s: float, pid: int | None = None, log: Path | None = None
) -> None:
    """Block until the broker answers a metadata request (not just an open port)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if pid is not None and not _pid_alive(pid):
            tail = log.read_text()[-500:] if log and log.exists() else ""
            raise ServiceError(f"Kafka exited during start-up: {tail.strip()}")
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    raise ServiceError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s ({last})")


def start_redis(work: Path, timeout_s: float = 20.0, appendonly: bool = False) -> ServiceProcess:
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceError(
            "redis-server is not installed (Debian: apt-get install -y redis-server)"
        )
    data = work / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = work / "redis.log"
    cmd = [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "always",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    return _launch("redis", cmd, port, data, log, timeout_s)


def wait_for_redis(url: str, timeout_s: float) -> None:
    import redis

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            client = redis.Redis.from_url(url, socket_timeout=1)
            try:
                client.ping()
                return
            finally:
                client.close()
        except (redis.RedisError, OSError) as exc:
            last = str(exc)
            time.sleep(0.1)
    raise ServiceError(f"Redis at {url} did not answer within {timeout_s:.0f}s ({last})")


def start(work: Path, redis_appendonly: bool = False) -> LocalServices:
    """Start Redis and Kafka under `work`; on any failure nothing is left running."""
    work.mkdir(parents=True, exist_ok=True)
    redis_proc = start_redis(work, appendonly=redis_appendonly)
    try:
        kafka_proc = start_kafka(work)
    except BaseException:
        _kill_group(redis_proc.pid)
        raise
    return LocalServices(kafka=kafka_proc, redis=redis_proc)


def exports(kafka_bootstrap: str, redis_url: str) -> str:
    return f"export VIGIL_KAFKA_BOOTSTRAP={kafka_bootstrap}\nexport VIGIL_REDIS_URL={redis_url}"


def configured(timeout_s: float) -> tuple[str, str] | None:
    """(bootstrap, Redis URL) named by VIGIL_KAFKA_BOOTSTRAP and VIGIL_REDIS_URL once both
    answer; None when they are not both set; ServiceError when set but not answering."""
    bootstrap, redis_url = (
        os.environ.get("VIGIL_KAFKA_BOOTSTRAP"),
        os.environ.get("VIGIL_REDIS_URL"),
    )
    if not (bootstrap and redis_url):
        return None
    wait_for_kafka(bootstrap, timeout_s)
    wait_for_redis(redis_url, timeout_s)
    return bootstrap, redis_url


def dev_state_dir() -> Path:
    """Where `dev up` keeps its state and data (VIGIL_DEV_DIR overrides, for tests)."""
    return Path(os.environ.get("VIGIL_DEV_DIR") or cache_dir() / "dev")


def dev_up() -> tuple[LocalServices, bool]:
    """Idempotent: returns the running services and whether this call started them."""
    state = dev_state_dir() / "services.json"
    if state.exists():
        running = LocalServices.from_json(state.read_text())
        if running.alive():
            return running, False
        running.stop()
        state.unlink()
    services = start(Path(tempfile.mkdtemp(prefix="run-", dir=_ensure(dev_state_dir()))))
    state.write_text(services.to_json())
    return services, True


def dev_status() -> LocalServices | None:
    state = dev_state_dir() / "services.json"
    if not state.exists():
        return None
    services = LocalServices.from_json(state.read_text())
    return services if services.alive() else None


def dev_down() -> bool:
    """Stop what `dev_up` started and remove its data; False when nothing was running."""
    state = dev_state_dir() / "services.json"
    if not state.exists():
        return False
    services = LocalServices.from_json(state.read_text())
    services.stop()
    state.unlink()
    for run in dev_state_dir().glob("run-*"):
        shutil.rmtree(run, ignore_errors=True)
    return True


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def spawn_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`vigil worker` as a child process with `env` added to this one's, logging to `log`
    (tests and benchmarks: the worker exactly as an operator runs it)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=out,
        )


def worker_healthy(port: int) -> bool:
    """Whether the worker on `port` answers /health with 200."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_worker_healthy(
    proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 60
) -> None:
    """Until the worker answers /health; RuntimeError with its log if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
        if worker_healthy(port):
            return
        time.sleep(0.3)
    raise TimeoutError(f"worker not healthy in {timeout_s:.0f}s: {log.read_text()[-2000:]}")


def stop_worker(proc: subprocess.Popen[bytes], grace_s: float = 30) -> None:
    """SIGTERM (a graceful Faust shutdown), then SIGKILL after `grace_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

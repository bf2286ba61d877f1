"""Start the reference backend as a child process: the console's training default."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

TRAINING_SPEED = 60  # a simulated day passes in 24 minutes: enough happens to train on
RESTART_BACKOFF_CAP = 30.0


def simulator_command(args: list[str]) -> list[str]:
    if getattr(sys, "frozen", False):  # a PyInstaller bundle runs its own executable
        # On Windows the windowed executable may have no stdout to report its
        # address on; its console twin has (build.spec).
        cli = Path(sys.executable).with_name("em-console-cli.exe")
        return [str(cli) if cli.exists() else sys.executable, "simulator", *args]
    return [sys.executable, "-m", "console.simulator", *args]


class EmbeddedSimulator:
    """The simulator as a child process. With `keep_alive`, a child that dies is
    started again on the same port and state file, so the console's URL stays
    right and its stream resumes; `on_restart` is told, in words for the operator."""

    def __init__(self, state: Path | None, wearers: int | None = None,
                 speed: float = TRAINING_SPEED, extra: list[str] = (),
                 keep_alive: bool = False, on_restart: Callable[[str], None] | None = None):
        self._args = ["--speed", str(speed), "--exit-with-parent", *extra]
        if state is not None:
            self._args += ["--state", str(state)]
        if wearers is not None:
            self._args += ["--wearers", str(wearers)]
        self.on_restart = on_restart
        self.restarts = 0
        self._lock = threading.Lock()  # process replacement against stop()
        self._stopping = False
        self._stopped = threading.Event()
        self.process, self.url = self._launch(0)
        self.port = int(self.url.rsplit(":", 1)[1])
        if keep_alive:
            threading.Thread(target=self._keep_alive, name="training-backend-watch",
                             daemon=True).start()

    def _launch(self, port: int) -> tuple[subprocess.Popen, str]:
        # The child watches its stdin pipe: if we die without stopping it, it exits too.
        process = subprocess.Popen(simulator_command(["--port", str(port), *self._args]),
                                   stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                   # no console window flashing up on Windows
                                   creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        line = process.stdout.readline()
        if not line:
            code = process.wait(10)
            raise RuntimeError(f"the embedded simulator exited ({code}) before it listened")
        return process, json.loads(line)["url"]

    def _keep_alive(self) -> None:
        while True:
            code = self.process.wait()
            attempt = 0
            while True:
                with self._lock:
                    if self._stopping:
                        return
                    try:
                        self.process, _ = self._launch(self.port)
                        break
                    except (RuntimeError, OSError) as e:  # e.g. the port is briefly taken
                        delay = min(RESTART_BACKOFF_CAP, 2.0 ** attempt)
                        log.warning("restarting the training backend failed (%s); "
                                    "again in %.0f s", e, delay)
                        attempt += 1
                if self._stopped.wait(delay):
                    return
            self.restarts += 1
            log.warning("the training backend exited (%s) and was restarted", code)
            if self.on_restart is not None:
                self.on_restart(f"The training backend stopped (exit code {code}) and was "
                                f"restarted at {time.strftime('%H:%M:%S')} on the same data.")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._stopped.set()
            process = self.process
        process.stdin.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

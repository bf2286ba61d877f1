"""Start the reference backend as a child process: the console's training default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TRAINING_SPEED = 60  # a simulated day passes in 24 minutes: enough happens to train on


def simulator_command(args: list[str]) -> list[str]:
    if getattr(sys, "frozen", False):  # a PyInstaller bundle runs its own executable
        # On Windows the windowed executable may have no stdout to report its
        # address on; its console twin has (build.spec).
        cli = Path(sys.executable).with_name("em-console-cli.exe")
        return [str(cli) if cli.exists() else sys.executable, "simulator", *args]
    return [sys.executable, "-m", "console.simulator", *args]


class EmbeddedSimulator:
    def __init__(self, state: Path | None, wearers: int | None = None,
                 speed: float = TRAINING_SPEED, extra: list[str] = ()):
        args = ["--port", "0", "--speed", str(speed), "--exit-with-parent", *extra]
        if state is not None:
            args += ["--state", str(state)]
        if wearers is not None:
            args += ["--wearers", str(wearers)]
        # The child watches this pipe: if we die without stopping it, it exits too.
        self.process = subprocess.Popen(simulator_command(args), stdout=subprocess.PIPE,
                                        stdin=subprocess.PIPE,
                                        # no console window flashing up on Windows
                                        creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(10)
            raise RuntimeError(f"the embedded simulator exited ({code}) before it listened")
        self.url: str = json.loads(line)["url"]

    def stop(self) -> None:
        self.process.stdin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

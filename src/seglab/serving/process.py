"""`seglab serve` in a process of its own, for the browser test and the load test: started on a
port the system picks (--port 0, so no two runs race for one), waited for until GET /health
answers, and stopped (interrupted, then killed if it lingers)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

SERVING_LINE = re.compile(r"^serving .* at (http://\S+/) \(", re.MULTILINE)


class ServerProcess:
    """``with ServerProcess(models, log=path, options=[...]) as server:`` then ``server.url``
    ("http://127.0.0.1:PORT/") and ``server.pid``. The server's output goes to ``log`` (a file:
    a pipe nobody reads would stall it)."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        log: str | os.PathLike,
        options: Sequence[str] = (),
        timeout: float = 300,
    ):
        self.command = [sys.executable, "-m", "seglab", "serve", *map(str, models)]
        self.command += ["--port", "0", *options]
        self.log, self.timeout = Path(log), timeout
        self.process: subprocess.Popen | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=environment
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"seglab serve exited ({self.process.returncode}):\n{self.log.read_text()}"
                )
            found = SERVING_LINE.search(self.log.read_text())
            if found:
                self.url = found.group(1)
                try:
                    with urllib.request.urlopen(self.url + "health", timeout=5) as response:
                        if response.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(
            f"seglab serve did not answer in {self.timeout:g} s:\n{self.log.read_text()}"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

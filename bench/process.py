"""The worker under test, as a subprocess: `python -m worker migrate`, then `worker`.

Its JSON log lines go to a file that the benchmark reads; RSS and CPU time come from /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LogLine = dict[str, Any]


class WorkerFailed(RuntimeError):
    """The worker exited, or never said what the benchmark waited for."""


class WorkerProcess:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = {
            **env,
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        }
        self.log_path = workdir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.lines: list[LogLine] = []
        self._offset = 0
        self._partial = b""
        self._runs = 0

    async def migrate(self) -> None:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "worker", "migrate"],
            env=self.env,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise WorkerFailed(f"migrate failed: {done.stderr.decode()[-2000:]}")

    def start(self) -> float:
        """Start the worker; returns the wall-clock time just before the process was created."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("worker already running")
        self.read_new()
        log = self.log_path.open("ab")
        if self._partial:  # a killed worker's unfinished line: end it, don't glue onto it
            log.write(b"\n")
            self._partial = b""
            self._offset += 1
        log.flush()
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, *self._profiler(), "-m", "worker", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        print(f"bench: worker pid {self.proc.pid}", file=sys.stderr, flush=True)
        return self.started_at

    def _profiler(self) -> list[str]:
        """BENCH_CPROFILE_DIR=dir: the worker runs under cProfile, its stats saved in dir on a
        clean stop (not after kill -9)."""
        directory = self.env.get("BENCH_CPROFILE_DIR")
        if not directory:
            return []
        self._runs += 1
        return [
            "-m",
            "cProfile",
            "-o",
            str(Path(directory) / f"worker-{os.getpid()}-{self._runs}.prof"),
        ]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- logs --------------------------------------------------------------------------------
    def read_new(self) -> None:
        """Parse the log lines written since the last call (non-JSON lines are skipped)."""
        if not self.log_path.exists():
            return
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            if raw.startswith(b"{"):
                try:
                    self.lines.append(json.loads(raw))
                except ValueError:
                    continue

    async def wait_log(
        self,
        event: str,
        predicate: Callable[[LogLine], bool] | None = None,
        *,
        since: int = 0,
        within: float = 60.0,
    ) -> LogLine:
        """The first log line named `event` (from line index `since`) that matches."""
        deadline = time.monotonic() + within
        while True:
            self.read_new()
            for line in self.lines[since:]:
                if line.get("event") == event and (predicate is None or predicate(line)):
                    return line
            if not self.running():
                self.read_new()
                raise WorkerFailed(f"worker exited while waiting for {event}: {self.tail()}")
            if time.monotonic() > deadline:
                raise WorkerFailed(f"no {event} log line within {within:.0f} s: {self.tail()}")
            await asyncio.sleep(0.05)

    def mark(self) -> int:
        """The index of the next log line: `since=` for waiting on what happens from now."""
        self.read_new()
        return len(self.lines)

    def tail(self, count: int = 5) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.strip().splitlines()[-count:])

    def count(self, event: str) -> int:
        self.read_new()
        return sum(1 for line in self.lines if line.get("event") == event)

    # -- /proc -------------------------------------------------------------------------------
    def memory_mib(self) -> dict[str, float]:
        """VmRSS (now) and VmHWM (peak) of the worker, MiB."""
        values: dict[str, float] = {}
        for row in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = row.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                values[key] = int(rest.split()[0]) / 1024
        return {
            "rss": round(values.get("VmRSS", 0.0), 1),
            "peak": round(values.get("VmHWM", 0.0), 1),
        }

    def cpu_seconds(self) -> float:
        """User + system CPU time the worker used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    # -- ending ------------------------------------------------------------------------------
    def kill(self) -> None:
        """kill -9: no drain, no clean-up (what a crash looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    async def stop(self, within: float = 60.0) -> None:
        """SIGTERM (drain), then SIGKILL if it takes longer than `within` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            self.kill()

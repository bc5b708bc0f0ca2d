"""`twap worker` as a real child process, for the tests that kill it (-9 or SIGTERM).

The child gets its settings only from TWAP_* environment variables (none inherited from the
test run), writes its JSON log lines to a file of its own, and is watched through that file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.harness import FAST_TIMINGS

REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_env(
    amqp_url: str, database_url: str, namespace: str, ledger: Path, **settings: object
) -> dict[str, str]:
    """The child's environment: no TWAP_* from the parent, then the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWAP_", "ALPACA_", "APCA_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    values: dict[str, object] = {
        "amqp_url": amqp_url,
        "database_url": database_url,
        "namespace": namespace,
        "sim_ledger_path": ledger,
        "broker": "sim",
        **FAST_TIMINGS,
    }
    values.update(settings)
    env.update({f"TWAP_{key.upper()}": _env_value(value) for key, value in values.items()})
    return env


def _env_value(value: object) -> str:
    """A setting as the child reads it from its environment (booleans as `true`/`false`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class WorkerProcess:
    """One run of `python -m worker worker` (or of `command`); its log lines land in `log_path`."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        command: Sequence[str] = (sys.executable, "-m", "worker", "worker"),
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.command = tuple(command)
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.killed_at: float | None = None

    async def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (other output, such as a CLI error, is skipped)."""
        if not self.log_path.exists():
            return []
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue  # a line cut short by kill -9
        return out

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]

    async def wait_for_log(self, event: str, within: float = 20.0, count: int = 1) -> None:
        """Until `event` was logged `count` times; fails early if the process died."""
        deadline = time.monotonic() + within
        while len(self.logged(event)) < count:
            if not self.alive:
                raise AssertionError(
                    f"worker exited ({self.returncode}) before {event}:\n{self.text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} within {within} s:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.05)

    async def wait_ready(self, within: float = 20.0) -> None:
        """Active, recovered and consuming."""
        await self.wait_for_log("amqp.connected", within)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind runs in the child."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.killed_at = time.time()
            self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, within: float = 60.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), within)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    async def stop(self) -> None:
        """Test clean-up: SIGTERM, then kill -9 if it does not go."""
        if not self.alive:
            return
        self.terminate()
        try:
            await self.wait(30)
        except TimeoutError:
            self.kill()
            await self.wait(10)


async def stop_all(*processes: WorkerProcess | None) -> None:
    """Test clean-up: stop each in turn; one never started (or None) or already gone is skipped."""
    for process in processes:
        if process is not None:
            await process.stop()

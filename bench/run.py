"""One benchmark run: temp directory, fresh database, unique namespace, AMQP client, worker."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.client import BenchClient, EventRecorder
from bench.environment import Database, Services, fresh_database
from bench.process import WorkerProcess
from worker.messaging.topology import Names


@dataclass
class Run:
    name: str
    quick: bool
    run_id: str
    database: Database
    names: Names
    worker: WorkerProcess
    client: BenchClient
    events: EventRecorder
    ledger_path: Path

    async def start_worker(self, within: float = 60.0) -> float:
        """Start the worker and wait until it consumes requests; returns its start time."""
        since = self.worker.mark()
        started = self.worker.start()
        await self.worker.wait_log("amqp.connected", since=since, within=within)
        return started


def worker_env(database: Database, namespace: str, amqp_url: str, ledger: Path) -> dict[str, str]:
    # Other TWAP_* settings (TWAP_BATCH_SIZE=... to try a tuning) pass through unchanged.
    env = dict(os.environ)
    env.update(
        {
            "TWAP_AMQP_URL": amqp_url,
            "TWAP_DATABASE_URL": database.url,
            "TWAP_NAMESPACE": namespace,
            "TWAP_BROKER": "sim",
            "TWAP_SIM_LEDGER_PATH": str(ledger),
            "TWAP_LOG_JSON": "true",
            "TWAP_LOG_LEVEL": os.environ.get("TWAP_LOG_LEVEL", "INFO"),
            "TWAP_STATS_INTERVAL_SECONDS": "1",
            "TWAP_HTTP_PORT": "0",
        }
    )
    return env


@asynccontextmanager
async def bench_run(
    name: str, quick: bool, services: Services, *, bindings: list[str], keep_bodies: set[str]
) -> AsyncIterator[Run]:
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix=f"twap-bench-{name}-") as tmp:
        workdir = Path(tmp)
        async with fresh_database(services, workdir) as database:
            names = Names(f"bench_{name}_{run_id}")
            ledger = workdir / "ledger.jsonl"
            worker = WorkerProcess(
                worker_env(database, names.namespace, services.amqp_url, ledger), workdir
            )
            await worker.migrate()
            client = BenchClient(services.amqp_url, names)
            events = await client.open(bindings, keep_bodies)
            try:
                yield Run(name, quick, run_id, database, names, worker, client, events, ledger)
            finally:
                await worker.stop()
                await client.close()
                keep = os.environ.get("BENCH_KEEP_DIR")
                if keep:  # the worker's log and the sim ledger, for a look afterwards
                    target = Path(keep) / f"{name}-{run_id}"
                    target.mkdir(parents=True, exist_ok=True)
                    for found in (worker.log_path, ledger):
                        if found.exists():
                            shutil.copy(found, target / found.name)

"""The image's CMD and HEALTHCHECK, run as a container would run them: the Dockerfile's ENV and
nothing else from this process, the installed wheel on PATH, outside the repository, against the
real RabbitMQ."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.packaging.dockerfile import exec_form, final_env, healthcheck, parse
from tests.packaging.installed import clean_env, run
from tests.support.harness import Harness, submit_body, worker_settings
from tests.support.worker_process import WorkerProcess, stop_all

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_image_command_serves_and_its_health_check_tells(
    venv: Path, amqp_url: str, namespace: str, http_port: int, tmp_path: Path
) -> None:
    """CMD migrates and runs a worker that answers a submit; HEALTHCHECK fails before it
    consumes and passes once it does; SIGTERM reaches the worker, which exits 0."""
    steps = parse()
    (command,) = [exec_form(s.value) for s in steps if s.name == "CMD"]
    (check,) = [healthcheck(s.value)[1] for s in steps if s.name == "HEALTHCHECK"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'twap.db'}"
    env = clean_env(
        tmp_path,
        **final_env(steps),
        TWAP_AMQP_URL=amqp_url,
        TWAP_DATABASE_URL=url,
        TWAP_NAMESPACE=namespace,
        TWAP_HTTP_PORT=str(http_port),
    )
    env["PATH"] = f"{venv}{os.pathsep}{env['PATH']}"
    harness = Harness(worker_settings(amqp_url, url, namespace))
    await harness.open()  # declares the namespace, and deletes it at the end
    worker = WorkerProcess(env, tmp_path / "worker.log", command=command, cwd=tmp_path)
    try:
        before = await asyncio.to_thread(run, check, cwd=tmp_path, env=env, check=False)
        assert before.returncode != 0 and "no worker is consuming" in before.stderr
        await worker.start()
        await worker.wait_ready()
        after = await asyncio.to_thread(run, check, cwd=tmp_path, env=env, check=False)
        assert after.returncode == 0, after.stdout + after.stderr
        correlation = await harness.publish(submit_body(qty=2, duration_seconds=1), reply=True)
        assert (await harness.reply_for(correlation))["outcome"] == "accepted"
        worker.terminate()
        assert await worker.wait(within=60) == 0, worker.text()[-2000:]
    finally:
        await stop_all(worker)
        await harness.close()

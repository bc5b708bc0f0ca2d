"""The examples in examples/ run against real RabbitMQ and a running worker.

Each language: start the event subscriber, wait until it is bound, run the publisher (a small
TWAP), and check the reply and the events the subscriber printed, against the JSON Schemas.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema import Draft7Validator

from tests.support.harness import Harness
from tests.support.harness import worker_settings as settings_for
from tests.support.node import npm_installed
from twap_schemas.export import ROOT, SCHEMA_DIR

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
NODE_DIR = EXAMPLES / "node"
TIMEOUT = 60.0


@pytest.fixture
async def worker_harness(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(settings_for(amqp_url, sqlite_db, namespace))
    await h.open()
    await h.start_worker()
    yield h
    await h.close()


@pytest.fixture(scope="session")
def node_modules() -> str:
    """The examples' npm packages, installed from their lockfile; returns the node binary."""
    return npm_installed(NODE_DIR, "the Node.js example must run")


def env_for(h: Harness) -> dict[str, str]:
    return {
        **os.environ,
        "TWAP_AMQP_URL": h.settings.amqp_url.get_secret_value(),
        "TWAP_NAMESPACE": h.settings.namespace,
    }


async def run_pair(
    h: Harness, subscriber: list[str], publisher: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Subscriber first (until parent.completed), then the publisher; their outputs."""
    env = env_for(h)
    sub = await asyncio.create_subprocess_exec(
        *subscriber,
        "--until",
        "parent.completed",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert sub.stderr is not None and sub.stdout is not None
        ready = await asyncio.wait_for(sub.stderr.readline(), TIMEOUT)
        assert ready.strip() == b"ready", ready
        pub = await asyncio.create_subprocess_exec(
            *publisher,
            "--qty",
            "7",
            "--duration",
            "2",
            "--interval",
            "1",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(pub.communicate(), TIMEOUT)
        assert pub.returncode == 0, err.decode()
        lines, _ = await asyncio.wait_for(sub.communicate(), TIMEOUT)
        assert sub.returncode == 0
    finally:
        if sub.returncode is None:
            sub.kill()
            await sub.wait()
    return json.loads(out), [json.loads(line) for line in lines.splitlines()]


def check(reply: dict[str, Any], events: list[dict[str, Any]]) -> None:
    assert reply["outcome"] == "accepted"
    assert [s["qty"] for s in reply["slices"]] == [4, 3]
    pid = reply["parent_order_id"]
    types = [e["event_type"] for e in events if e.get("parent_order_id") == pid]
    assert types[0] == "parent.accepted" and types[-1] == "parent.completed"
    assert types.count("slice.submitted") == 2
    for event in events:
        schema = json.loads((ROOT / SCHEMA_DIR / f"event.{event['event_type']}.json").read_text())
        assert Draft7Validator(schema).is_valid(event), event


async def test_python_examples_submit_and_follow_a_twap(worker_harness: Harness) -> None:
    """publish_twap.py gets `accepted`; subscribe_events.py prints accepted → completed."""
    py = EXAMPLES / "python"
    reply, events = await run_pair(
        worker_harness,
        [sys.executable, str(py / "subscribe_events.py")],
        [sys.executable, str(py / "publish_twap.py")],
    )
    check(reply, events)


async def test_node_examples_submit_and_follow_a_twap(
    worker_harness: Harness, node_modules: str
) -> None:
    """publish_twap.js gets `accepted`; subscribe_events.js prints accepted → completed."""
    reply, events = await run_pair(
        worker_harness,
        [node_modules, str(NODE_DIR / "subscribe_events.js")],
        [node_modules, str(NODE_DIR / "publish_twap.js")],
    )
    check(reply, events)


def test_node_lockfile_pins_amqplib() -> None:
    """package-lock.json exists and pins amqplib, so `npm ci` installs the same tree anywhere."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    assert lock["packages"][""]["dependencies"] == wanted
    assert lock["packages"]["node_modules/amqplib"]["version"].startswith("2.")

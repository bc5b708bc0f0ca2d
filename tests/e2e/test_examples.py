"""The examples in examples/ run against real RabbitMQ and a running worker.

Each language: start the event subscriber, wait until it is bound, run the publisher (a small
TWAP), and check the reply and the events the subscriber printed, against the JSON Schemas,
and the fill lines it wrote for a person.
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
from worker.brokers.factory import build_broker

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
NODE_DIR = EXAMPLES / "node"
TIMEOUT = 60.0
# The sim fills a market buy at its ask: 190.25 x (1 + 2 bps / 2) = 190.269025, rounded up to
# the cent; prices travel as strings at the store's scale. Both slices (4 and 3 shares) fill
# whole at once.
SIM_PRICES = "AAPL=190.25"
SIM_SPREAD_BPS = 2
ASK = "190.2700000000"
FILL_LINES = [
    f"fill: slice 0 AAPL buy 4 @ {ASK} (parent filled 4, avg {ASK})",
    f"fill: slice 1 AAPL buy 3 @ {ASK} (parent filled 7, avg {ASK})",
    f"completed: AAPL buy filled 7 of 7, avg {ASK}, outcome filled",
]


@pytest.fixture
async def worker_harness(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Harness]:
    settings = settings_for(
        amqp_url, sqlite_db, namespace, sim_prices=SIM_PRICES, sim_spread_bps=SIM_SPREAD_BPS
    )
    # The sim as the worker builds it from its settings, so that the prices apply.
    h = Harness(settings, broker=build_broker(settings))
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
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Subscriber first (until parent.completed), then the publisher: the reply, the events
    and the subscriber's lines for a person (stderr after `ready`)."""
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
        lines, notes = await asyncio.wait_for(sub.communicate(), TIMEOUT)
        assert sub.returncode == 0, notes.decode()
    finally:
        if sub.returncode is None:
            sub.kill()
            await sub.wait()
    events = [json.loads(line) for line in lines.splitlines()]
    return json.loads(out), events, notes.decode().splitlines()


def check(reply: dict[str, Any], events: list[dict[str, Any]], notes: list[str]) -> None:
    assert reply["outcome"] == "accepted"
    assert [s["qty"] for s in reply["slices"]] == [4, 3]
    pid = reply["parent_order_id"]
    types = [e["event_type"] for e in events if e.get("parent_order_id") == pid]
    assert types[0] == "parent.accepted" and types[-1] == "parent.completed"
    assert types.count("slice.submitted") == 2
    fills = [e for e in events if e["event_type"] == "slice.fill"]
    assert [(e["slice_num"], e["fill_qty"], e["fill_price"]) for e in fills] == [
        (0, 4, ASK),
        (1, 3, ASK),
    ]
    assert types.count("slice.filled") == 2
    completed = events[-1]
    assert completed["event_type"] == "parent.completed"
    assert (completed["filled_qty"], completed["unfilled_qty"]) == (7, 0)
    assert (completed["avg_fill_price"], completed["outcome"]) == (ASK, "filled")
    assert notes == FILL_LINES
    for event in events:
        schema = json.loads((ROOT / SCHEMA_DIR / f"event.{event['event_type']}.json").read_text())
        assert Draft7Validator(schema).is_valid(event), event


async def test_python_examples_submit_and_follow_a_twap(worker_harness: Harness) -> None:
    """publish_twap.py gets `accepted`; subscribe_events.py prints accepted → completed and
    each fill."""
    py = EXAMPLES / "python"
    reply, events, notes = await run_pair(
        worker_harness,
        [sys.executable, str(py / "subscribe_events.py")],
        [sys.executable, str(py / "publish_twap.py")],
    )
    check(reply, events, notes)


async def test_node_examples_submit_and_follow_a_twap(
    worker_harness: Harness, node_modules: str
) -> None:
    """publish_twap.js gets `accepted`; subscribe_events.js prints accepted → completed and
    each fill."""
    reply, events, notes = await run_pair(
        worker_harness,
        [node_modules, str(NODE_DIR / "subscribe_events.js")],
        [node_modules, str(NODE_DIR / "publish_twap.js")],
    )
    check(reply, events, notes)


def test_node_lockfile_pins_amqplib() -> None:
    """package-lock.json exists and pins amqplib, so `npm ci` installs the same tree anywhere."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    assert lock["packages"][""]["dependencies"] == wanted
    assert lock["packages"]["node_modules/amqplib"]["version"].startswith("2.")

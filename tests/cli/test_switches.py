"""`twap kill-switch` and `twap breaker`: changes through N.control (or --direct into the
database), status from the database."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from tests.cli.conftest import Cli
from tests.support.fault_rig import Rig, rigged
from tests.support.harness import Harness, submit_body
from tests.support.tcp_proxy import TcpProxy
from worker.store.tables import slices


async def test_kill_switch_engage_stops_a_running_twap(harness: Harness, cli: Cli) -> None:
    """After engage, every remaining slice of a running TWAP is blocked_kill_switch."""
    await harness.start_worker()
    # Three slices 2 s apart: the engage (a fraction of a second) lands before the last.
    cid = await harness.publish(
        submit_body(duration_seconds=6, interval_seconds=2, qty=40), reply=True
    )
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(lambda: harness.events.of("slice.submitted", parent_order_id=pid))
    result = await cli("kill-switch", "engage", "--reason", "desk halt", "--operator", "ops_1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "kill switch engaged: desk halt (by ops_1)\n"
    await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid), timeout=30
    )
    statuses = [s["status"] for s in (await cli.json("status", pid))["slices"]]
    assert statuses[0] == "filled"  # sent before the engage; a market order fills at once
    assert statuses[-1] == "blocked_kill_switch"
    first_blocked = statuses.index("blocked_kill_switch")
    assert set(statuses[first_blocked:]) == {"blocked_kill_switch"}
    state = await cli.json("kill-switch", "status")
    assert (state["state"], state["reason"], state["operator"]) == ("engaged", "desk halt", "ops_1")


async def test_breaker_trip_status_reset(harness: Harness, cli: Cli) -> None:
    """breaker status reads the database; trip and reset go through the worker and show there."""
    await harness.start_worker()
    before = await cli.json("breaker", "status")
    assert (before["state"], before["consecutive_failures"]) == ("reset", 0)
    tripped = await cli("breaker", "trip", "--reason", "broker flaky")
    assert tripped.exit_code == 0, tripped.output
    state = await cli.json("breaker", "status")
    assert (state["state"], state["reason"], state["automatic"]) == (
        "tripped",
        "broker flaky",
        False,
    )
    assert state["operator"]  # the current user by default
    assert (await cli("breaker", "reset")).exit_code == 0
    plain = await cli("breaker", "status")
    assert "state:                reset" in plain.stdout.splitlines()


async def test_engage_requires_a_reason(cli: Cli) -> None:
    """kill-switch engage without --reason is a usage error (exit 2)."""
    result = await cli("kill-switch", "engage")
    assert result.exit_code == 2
    assert "--reason" in result.output


async def test_engage_without_a_worker_says_it_is_queued(harness: Harness, cli: Cli) -> None:
    """With no worker, engage publishes, then says nobody applied it yet (exit 1)."""
    result = await cli("kill-switch", "engage", "--reason", "x", "--timeout", "1s")
    assert result.exit_code == 1
    assert "no worker is consuming it; it applies when one starts" in result.stderr


@pytest.fixture
async def rig(amqp_url: str, database_url: str, namespace: str) -> AsyncIterator[Rig]:
    """A worker whose RabbitMQ connection goes through a proxy the test can cut."""

    def through(proxy: TcpProxy) -> dict[str, Any]:
        return {"amqp_url": SecretStr(proxy.url(amqp_url) + "?reconnect_interval=1")}

    async with rigged(
        amqp_url, database_url, namespace, upstream=amqp_url, default_port=5672, overrides=through
    ) as made:
        yield made


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(probe: Any, what: str, within: float = 20.0) -> None:
    """Poll the database: RabbitMQ, which would carry the events, is the thing that is down."""
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
async def test_direct_engage_stops_slices_while_rabbitmq_is_down(
    rig: Rig, database_url: str, namespace: str
) -> None:
    """RabbitMQ down: engage --direct blocks every later slice, its event goes out after."""
    harness, tap, probe = rig.harness, rig.tap, rig.probe
    # Four slices a second apart; the engage lands about 0.1 s after the first.
    cid = await harness.publish(
        submit_body(strategy_id="direct", qty=40, duration_seconds=4, interval_seconds=1),
        reply=True,
    )
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await tap.wait_for(lambda: tap.of("slice.submitted", parent_order_id=pid))
    await rig.proxy.cut()
    cli = Cli({
        "TWAP_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}/",
        "TWAP_DATABASE_URL": database_url,
        "TWAP_NAMESPACE": namespace,
        "TWAP_HTTP_PORT": "0",
    })
    through_queue = await cli("kill-switch", "engage", "--reason", "rabbit down")
    assert through_queue.exit_code == 3, through_queue.output  # the usual path cannot work

    engage = await cli(
        "kill-switch", "engage", "--direct", "--reason", "rabbit down", "--operator", "ops_1"
    )
    engaged_at = datetime.now(UTC)
    assert engage.exit_code == 0, engage.output
    assert engage.stdout == (
        "kill switch engaged in the database: rabbit down (by ops_1). Every slice checked "
        "from now on is blocked. The control.kill_switch.engaged event waits in the outbox "
        "until a worker publishes it.\n"
    )

    async def rows() -> list[Any]:
        query = select(slices.c.slice_num, slices.c.status, slices.c.scheduled_time).where(
            slices.c.parent_order_id == pid
        )
        async with probe.engine.connect() as conn:
            return list(await conn.execute(query.order_by(slices.c.slice_num)))

    async def parent_done() -> bool:
        return (await probe.parents("direct")).get(pid) == "completed"

    await until(parent_done, "the parent to finish while RabbitMQ is down")
    later = [row for row in await rows() if row.scheduled_time > engaged_at]
    assert later and {row.status for row in later} == {"blocked_kill_switch"}, later
    assert await probe.outbox_backlog() > 0, "no event waiting in the outbox"
    assert not tap.of("control.kill_switch.engaged"), "an event went through a cut RabbitMQ"

    await rig.proxy.resume()  # the worker's relay can publish again
    event = (await tap.wait_for(lambda: tap.of("control.kill_switch.engaged"), within=30))[0]
    assert (event["reason"], event["operator"], event["automatic"]) == (
        "rabbit down", "ops_1", False
    )
    await tap.wait_for(lambda: tap.of("parent.completed", parent_order_id=pid), within=30)

    again = await cli("kill-switch", "engage", "--direct", "--reason", "rabbit down")
    assert again.stdout == "kill switch was already engaged: nothing written\n", again.output
    release = await cli("kill-switch", "release", "--direct", "--operator", "ops_1")
    assert release.exit_code == 0, release.output
    assert release.stdout.startswith("kill switch released in the database (by ops_1).")
    await tap.wait_for(lambda: tap.of("control.kill_switch.released"), within=30)
    state = await cli.json("kill-switch", "status")
    assert (state["state"], state["operator"]) == ("released", "ops_1")
    print(
        f"kill switch engaged --direct while RabbitMQ was down: {len(later)} later slices "
        f"blocked; the control event arrived after RabbitMQ came back"
    )

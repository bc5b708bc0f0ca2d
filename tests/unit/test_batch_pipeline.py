"""BatchingConsumer: a batch is prepared while the one before waits on its commit, and the
batches are still decided strictly in order, each settled before the next is handled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.core.intake import Inbound
from worker.messaging.consumer import BatchingConsumer
from worker.runtime.intake import Disposition


@dataclass
class FakeMessage:
    """The part of an incoming AMQP message the consumer uses."""

    body: bytes
    log: list[str]
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    user_id: str | None = None
    timestamp: datetime | None = None
    settled: list[str] = field(default_factory=list)

    async def ack(self) -> None:
        self.log.append(f"ack {self.body.decode()}")

    async def nack(self, requeue: bool = True) -> None:
        self.log.append(f"nack {self.body.decode()}")


@dataclass(frozen=True)
class Prep:
    keys: frozenset[str]


def _keyed(log: list[str]) -> Any:
    """Batches whose messages are `key:name`: the key is what the batch touches."""

    def prepare(batch: list[Inbound]) -> Prep:
        names = [m.body.decode() for m in batch]
        log.append(f"prepare {','.join(names)}")
        return Prep(frozenset(n.split(":")[0] for n in names))

    return prepare


async def _until(log: list[str], entry: str) -> None:
    for _ in range(400):
        if entry in log:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{entry!r} never came: {log}")


async def test_batches_on_other_parents_are_decided_side_by_side() -> None:
    """With two in flight: a batch on other parents goes while the first waits on its commit;
    one that shares a parent with a batch still in flight waits until it is settled."""
    log: list[str] = []
    commits = {"p1": asyncio.Event(), "p2": asyncio.Event()}

    async def handler(batch: list[Inbound], prepared: Any) -> list[Disposition]:
        names = [m.body.decode() for m in batch]
        log.append(f"handle {','.join(names)}")
        key = names[0].split(":")[0]
        if key in commits:
            await commits[key].wait()
        return [Disposition.ACK] * len(batch)

    consumer = BatchingConsumer(handler, size=1, wait=0.0, requeue_delay=0.01,
                                prepare=_keyed(log), concurrency=2)
    stopping = asyncio.Event()
    runner = asyncio.create_task(consumer.run(stopping))
    for body in ("p1:submit", "p2:submit", "p1:cancel", "p3:submit"):
        await consumer.on_message(FakeMessage(body.encode(), log))  # type: ignore[arg-type]
    await _until(log, "handle p2:submit")
    await _until(log, "prepare p3:submit")
    await asyncio.sleep(0.05)
    # p1 and p2 are both inside their commits; p1's cancel waits for p1's submit; p3 waits
    # for a free slot (two are taken).
    assert "handle p1:cancel" not in log and "handle p3:submit" not in log
    commits["p2"].set()
    await _until(log, "handle p3:submit")
    assert "handle p1:cancel" not in log
    commits["p1"].set()
    await _until(log, "ack p1:cancel")
    assert log.index("ack p1:submit") < log.index("handle p1:cancel")
    stopping.set()
    await asyncio.wait_for(runner, 5)
    assert sorted(e for e in log if e.startswith("ack")) == [
        "ack p1:cancel", "ack p1:submit", "ack p2:submit", "ack p3:submit"]
    assert not consumer.busy


async def test_next_batch_is_prepared_during_the_commit_and_decided_after() -> None:
    log: list[str] = []
    first_commit = asyncio.Event()
    retried_once = False

    def prepare(batch: list[Inbound]) -> Prep:
        names = [m.body.decode() for m in batch]
        log.append(f"prepare {','.join(names)}")
        return Prep(frozenset(names))

    async def handler(batch: list[Inbound], prepared: Any) -> list[Disposition]:
        nonlocal retried_once
        names = [m.body.decode() for m in batch]
        log.append(f"handle {','.join(names)} prepared={prepared is not None}")
        if names == ["a", "b"]:
            await first_commit.wait()  # the database takes its time
        if names == ["c"] and not retried_once:
            retried_once = True
            return [Disposition.RETRY]  # the database went away: held, planned again later
        return [Disposition.ACK] * len(batch)

    consumer = BatchingConsumer(handler, size=2, wait=0.01, requeue_delay=0.01, prepare=prepare)
    for name in "abc":
        await consumer.on_message(FakeMessage(name.encode(), log))  # type: ignore[arg-type]
    stopping = asyncio.Event()
    runner = asyncio.create_task(consumer.run(stopping))
    for _ in range(200):
        if "prepare c" in log:
            break
        await asyncio.sleep(0.005)
    # Batch [c] is prepared while [a, b] is still inside its commit, and not yet handled.
    assert log == ["prepare a,b", "handle a,b prepared=True", "prepare c"]
    assert consumer.busy
    first_commit.set()
    for _ in range(400):
        if "ack c" in log:
            break
        await asyncio.sleep(0.005)
    stopping.set()
    await asyncio.wait_for(runner, 5)
    assert log == [
        "prepare a,b", "handle a,b prepared=True", "prepare c",
        "ack a", "ack b",
        "handle c prepared=True",
        "handle c prepared=False",  # the retry plans again
        "ack c",
    ]
    assert not consumer.busy


async def test_an_idle_consumer_stops_within_its_poll() -> None:
    """Idle, the consumer looks whether to stop every `poll` seconds: a stop waits for one
    poll, 0.2 s by default (TWAP_INTAKE_POLL_SECONDS), as short as the setting says."""

    async def handler(batch: list[Inbound], prepared: Any) -> list[Disposition]:
        return [Disposition.ACK] * len(batch)

    loop = asyncio.get_running_loop()
    waited: dict[float, float] = {}
    for poll in (0.4, 0.01):
        consumer = BatchingConsumer(handler, size=1, wait=0.0, requeue_delay=0.01, poll=poll)
        stopping = asyncio.Event()
        runner = asyncio.create_task(consumer.run(stopping))
        await asyncio.sleep(0.05)  # idle inside its wait for a first delivery
        stopping.set()
        began = loop.time()
        await asyncio.wait_for(runner, 5)
        waited[poll] = loop.time() - began
    assert 0.25 < waited[0.4] < 0.9, waited  # the rest of the poll under way: about 0.35 s
    assert waited[0.01] < 0.2, waited

"""Thousands of generated and mutated requests against a running worker: it never crashes and
every message is accounted for (accepted + duplicate + rejected = published)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.fuzz.messages import generate
from tests.support.db_probe import DbProbe
from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as harness_settings
from tests.support.queues import message_count

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(120)]

MESSAGES = 2000


@pytest.fixture
async def harness(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(harness_settings(amqp_url, sqlite_db, namespace))
    await h.open()
    yield h
    await h.close()


async def test_generated_bad_input_never_crashes_the_worker_and_every_message_is_answered(
    harness: Harness, sqlite_db: str, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """2,000 fuzzed requests: one reply each, outcomes sum to the count, worker still serves."""
    start_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    messages = generate(MESSAGES, start_at)
    await harness.start_worker()
    caplog.set_level(logging.ERROR, logger="worker")
    correlations: dict[str, str] = {}
    for offset in range(0, len(messages), 200):
        chunk = messages[offset : offset + 200]
        ids = await asyncio.gather(*(harness.publish(m.body, reply=True) for m in chunk))
        correlations.update(zip(ids, (m.kind for m in chunk), strict=True))
    for correlation in correlations:
        await harness.reply_for(correlation, timeout=60)

    replies = [harness.replies[c] for c in correlations]
    outcomes = Counter(r["outcome"] for r in replies)
    published = len(messages)
    answered = outcomes["accepted"] + outcomes["duplicate"] + outcomes["rejected"]
    by_kind = Counter((correlations[c], harness.replies[c]["outcome"]) for c in correlations)
    summary = (
        f"published {published}, accepted {outcomes['accepted']}, duplicate "
        f"{outcomes['duplicate']}, rejected {outcomes['rejected']}, "
        f"lost {published - answered}; by kind {dict(sorted(by_kind.items()))}"
    )
    assert answered == published == len(replies) and len(outcomes) <= 3, summary
    assert not by_kind[("valid", "rejected")] and not by_kind[("huge", "accepted")], summary
    assert not by_kind[("garbage", "accepted")] and not by_kind[("unknown_cancel", "accepted")]

    probe = DbProbe(sqlite_db)
    try:
        parents = len(await probe.parents())
    finally:
        await probe.close()
    assert parents == outcomes["accepted"], f"{parents} parents for {summary}"
    invalid = sum(1 for r in replies if r["outcome"] == "rejected" and r.get("type") is None)
    deadline = asyncio.get_running_loop().time() + 30
    while (dlq := await message_count(amqp_url, harness.names.dlq)) < invalid:
        assert asyncio.get_running_loop().time() < deadline, f"DLQ holds {dlq} of {invalid}"
        await asyncio.sleep(0.2)

    assert harness.task is not None and not harness.task.done(), "the worker stopped"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"the worker logged errors: {errors[:5]}"
    alive = await harness.publish(submit_body(), reply=True)
    assert (await harness.reply_for(alive))["outcome"] == "accepted"
    print(f"fuzz: {summary}; dead-lettered {dlq}")

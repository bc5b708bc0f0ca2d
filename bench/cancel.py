"""cancel: parents of 1,000 pending slices canceled one at a time; latency from the cancel's
publish to its parent.canceled received (and to the last of its slice.canceled events)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bench.environment import Services
from bench.loading import progress, publish_and_wait
from bench.report import Result, percentiles
from bench.run import bench_run
from bench.workload import cancel, submit

NAME = "cancel"


@dataclass(frozen=True)
class Params:
    parents: int = 200
    slices: int = 1_000


FULL = Params()
QUICK = Params(parents=20)


async def run(services: Services, quick: bool, params: Params) -> Result:
    bindings = ["parent.accepted.#", "parent.canceled.#", "slice.canceled.#", "request.#"]
    async with bench_run(
        NAME, quick, services, bindings=bindings, keep_bodies={"parent.accepted", "parent.canceled"}
    ) as r:
        await r.start_worker()
        start = time.time() + 3600
        bodies = [
            submit(r.run_id, k, start_at=start, slices=params.slices, interval=1)
            for k in range(params.parents)
        ]
        loaded = await publish_and_wait(r, bodies, within=120)
        parent_ids = [
            json.loads(a.body or b"{}")["parent_order_id"]
            for a in r.events.arrivals["parent.accepted"]
        ]
        progress(f"canceling {len(parent_ids)} parents of {params.slices:,} slices, one at a time")
        to_parent: list[float] = []
        to_slices: list[float] = []
        canceled_slices = 0
        for number, pid in enumerate(parent_ids):
            sent = await r.client.publish(cancel(pid))
            arrivals = r.events.arrivals["parent.canceled"]
            if not await r.events.wait_until(lambda a=arrivals, n=number: len(a) > n, 30):
                progress(f"no parent.canceled for {pid}")
                break
            event = json.loads(arrivals[number].body or b"{}")
            assert event["parent_order_id"] == pid, "parent.canceled of another parent"
            to_parent.append((arrivals[number].at - sent) * 1000)
            canceled_slices += int(event["canceled_slices"])
            slice_events = r.events.arrivals["slice.canceled"]
            # The next cancel waits for this one's slice events: each is measured on its own.
            if await r.events.wait_until(lambda e=slice_events, n=canceled_slices: len(e) >= n, 30):
                to_slices.append((slice_events[canceled_slices - 1].at - sent) * 1000)
        memory = r.worker.memory_mib()
    lat = percentiles(to_parent)
    result = Result(NAME, r.database.kind, quick)
    result.counts = {
        "parents": loaded.accepted,
        "cancels": len(to_parent),
        "slices_per_parent": params.slices,
        "canceled_slices": canceled_slices,
    }
    result.percentiles = {
        "cancel_to_parent_canceled_ms": lat,
        "cancel_to_last_slice_canceled_ms": percentiles(to_slices),
    }
    result.rss_mib = memory
    slices_lat = result.percentiles["cancel_to_last_slice_canceled_ms"]
    result.lines = [
        f"{len(to_parent)} cancels of parents with {params.slices:,} pending slices "
        f"({canceled_slices:,} slices canceled)",
        "cancel -> parent.canceled ms: " + ", ".join(f"{k} {v}" for k, v in lat.items()),
        "cancel -> last slice.canceled ms: " + ", ".join(f"{k} {v}" for k, v in slices_lat.items()),
    ]
    result.target("cancel -> parent.canceled p99 ms", lat.get("p99"), 50)
    result.no_floor(
        "absolute: a promise to the operator in wall-clock time (the rest of a parent stops "
        "within 50 ms on the machine deployed); its I/O, one UPDATE of 1,000 rows and an AMQP "
        "round trip, is a latency of a few ms, not a rate"
    )
    return result

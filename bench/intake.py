"""intake: N thirty-slice requests published as fast as possible; rate from the first publish
to the last parent.accepted received."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.environment import Services
from bench.floors import intake_floor
from bench.loading import publish_and_wait
from bench.report import Result
from bench.run import bench_run
from bench.workload import submit

NAME = "intake"


@dataclass(frozen=True)
class Params:
    requests: int = 20_000
    slices: int = 30
    in_flight: int = 500


FULL = Params()
QUICK = Params(requests=1_000)


async def run(services: Services, quick: bool, params: Params) -> Result:
    floor = await intake_floor(services, params.requests, params.slices)
    async with bench_run(
        NAME, quick, services, bindings=["parent.accepted.#", "request.#"], keep_bodies=set()
    ) as r:
        await r.start_worker()
        # Starts an hour ahead: this measures intake alone, no slice fires meanwhile.
        start = time.time() + 3600
        bodies = [
            submit(r.run_id, i, start_at=start, slices=params.slices)
            for i in range(params.requests)
        ]
        loaded = await publish_and_wait(r, bodies, in_flight=params.in_flight)
        memory = r.worker.memory_mib()
    result = Result(NAME, r.database.kind, quick)
    rate = loaded.requests_per_second
    result.counts = {
        "requests": loaded.requests,
        "accepted": loaded.accepted,
        "rejected": loaded.rejected,
        "slices": loaded.accepted * params.slices,
    }
    result.rates = {
        "requests_per_s": round(rate or 0, 1),
        "slices_per_s": round((rate or 0) * params.slices, 1),
        "publish_per_s": round(loaded.requests / loaded.publish_seconds, 1),
    }
    result.timings_s = {
        "publish": round(loaded.publish_seconds, 3),
        "intake": round(loaded.intake_seconds or 0, 3),
        "worker_cpu": round(loaded.worker_cpu_s, 2),
    }
    result.rss_mib = memory
    result.lines = [
        f"{loaded.requests:,} requests of {params.slices} slices, published in "
        f"{loaded.publish_seconds:.2f} s ({result.rates['publish_per_s']:,.0f}/s)",
        f"{loaded.accepted:,} parent.accepted (rejected {loaded.rejected}) "
        f"{loaded.intake_seconds or 0:.2f} s after the first publish: "
        f"{rate or 0:,.0f} requests/s ({result.rates['slices_per_s']:,.0f} slices/s)",
        f"worker CPU {loaded.worker_cpu_s:.1f} s; RSS {memory['rss']} MiB "
        f"(peak {memory['peak']} MiB)",
    ]
    result.set_floor(rate, floor, "requests/s")
    # The target for the redesign: half the floor.
    result.target("requests/s / floor", result.ratio_to_floor, 0.5, higher_is_better=True)
    if loaded.accepted < loaded.requests:
        result.notes.append(f"{loaded.requests - loaded.accepted} requests were not accepted")
    return result

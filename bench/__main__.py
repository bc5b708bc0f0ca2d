"""`python -m bench <name>... [--quick] [--set key=value]`: run benchmarks, print their figures.

Several names run in one process, so floors and the sustained rate measured by one benchmark
serve the next (`python -m bench dispatch overload`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from types import ModuleType

from bench import cancel, capacity, dispatch, intake, overload, recovery, soak
from bench.environment import services_from_environment
from bench.report import Result, emit

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m for m in (intake, capacity, dispatch, overload, recovery, cancel, soak)
}


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def params_for(module: ModuleType, quick: bool, overrides: dict[str, str]) -> object:
    base = module.QUICK if quick else module.FULL
    known = {f.name: f for f in dataclasses.fields(base)}
    changes = {}
    for key, value in overrides.items():
        if key in known:
            changes[key] = type(getattr(base, key))(value)
    return dataclasses.replace(base, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the worker as a subprocess against the services of TWAP_AMQP_URL and "
        "TWAP_DATABASE_URL (default: a fresh SQLite file) and measure it from outside.",
    )
    parser.add_argument("name", nargs="+", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true", help="smaller counts, under 60 s each")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter, e.g. --set requests=5000",
    )
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    services = services_from_environment()
    names = list(BENCHMARKS) if "all" in args.name else list(dict.fromkeys(args.name))
    results: list[Result] = []
    for name in names:
        module = BENCHMARKS[name]
        result = asyncio.run(
            module.run(services, args.quick, params_for(module, args.quick, overrides))
        )
        emit(result)
        results.append(result)
    if "all" in args.name:
        print(
            json.dumps(
                {"name": "all", "quick": args.quick, "results": [r.as_json() for r in results]},
                separators=(",", ":"),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A worker's HTTP readiness endpoint, when one answers: stdlib only, short timeouts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: str


async def get(host: str, port: int, path: str, wait: float = 2.0) -> HttpAnswer | None:
    """GET http://host:port/path; None when nothing answers there (it is optional)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target, port), wait)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), wait)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = raw.decode("latin-1").partition("\r\n\r\n")
    parts = head.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None  # not an HTTP server
    return HttpAnswer(int(parts[1]), body.strip()[:2000])

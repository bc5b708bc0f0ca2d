"""A client for the worker's own endpoints: `GET /readyz` and friends over plain asyncio.

For operator tools (a `twap health` that asks the running worker first) and for the tests.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_get(host: str, port: int, path: str, wait: float = 5.0) -> Reply:
    """One GET; raises OSError when nothing listens, TimeoutError when it does not answer."""
    return await asyncio.wait_for(_get(host, port, path), wait)


async def _get(host: str, port: int, path: str) -> Reply:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Reply(status, headers.get("Content-Type", ""), body)

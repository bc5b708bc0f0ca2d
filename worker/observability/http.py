"""A very small HTTP/1.1 server on asyncio streams, for /metrics, /healthz and /readyz.

Only GET and HEAD, one request per connection (Connection: close), a bounded request head
read under a timeout. That is all a Prometheus scraper or a Kubernetes probe needs, without
another web framework in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192
READ_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[], Awaitable[Response]]


class HttpServer:
    def __init__(self, host: str, port: int, routes: Mapping[str, Handler]) -> None:
        self.host = host
        self.requested_port = port
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked the OS to pick one)."""
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> bool:
        """Listen; False (logged) when the port is taken: the worker trades on without it."""
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.requested_port, limit=MAX_HEAD_BYTES
            )
        except OSError as exc:
            log.error(
                "http.bind_failed",
                extra={"host": self.host, "port": self.requested_port, "error": str(exc)},
            )
            return False
        log.info(
            "http.listening",
            extra={"host": self.host, "port": self.port, "paths": sorted(self.routes)},
        )
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_read_head(reader), READ_TIMEOUT)
            response = await self._respond(method, path)
            _write(writer, response, head_only=method == "HEAD")
            await writer.drain()
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            _write(writer, _plain(HTTPStatus.BAD_REQUEST), head_only=False)
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, method: str, path: str) -> Response:
        handler = self.routes.get(path.split("?", 1)[0])
        if handler is None:
            return _plain(HTTPStatus.NOT_FOUND)
        if method not in {"GET", "HEAD"}:
            return _plain(HTTPStatus.METHOD_NOT_ALLOWED)
        try:
            return await handler()
        except Exception:
            log.exception("http.handler_failed", extra={"path": path})
            return _plain(HTTPStatus.INTERNAL_SERVER_ERROR)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The request line's method and path; the headers are read and ignored."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES:
        raise ValueError("request head too large")
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("malformed request line")
    return parts[0].upper(), parts[1]


def _plain(status: HTTPStatus) -> Response:
    return Response(int(status), f"{status.phrase}\n".encode())


def _write(writer: asyncio.StreamWriter, response: Response, *, head_only: bool) -> None:
    reason = HTTPStatus(response.status).phrase
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    writer.write(head if head_only else head + response.body)

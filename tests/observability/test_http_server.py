"""The small HTTP server: routing, methods, malformed requests, failing handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from worker.observability.http import HttpServer, Response
from worker.observability.probe import http_get


async def ok() -> Response:
    return Response(200, b"fine\n")


async def broken() -> Response:
    raise RuntimeError("boom")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    s = HttpServer("127.0.0.1", 0, {"/ok": ok, "/broken": broken})
    await s.start()
    yield s
    await s.close()


async def raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_routes_by_path_ignoring_the_query(server: HttpServer) -> None:
    """GET /ok?x=1 answers the /ok handler; an unknown path is 404."""
    reply = await http_get("127.0.0.1", server.port, "/ok?x=1")
    assert (reply.status, reply.body) == (200, b"fine\n")
    assert (await http_get("127.0.0.1", server.port, "/nope")).status == 404


async def test_head_has_headers_only_and_post_is_refused(server: HttpServer) -> None:
    """HEAD answers the length without the body; POST is 405."""
    head = await raw(server.port, b"HEAD /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 5\r\n" in head
    assert head.endswith(b"\r\n\r\n")
    post = await raw(server.port, b"POST /ok HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405 ")


async def test_malformed_request_is_400(server: HttpServer) -> None:
    """A request line that is not HTTP/1.x gets 400 and the connection closes."""
    assert (await raw(server.port, b"hello\r\n\r\n")).startswith(b"HTTP/1.1 400 ")


async def test_failing_handler_is_500_and_the_server_keeps_serving(server: HttpServer) -> None:
    """An exception in a handler answers 500; the next request is served normally."""
    assert (await http_get("127.0.0.1", server.port, "/broken")).status == 500
    assert (await http_get("127.0.0.1", server.port, "/ok")).status == 200


async def test_taken_port_is_reported_not_fatal(server: HttpServer) -> None:
    """A second server on a taken port logs and returns False instead of raising."""
    second = HttpServer("127.0.0.1", server.port, {"/ok": ok})
    assert await second.start() is False
    await second.close()
    assert (await http_get("127.0.0.1", server.port, "/ok")).status == 200

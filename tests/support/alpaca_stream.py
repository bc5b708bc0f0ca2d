"""A local stand-in for Alpaca's trade-updates websocket, enough for alpaca-py's TradingStream.

It speaks the wire protocol (authenticate, listen, `trade_updates` messages) on its own thread
and event loop, and plays the faults a fill-tracking worker must survive: the stream dropped
in the middle of fills, updates held back (reported only through polling), an update sent
twice, updates sent out of order. Tests push updates with `push()`; every frame sent is kept.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


@dataclass
class TradeStreamStandIn:
    """The websocket server and what it saw. `start()` it; `stop()` it."""

    key: str
    secret: str
    sent: list[dict[str, Any]] = field(default_factory=list)
    auth_failures: int = 0
    connections: int = 0
    errors: list[BaseException] = field(default_factory=list)
    holding: bool = False  # True: updates are dropped, as if the stream were away
    answer_listen: bool = True  # False: a `listen` is never confirmed (a server half there)
    _listeners: set[ServerConnection] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: Server | None = None
    _thread: threading.Thread | None = None
    _port: int = 0
    _listening = threading.Condition()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/stream"

    def start(self) -> TradeStreamStandIn:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def open_server() -> None:
                self._server = await serve(self._session, "127.0.0.1", 0)
                self._port = next(iter(self._server.sockets)).getsockname()[1]
                ready.set()

            loop.run_until_complete(open_server())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="alpaca-stream-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("trade stream stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def wait_listening(self, count: int = 1, timeout: float = 15.0) -> None:
        """Block until `count` clients are authenticated and listening."""
        with self._listening:
            if not self._listening.wait_for(lambda: len(self._listeners) >= count, timeout):
                raise TimeoutError(f"no {count} listening client(s) within {timeout} s")

    def push(
        self,
        event: str,
        order: dict[str, Any],
        *,
        price: str | None = None,
        qty: str | None = None,
        repeat: int = 1,
    ) -> None:
        """Send one trade update to every listener (`repeat` times: a duplicated update)."""
        frame = update(event, order, price=price, qty=qty)
        for _ in range(repeat):
            self._send(frame)

    def push_frames(self, frames: list[dict[str, Any]]) -> None:
        """Send prepared frames in the given order (e.g. reversed: updates out of order)."""
        for frame in frames:
            self._send(frame)

    def drop(self) -> None:
        """Close every connection abruptly, as a network drop would; clients reconnect."""
        assert self._loop is not None

        async def close_all() -> None:
            for ws in list(self._listeners):
                ws.transport.abort()
            self._listeners.clear()

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(10)

    def _send(self, frame: dict[str, Any]) -> None:
        assert self._loop is not None
        if self.holding:
            return
        text = json.dumps(frame)

        async def broadcast() -> None:
            for ws in list(self._listeners):
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    self._listeners.discard(ws)

        asyncio.run_coroutine_threadsafe(broadcast(), self._loop).result(10)
        self.sent.append(frame)

    async def _session(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            auth = json.loads(await ws.recv())
            data = auth.get("data") or {}
            if (
                auth.get("action") != "authenticate"
                or data.get("key_id") != self.key
                or data.get("secret_key") != self.secret
            ):
                self.auth_failures += 1
                await ws.send(
                    json.dumps(
                        {
                            "stream": "authorization",
                            "data": {"status": "unauthorized", "action": "authenticate"},
                        }
                    )
                )
                return
            await ws.send(
                json.dumps(
                    {
                        "stream": "authorization",
                        "data": {"status": "authorized", "action": "authenticate"},
                    }
                )
            )
            async for raw in ws:
                message = json.loads(raw)
                if message.get("action") == "listen" and self.answer_listen:
                    streams = (message.get("data") or {}).get("streams") or []
                    await ws.send(json.dumps({"stream": "listening", "data": {"streams": streams}}))
                    if "trade_updates" in streams:
                        with self._listening:
                            self._listeners.add(ws)
                            self._listening.notify_all()
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug in the stand-in must fail the test, not hide
            self.errors.append(exc)
        finally:
            with self._listening:
                self._listeners.discard(ws)


def update(
    event: str, order: dict[str, Any], *, price: str | None = None, qty: str | None = None
) -> dict[str, Any]:
    """A `trade_updates` frame as Alpaca sends it; `price`/`qty` describe one execution."""
    data: dict[str, Any] = {
        "event": event,
        "order": order,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if event in {"fill", "partial_fill"}:
        data.update(
            price=price,
            qty=qty,
            execution_id=str(uuid.uuid4()),
            position_qty=order.get("filled_qty"),
        )
    return {"stream": "trade_updates", "data": data}

"""`twap submit` and `twap cancel`: requests built from flags, validated exactly as the worker
validates them, published to N.requests, answered by the worker's reply."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from twap_schemas.errors import ErrorDetail
from twap_schemas.parse import InvalidMessage, parse_request
from twap_schemas.replies import Reply
from twap_schemas.requests import CancelRequest, RequestContext, SubmitRequest
from worker.cli import output
from worker.cli.exits import FAILED, INVALID, NOT_FOUND, CliError
from worker.cli.runner import amqp, database
from worker.core.planning import build_plan
from worker.core.slicing import PlanError
from worker.settings import Settings

FLAGS = {
    "strategy_id": "--strategy",
    "symbol": "--symbol",
    "side": "--side",
    "qty": "--qty",
    "duration_seconds": "--duration",
    "duration_minutes": "--duration",
    "interval_seconds": "--interval",
    "order_type": "--order-type",
    "limit_price": "--limit-price",
    "stop_price": "--stop-price",
    "time_in_force": "--tif",
    "max_slice_qty": "--max-slice-qty",
    "distribution": "--distribution",
    "start_at": "--start-at",
    "trade_date": "--trade-date",
    "request_id": "--request-id",
    "parent_order_id": "PARENT_ID",
    "reason": "--reason",
}


def rules(errors: list[ErrorDetail]) -> str:
    """The broken rules, named by the flag that carries each field."""
    return "; ".join(f"{FLAGS.get(e.loc, e.loc)}: {e.msg}" for e in errors)


def context(settings: Settings, now: datetime) -> RequestContext:
    return RequestContext(
        limits=settings.limits,
        now=now,
        misfire_grace=timedelta(seconds=settings.misfire_grace_seconds),
    )


def validate(body: dict[str, Any], settings: Settings) -> SubmitRequest | CancelRequest:
    """The worker's own validation and planning, so a bad request never leaves the terminal."""
    now = datetime.now(UTC)
    try:
        request = parse_request(json.dumps(body).encode(), context(settings, now))
    except InvalidMessage as exc:
        raise CliError(f"invalid request: {rules(exc.errors)}", INVALID) from None
    if isinstance(request, SubmitRequest):
        try:
            build_plan(request, now=now, max_slices=settings.limits.max_slices)
        except PlanError as exc:
            raise CliError(
                f"invalid request: {FLAGS.get(exc.loc, exc.loc)}: {exc.msg}", INVALID
            ) from None
    return request


async def send(
    settings: Settings,
    body: dict[str, Any],
    reply_wait: float,
    watch_strategy: str | None = None,
    as_json: bool = False,
) -> tuple[Reply, int]:
    """Publish and wait for the reply; with `watch_strategy`, follow the parent afterwards
    (the event stream is bound before the request goes out, so nothing is missed)."""
    from worker.cli.watching import follow, strategy_keys

    async with amqp(settings) as link:
        requests = link.names.requests
        stats = await link.queue_stats(requests)
        if stats.exists and stats.consumers == 0:
            raise CliError(
                f"no worker is consuming {requests}; nothing was published "
                "(start one with `twap worker`)",
                FAILED,
            )
        message_id = uuid.uuid4().hex
        raw = json.dumps(body).encode()
        if watch_strategy is None:
            reply = await link.request(requests, raw, message_id=message_id, wait=reply_wait)
            return _checked(reply, message_id, reply_wait), 0
        async with link.subscribe(strategy_keys(watch_strategy)) as stream:
            answer = _checked(
                await link.request(requests, raw, message_id=message_id, wait=reply_wait),
                message_id,
                reply_wait,
            )
            show_reply(answer, as_json=as_json, quiet=False)
            if answer.outcome.value == "rejected" or answer.parent_order_id is None:
                return answer, 0
            async with database(settings) as store:
                code = await follow(
                    store, stream, answer.parent_order_id, as_json=as_json, give_up_after=None
                )
            return answer, code


def _checked(reply: dict[str, Any] | None, message_id: str, waited: float) -> Reply:
    if reply is None:
        raise CliError(
            f"no reply within {waited:g} s; the request (message_id {message_id}) was "
            "published and may still be processed (check `twap list`)",
            FAILED,
        )
    return Reply.model_validate(reply)


def show_reply(reply: Reply, *, as_json: bool, quiet: bool) -> None:
    """Print the outcome; a rejection becomes the error (exit 2, or 4 for an unknown parent)."""
    if reply.outcome.value == "rejected":
        errors = reply.errors or []
        unknown = any(e.loc == "parent_order_id" and "unknown parent" in e.msg for e in errors)
        if as_json:
            output.print_json(reply.model_dump(exclude_none=True, mode="json"))
        raise CliError(
            f"rejected by the worker: {rules(errors)}", NOT_FOUND if unknown else INVALID
        )
    if as_json:
        output.print_json(reply.model_dump(exclude_none=True, mode="json"))
        return
    pid = reply.parent_order_id
    if quiet:
        output.say(str(pid))
    elif reply.type == "cancel":
        output.say(
            f"[yellow]canceled[/] {pid}: {reply.canceled_slices} slices canceled, "
            f"{reply.in_flight_slices} in flight"
        )
    elif reply.outcome.value == "duplicate":
        output.say(f"[yellow]duplicate[/] {pid}: already submitted, nothing new was created")
    else:
        output.say(
            f"[green]accepted[/] {pid}: {reply.total_slices} slices, "
            f"{reply.total_qty} shares, every {reply.interval_seconds} s"
        )

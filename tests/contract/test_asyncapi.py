"""The checked-in AsyncAPI document covers every message, channel and name of the contract."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from schemas.export import ASYNCAPI_FILE, ROOT

# Every message the wire contract names (kept here, by hand, as the contract lists them).
CONTRACT_EVENTS = {
    "parent.accepted",
    "parent.canceled",
    "parent.completed",
    "slice.submitted",
    "slice.blocked_kill_switch",
    "slice.blocked_circuit_breaker",
    "slice.canceled",
    "slice.rejected",
    "slice.failed",
    "slice.expired",
    "request.rejected",
    "request.duplicate",
    "control.kill_switch.engaged",
    "control.kill_switch.released",
    "control.breaker.tripped",
    "control.breaker.reset",
}
CONTRACT_CONTROL = {"kill_switch.engage", "kill_switch.release", "breaker.trip", "breaker.reset"}
CONTRACT_MESSAGES = {"submit", "cancel", "reply"} | CONTRACT_CONTROL | CONTRACT_EVENTS


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads((ROOT / ASYNCAPI_FILE).read_text())


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return resolve(doc, node["$ref"]) if "$ref" in node else node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def test_every_contract_message_appears(doc: dict[str, Any]) -> None:
    """submit, cancel, the 4 control types, all 16 event types and the reply are messages."""
    assert doc["asyncapi"] == "3.0.0"
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert CONTRACT_MESSAGES <= names


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    """Internal $refs point at something; payload $refs name checked-in schema files."""
    for ref in refs(doc):
        if ref.startswith("#/"):
            resolve(doc, ref)
        else:
            assert (ROOT / ASYNCAPI_FILE).parent.joinpath(ref).resolve().is_file(), ref


def test_channels_use_the_contract_names(doc: dict[str, Any]) -> None:
    """Queues and the exchange derive from {namespace}; events route on {event_type}.{strategy}."""
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"{namespace}.requests", "{namespace}.control", "{namespace}.requests.dlq"} <= addresses
    for channel in doc["channels"].values():
        amqp = channel.get("bindings", {}).get("amqp", {})
        if amqp.get("is") != "routingKey":
            continue
        assert amqp["exchange"] == {
            "name": "{namespace}.events",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        }
        (message,) = (resolve(doc, m["$ref"]) for m in channel["messages"].values())
        expected = (
            message["name"]
            if message["name"].startswith("control.")
            else (message["name"] + ".{strategy_id}")
        )
        assert channel["address"] == expected
        assert re.fullmatch(r"[a-z_.]+(\.\{strategy_id\})?", channel["address"])


def test_operations_say_who_sends_what(doc: dict[str, Any]) -> None:
    """The worker receives requests (replying to reply_to) and control; it sends every event."""
    ops = doc["operations"].values()
    received = {
        resolve(doc, m["$ref"])["name"]
        for op in ops
        if op["action"] == "receive"
        for m in op["messages"]
    }
    sent = {
        resolve(doc, m["$ref"])["name"]
        for op in ops
        if op["action"] == "send"
        for m in op["messages"]
    }
    assert received == {"submit", "cancel"} | CONTRACT_CONTROL
    assert CONTRACT_EVENTS <= sent
    reply = doc["operations"]["receiveRequest"]["reply"]
    assert reply["address"]["location"] == "$message.header#/reply_to"

"""The checked-in AsyncAPI document covers every message, channel and name of the contract,
stands on its own, and the reference AsyncAPI parser reads it without an error."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import npm_installed
from twap_schemas.asyncapi import message_id
from twap_schemas.export import ASYNCAPI_FILE, ROOT, SCHEMA_DIR
from twap_schemas.json_schema import message_schemas

PARSER_DIR = ROOT / "tools" / "asyncapi"

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
    "slice.blocked_risk",
    "request.rejected",
    "request.duplicate",
    "control.kill_switch.engaged",
    "control.kill_switch.released",
    "control.breaker.tripped",
    "control.breaker.reset",
    "control.limits.changed",
    "control.grants.changed",
}
CONTRACT_CONTROL = {"kill_switch.engage", "kill_switch.release", "breaker.trip", "breaker.reset",
                    "limits.set", "grants.set"}
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
    assert doc["asyncapi"] == "3.1.0"
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert CONTRACT_MESSAGES <= names


def test_every_reference_resolves_inside_the_document(doc: dict[str, Any]) -> None:
    """Every $ref is internal (no file beside the document needed) and points at something."""
    found = refs(doc)
    assert found
    for ref in found:
        assert ref.startswith("#/"), ref
        resolve(doc, ref)


def test_payloads_are_the_published_json_schemas(doc: dict[str, Any]) -> None:
    """Each message's payload is its schemas/json file, references re-anchored in the document."""
    for message in message_schemas():
        key = message_id(message)
        component = doc["components"]["schemas"][key]
        assert component["schemaFormat"] == "application/schema+json;version=draft-07"
        anchor = f"#/components/schemas/{key}/schema/definitions/"
        text = json.dumps(component["schema"]).replace(anchor, "#/definitions/")
        published = (ROOT / SCHEMA_DIR / message.file_name).read_text()
        assert json.loads(text) == json.loads(published), message.file_name
        (payload,) = (
            m["payload"]
            for m in doc["components"]["messages"].values()
            if m["name"] == message.name
        )
        assert payload == {"$ref": f"#/components/schemas/{key}"}


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


@pytest.fixture(scope="module")
def parser() -> list[str]:
    """The command running the reference parser (@asyncapi/parser, pinned in tools/asyncapi)."""
    node = npm_installed(PARSER_DIR, "the AsyncAPI document must be checked by the parser")
    return [node, str(PARSER_DIR / "validate.mjs")]


def parse_alone(parser: list[str], document: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Parse a copy of the document in an otherwise empty folder; returns the parser's report."""
    path = folder / "asyncapi.json"
    path.write_text(json.dumps(document))
    done = subprocess.run(
        [*parser, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip(), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (1 if report["errors"] or not report["parsed"] else 0)
    return report


def test_reference_parser_reads_the_document_on_its_own(
    parser: list[str], doc: dict[str, Any], tmp_path: Path
) -> None:
    """@asyncapi/parser: no error or warning, every message with its payload resolved."""
    report = parse_alone(parser, doc, tmp_path)
    assert report["parsed"] and report["asyncapi"] == doc["asyncapi"]
    assert [d for d in report["diagnostics"] if d["severity"] in {"error", "warning"}] == []
    assert report["messages"] == len(doc["components"]["messages"])
    assert report["unresolved_payloads"] == []


def test_reference_parser_rejects_a_payload_in_a_file_beside_it(
    parser: list[str], doc: dict[str, Any], tmp_path: Path
) -> None:
    """The check can fail: a payload pointing at a schema file outside the document is an error."""
    leaning = json.loads(json.dumps(doc))
    leaning["components"]["messages"]["reply"]["payload"] = {
        "schemaFormat": "application/schema+json;version=draft-07",
        "schema": {"$ref": "../schemas/json/reply.json"},
    }
    report = parse_alone(parser, leaning, tmp_path)
    assert report["errors"] >= 1
    assert any(d["code"] == "invalid-ref" for d in report["diagnostics"])

"""The AsyncAPI 3.1 document of the worker's whole interface, built from the message schemas.

It describes the worker as the application: it receives on `N.requests` and `N.control`, and
sends events to `N.events`, replies to `reply_to`, and dead letters to `N.requests.dlq`.
The document is self-contained: every message's JSON Schema (the same one schemas/json/ holds)
sits under components/schemas, so a reader needs no file beside it.
"""

from __future__ import annotations

from typing import Any

from twap_schemas.common import SCHEMA_VERSION
from twap_schemas.json_schema import MessageSchema, message_schemas

ASYNCAPI = "3.1.0"  # the newest version the reference parser (tools/asyncapi) reads
SCHEMA_FORMAT = "application/schema+json;version=draft-07"
AMQP = "0.3.0"  # AMQP bindings version
DEFINITIONS = "#/definitions/"
Doc = dict[str, Any]

NAMESPACE_PARAM = {
    "description": "TWAP_NAMESPACE: the prefix of every queue and exchange name.",
    "default": "twap",
    "examples": ["twap"],
}
STRATEGY_PARAM = {
    "description": "The strategy_id of the parent or request (`_unknown` when unreadable).",
    "examples": ["alpha_1"],
}
CORRELATION = {
    "description": "The AMQP correlation_id property, echoed on the reply.",
    "location": "$message.header#/correlation_id",
}


def message_id(message: MessageSchema) -> str:
    """Component key: the name with its kind, dots as underscores (control_breaker_reset)."""
    name = message.name.replace(".", "_")
    return name if message.kind in {"request", "reply"} else f"{message.kind}_{name}"


def _queue(address: str, description: str, messages: list[MessageSchema]) -> Doc:
    return {
        "address": address,
        "description": description,
        "parameters": {"namespace": NAMESPACE_PARAM},
        "messages": {message_id(m): _component(m) for m in messages},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": address,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP,
            }
        },
    }


def _component(message: MessageSchema) -> Doc:
    return {"$ref": f"#/components/messages/{message_id(message)}"}


def _event_channel(message: MessageSchema) -> Doc:
    control = message.name.startswith("control.")
    channel: Doc = {
        "address": message.name if control else f"{message.name}.{{strategy_id}}",
        "title": f"Routing key of {message.name}",
        "description": f"Topic exchange `{{namespace}}.events`, routing key "
        f"`{message.name if control else message.name + '.{strategy_id}'}`. "
        "Bind with patterns such as `slice.*.alpha_1`, `parent.#` or `control.#`.",
        "messages": {message_id(message): _component(message)},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": "{namespace}.events",
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": AMQP,
            }
        },
    }
    if not control:
        channel["parameters"] = {"strategy_id": STRATEGY_PARAM}
    return channel


def payload_schema(message: MessageSchema) -> Doc:
    """The message's JSON Schema as a component: its own `#/definitions/...` references are
    re-anchored at the component, since inside the document `#` is the document's root."""
    pointer = f"#/components/schemas/{message_id(message)}/schema/definitions/"
    return {"schemaFormat": SCHEMA_FORMAT, "schema": _reanchor(message.schema, pointer)}


def _reanchor(node: Any, pointer: str) -> Any:
    if isinstance(node, dict):
        out = {key: _reanchor(value, pointer) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFINITIONS):
            out["$ref"] = pointer + ref.removeprefix(DEFINITIONS)
        return out
    if isinstance(node, list):
        return [_reanchor(item, pointer) for item in node]
    return node


def _message(message: MessageSchema) -> Doc:
    doc: Doc = {
        "name": message.name,
        "title": message.schema.get("title", message.name),
        "summary": message.schema.get("description", ""),
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{message_id(message)}"},
    }
    if message.kind in {"request", "reply"}:
        doc["correlationId"] = CORRELATION
    if message.kind in {"event", "reply"}:
        kind = message.name if message.kind == "event" else "reply.{outcome}"
        doc["bindings"] = {"amqp": {"messageType": kind, "bindingVersion": AMQP}}
    return doc


DEAD_LETTER: Doc = {
    "name": "dead_letter",
    "title": "Dead-lettered request",
    "summary": "A request that can never succeed, body untouched; the reason is in the headers.",
    "headers": {
        "type": "object",
        "properties": {
            "x-twap-reason": {"type": "string", "description": "not_json, schema, plan, ..."},
            "x-twap-errors": {"type": "string", "description": "`loc: msg` pairs joined by ;"},
            "x-twap-source-queue": {"type": "string"},
            "x-death": {"type": "array", "description": "set by RabbitMQ for poison messages"},
        },
    },
    "payload": {
        "schemaFormat": SCHEMA_FORMAT,
        "schema": {"description": "the original message body, byte for byte"},
    },
}


def asyncapi_document() -> Doc:
    messages = message_schemas()
    by_kind = {
        k: [m for m in messages if m.kind == k] for k in ("request", "control", "event", "reply")
    }
    channels: Doc = {
        "requests": _queue(
            "{namespace}.requests",
            "Strategies publish submit and cancel here (default exchange, routing key = the "
            "queue name). Quorum queue, dead letters to {namespace}.dlx, x-delivery-limit 5.",
            by_kind["request"],
        ),
        "control": _queue(
            "{namespace}.control",
            "Operators publish kill switch and breaker commands here.",
            by_kind["control"],
        ),
        "requestsDlq": {
            **_queue(
                "{namespace}.requests.dlq",
                "Bound to the fanout exchange {namespace}.dlx: rejected or poisoned requests.",
                [],
            ),
            "messages": {"dead_letter": {"$ref": "#/components/messages/dead_letter"}},
        },
        "reply": {
            "address": None,
            "description": "The queue a request named in its reply_to property (default "
            "exchange), with the request's correlation_id.",
            "messages": {"reply": _component(by_kind["reply"][0])},
        },
    }
    for event in by_kind["event"]:
        channels[message_id(event)] = _event_channel(event)
    operations = _operations(channels, by_kind)
    components = {m: _message(x) for x in messages for m in [message_id(x)]}
    components["dead_letter"] = DEAD_LETTER
    return {
        "asyncapi": ASYNCAPI,
        "info": {
            "title": "TWAP execution worker",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": "Strategies submit TWAP parent orders over RabbitMQ; the worker "
            "slices, schedules and submits guarded child orders, and publishes every state "
            "change as an event. Every name derives from the namespace (TWAP_NAMESPACE).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": "/",
                "description": "RabbitMQ (TWAP_AMQP_URL).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {message_id(m): payload_schema(m) for m in messages},
            "messages": components,
        },
    }


def _refs(channel_id: str, channel: Doc) -> list[Doc]:
    return [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel["messages"]]


def _operations(channels: Doc, by_kind: dict[str, list[MessageSchema]]) -> Doc:
    ops: Doc = {
        "receiveRequest": {
            "action": "receive",
            "channel": {"$ref": "#/channels/requests"},
            "summary": "Take a submit or cancel; reply to reply_to when given.",
            "messages": _refs("requests", channels["requests"]),
            "reply": {
                "address": {"location": "$message.header#/reply_to"},
                "channel": {"$ref": "#/channels/reply"},
                "messages": _refs("reply", channels["reply"]),
            },
        },
        "receiveControl": {
            "action": "receive",
            "channel": {"$ref": "#/channels/control"},
            "summary": "Apply a kill switch or circuit breaker command.",
            "messages": _refs("control", channels["control"]),
        },
        "deadLetterRequest": {
            "action": "send",
            "channel": {"$ref": "#/channels/requestsDlq"},
            "summary": "Dead-letter a request that can never succeed.",
            "messages": _refs("requestsDlq", channels["requestsDlq"]),
        },
    }
    for event in by_kind["event"]:
        channel_id = message_id(event)
        ops["send_" + message_id(event)] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": event.schema.get("description", ""),
            "messages": _refs(channel_id, channels[channel_id]),
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP}},
        }
    return ops

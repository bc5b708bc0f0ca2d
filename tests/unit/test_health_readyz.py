"""How `twap health` words a worker's /readyz answer."""

from __future__ import annotations

import json

from worker.cli.health import not_ready


def test_readiness_json_names_the_failing_parts() -> None:
    """The worker's readiness JSON becomes its failing parts with their details."""
    body = json.dumps(
        {
            "status": "not_ready",
            "failing": ["database"],
            "checks": {
                "database": {"ok": False, "detail": "unreachable"},
                "amqp": {"ok": True, "detail": "connected"},
            },
        }
    )
    assert not_ready(body) == "not ready: database (unreachable)"


def test_any_other_body_is_shown_as_is() -> None:
    """A body that is not the readiness JSON is shown unchanged."""
    assert not_ready("not ready: recovery") == "not ready: recovery"

"""The README's configuration table lists every setting of worker/settings.py once, with the
default the code has (the README is where operators look them up)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from worker.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
# Settings whose default the table states in words, not as a value.
IN_WORDS = {
    "alpaca_api_key": "none",
    "alpaca_secret_key": "none",
    "alpaca_base_url": "none",
    "alpaca_stream_url": "derived",
    "alpaca_data_url": "Alpaca's",
    "sim_ledger_path": "none",
    "sim_prices": "none",
    "log_json": "auto",
}


def table_rows() -> list[tuple[list[str], str, str]]:
    """(variable names, default cell, the whole row) of each row of the Configuration table."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows.append((re.findall(r"`([A-Z0-9_]+)`", cells[0]), cells[1], line))
    return rows


def env_names(name: str) -> list[str]:
    alias = Settings.model_fields[name].validation_alias
    choices = getattr(alias, "choices", None)
    return [str(c) for c in choices] if choices else [f"TWAP_{name.upper()}"]


def as_text(value: object) -> str:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return str(value)


def test_every_setting_has_one_row_with_its_default() -> None:
    rows = table_rows()
    for name, field in Settings.model_fields.items():
        names = env_names(name)
        found = [(i, row) for i, row in enumerate(rows) if names[0] in row[0]]
        assert len(found) == 1, f"{names[0]}: in {len(found)} rows of the README's table"
        (_, (row_names, default_cell, line)) = found[0]
        # An alias may be named in the meaning column ("aliases `APCA_API_KEY_ID`, ...").
        assert all(f"`{n}`" in line for n in names), f"{names}: an alias is missing: {line}"
        # A row may name several variables (`A` / `B`) with their defaults in the same order.
        parts = [p.strip() for p in default_cell.split(" / ")]
        part = parts[row_names.index(names[0])] if len(parts) == len(row_names) else default_cell
        expected = IN_WORDS.get(name, f"`{as_text(field.default)}`")
        assert part.split(" (")[0] == expected, (
            f"{names[0]}: README says {default_cell!r}, settings.py {field.default!r}"
        )


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    known = {n for name in Settings.model_fields for n in env_names(name)}
    test_only = {"TWAP_TEST_AMQP_URL", "TWAP_TEST_DATABASE_URL"}  # the suite's, not the worker's
    listed = {n for names, _, _ in table_rows() for n in names}
    assert listed - known - test_only == set()

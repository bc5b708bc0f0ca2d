"""Error locations: a union's tag is hidden, a field that happens to share its name is not."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from twap_schemas import InvalidMessage, parse_request
from twap_schemas.errors import errors_from_validation


class _Submit(BaseModel):
    type: Literal["submit"]
    qty: int


class _Cancel(BaseModel):
    type: Literal["cancel"]
    reason: str


_EITHER = TypeAdapter(Annotated[_Submit | _Cancel, Field(discriminator="type")])


@pytest.mark.parametrize(("value", "loc"), [
    ({"type": "submit", "qty": "x"}, "qty"),
    ({"type": "cancel", "reason": 1}, "reason"),
])
def test_a_discriminated_unions_tag_is_not_part_of_the_location(value: object, loc: str) -> None:
    """('submit', 'qty') from a tagged union is reported as 'qty'."""
    with pytest.raises(ValidationError) as exc:
        _EITHER.validate_python(value)
    assert [e.loc for e in errors_from_validation(exc.value)] == [loc]


@pytest.mark.parametrize(("body", "field"), [
    (b'{"type": "cancel", "parent_order_id": "p", "submit": 1}', "submit"),
    (b'{"type": "cancel", "parent_order_id": "p", "cancel": 1}', "cancel"),
])
def test_an_unknown_field_named_like_a_tag_is_named(body: bytes, field: str) -> None:
    """An unknown field called 'submit' or 'cancel' is reported on that field, not on '$'."""
    with pytest.raises(InvalidMessage) as exc:
        parse_request(body)
    assert [(e.loc, e.msg) for e in exc.value.errors] == [
        (field, "unknown field (not part of the contract; check its spelling)")]

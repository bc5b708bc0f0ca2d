"""The error shape every rejection uses: which field, and why."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class ErrorDetail(BaseModel):
    """One problem with a request: `loc` names the field (dotted path), `msg` says why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loc: str
    msg: str


def errors_from_validation(exc: ValidationError) -> list[ErrorDetail]:
    """Flatten pydantic's errors into field + reason pairs, in the order pydantic found them."""
    details: list[ErrorDetail] = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in _without_union_tag(err["loc"])) or "$"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            msg = _PATTERN_HINTS.get(loc, msg)
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the contract; check its spelling)"
        elif err["type"] == "missing":
            msg = "field required"
        details.append(ErrorDetail(loc=loc, msg=msg))
    return details


_PATTERN_HINTS = {
    "strategy_id": "must be 1-64 characters of A-Z a-z 0-9 _ -",
    "symbol": "must be 1-16 characters of letters, digits, '.' and '/'",
}
_NO_NUL = "must not contain the NUL character (U+0000)"
for _field in ("request_id", "parent_order_id", "reason", "operator"):
    _PATTERN_HINTS[_field] = _NO_NUL


def _without_union_tag(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # A discriminated union puts its tag ('submit', 'cancel') first, before the field; users
    # never see it. Alone it is not a tag but a field of that name (an unknown one, say).
    if len(loc) > 1 and loc[0] in {"submit", "cancel"}:
        return loc[1:]
    return loc

"""The bounds of the contract's numbers: what every store column, the scheduler and a
JavaScript strategy can hold exactly, and the one shape of a price written as a string."""

from __future__ import annotations

from dataclasses import dataclass

# 2**53 - 1: the largest integer a JSON reader that uses doubles (JavaScript) still reads exactly;
# it also fits the 64-bit columns of every quantity.
MAX_INTEGER = 9_007_199_254_740_991
# The longest duration the contract allows; it bounds the interval too (a longer interval would
# only mean one slice, and the scheduler adds intervals to times).
MAX_DURATION_SECONDS = 86_400
# A price: > 0, at most 12 digits before the point and 8 after (the store keeps it as that text).
PRICE_WHOLE_DIGITS = 12
PRICE_DECIMALS = 8
PRICE_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,8})?$"
PRICE_ZERO_PATTERN = r"^0+(\.0+)?$"
# max_catch_up_ratio as a string: 1 to 10, at most 8 decimals, no leading zero.
RATIO_DECIMALS = 8
RATIO_PATTERN = r"^(10(\.0{1,8})?|[1-9](\.[0-9]{1,8})?)$"


@dataclass(frozen=True, slots=True)
class Unrepresentable:
    """A JSON number no exact Python value can hold (`1e99999999999999999999`, an integer of
    more than 4,300 digits): kept as its text so the field it sits in is refused by name."""

    text: str

    def __repr__(self) -> str:
        return f"<number {self.text[:20]}{'...' if len(self.text) > 20 else ''}>"


# Free text (ids, reasons, operators): anything but NUL, which no PostgreSQL text column holds.
TEXT_PATTERN = r"^[^\x00]*$"

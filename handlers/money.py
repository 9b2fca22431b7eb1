"""Money: a Decimal amount with its currency, never a float.

In task data and in the history money travels as {"amount": "1200.00", "currency": "CNY"};
in the database as integer minor units with the currency code beside them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: Minor-unit exponents of the currencies the house trades in.
EXPONENTS = {
    "CNY": 2,
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "HKD": 2,
    "TWD": 2,
    "CHF": 2,
    "JPY": 0,
}
#: Largest amount accepted anywhere (the price of a very expensive work, with room).
MAX_AMOUNT = Decimal("1000000000000")
#: An amount written as text: ASCII digits, at most one dot with digits after it, and
#: a minus sign in front for a negative amount (which only the house's sums produce).
PLAIN_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class MoneyError(ValueError):
    """An amount or a currency that cannot be money."""


@dataclass(frozen=True, order=True)
class Money:
    currency: str
    amount: Decimal

    def __post_init__(self) -> None:
        if self.currency not in EXPONENTS:
            known = ", ".join(sorted(EXPONENTS))
            raise MoneyError(f"unknown currency {self.currency!r}; known: {known}")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise MoneyError(f"{self.amount!r} is not a finite decimal amount")
        if abs(self.amount) > MAX_AMOUNT:
            raise MoneyError(f"{self.amount} is larger than any amount the house handles")
        quantum = Decimal(1).scaleb(-EXPONENTS[self.currency])
        if self.amount != self.amount.quantize(quantum):
            raise MoneyError(
                f"{self.amount} {self.currency} has more decimals than the currency allows "
                f"({EXPONENTS[self.currency]})"
            )
        amount = self.amount.quantize(quantum)
        object.__setattr__(self, "amount", amount.copy_abs() if amount.is_zero() else amount)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Parse an amount given as text, int or Decimal (never float).

        Text is read as people write an amount (`PLAIN_AMOUNT`): "1200.00", "-5", never
        "1e3", "+5", "1_000", full-width digits or ".5"; and with no more decimals than the
        currency has, even zeros: "4.500" is EUR 4.50 to a computer and EUR 4,500 to
        many people, so it is refused, not guessed."""
        if isinstance(amount, float | bool):
            raise MoneyError(f"amounts are never {type(amount).__name__}: {amount!r}")
        code = str(currency).strip().upper()
        if isinstance(amount, int | Decimal):
            return cls(code, Decimal(amount))
        text = str(amount).strip()
        try:
            value = Decimal(text)
        except (InvalidOperation, ValueError) as exc:
            raise MoneyError(f"{amount!r} is not an amount") from exc
        if value.is_finite() and not PLAIN_AMOUNT.fullmatch(text):
            raise MoneyError(
                f"{amount!r} is not an amount as one is written here: digits, with a dot "
                "before the cents (no exponent, sign '+', separators or other digits)"
            )
        written = len(text.partition(".")[2])
        if code in EXPONENTS and written > EXPONENTS[code]:
            raise MoneyError(f"{amount!r} has more decimals than {code} has ({EXPONENTS[code]})")
        return cls(code, value)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(currency, Decimal(minor).scaleb(-EXPONENTS[currency]))

    @classmethod
    def from_data(cls, value: Any) -> Money:
        """From task data: {"amount": "...", "currency": "..."}."""
        if isinstance(value, Money):
            return value
        if not isinstance(value, Mapping) or "amount" not in value or "currency" not in value:
            raise MoneyError(f"{value!r} is not money: expected amount and currency")
        return cls.of(value["amount"], value["currency"])

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(currency, Decimal(0))

    @property
    def minor(self) -> int:
        return int(self.amount.scaleb(EXPONENTS[self.currency]))

    def as_data(self) -> dict[str, str]:
        return {"amount": str(self.amount), "currency": self.currency}

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.currency, self.amount + other.amount)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.currency, self.amount - other.amount)

    def times(self, rate: Decimal | str) -> Money:
        """This amount times a rate, rounded half up to the currency's minor unit."""
        quantum = Decimal(1).scaleb(-EXPONENTS[self.currency])
        product = (self.amount * Decimal(str(rate))).quantize(quantum, rounding=ROUND_HALF_UP)
        return Money(self.currency, product)

    def __neg__(self) -> Money:
        return Money(self.currency, -self.amount)

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    def __str__(self) -> str:
        return f"{self.currency} {self.amount:,}"

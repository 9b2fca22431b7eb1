"""The words a return request is made of, on their own so that the command line can
offer them as choices without importing the desk and the stores behind it."""

#: What the customer asks for.
TYPES = ("return", "exchange")
#: Why, as the return policy's decision tables know the reasons.
REASONS = ("no_reason", "defective", "not_as_described", "transit_damage", "authenticity")

__all__ = ["REASONS", "TYPES"]

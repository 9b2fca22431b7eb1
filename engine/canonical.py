"""Canonical JSON: one byte string per value, whatever the dict order or platform.

Hashes in the history (event hashes, state digests, definition hashes) are taken over
this form, so they are stable across runs, machines and databases.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=lambda v: canonical_json(v))
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if callable(value):
        return None
    raise TypeError(f"value of type {type(value).__name__} has no canonical form")


def canonical_json(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_default,
        allow_nan=False,
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(value: Any) -> str:
    return sha256_hex(canonical_json(value))


#: How deep lists and objects may nest in data given to the engine (as JSON text or as
#: objects): deeper data is refused where it comes in, before what copies, stores or
#: hashes it meets Python's recursion limit. Real data nests a few levels.
MAX_DEPTH = 64


def nesting(value: Any) -> int:
    """How deep lists and dicts nest in `value` (0 for a scalar), counted without
    recursion and given up as soon as it passes MAX_DEPTH."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


class _NotStorableError(ValueError):
    """A number JSON cannot hold: NaN, an infinity, one too large for a float."""


def _constant(name: str) -> Any:
    raise _NotStorableError(f"{name} is not a number JSON can hold")


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        shown = text if len(text) <= 24 else f"{text[:20]}..."
        raise _NotStorableError(f"{shown} is too large a number to store")
    return value


def read_json(text: str) -> Any:
    """JSON text as people give it; ValueError says what is wrong, whatever it is (not
    JSON, NaN or an infinity, nested deeper than MAX_DEPTH, a number too long to read)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except _NotStorableError as exc:
        raise ValueError(str(exc)) from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # an integer longer than Python reads from text
        limit = sys.get_int_max_str_digits()
        raise ValueError(f"a number has more than {limit:,} digits") from exc
    if nesting(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def to_plain(value: Any) -> Any:
    """A JSON-safe deep copy of `value` (Decimal and datetime kept as tagged objects)."""
    return json.loads(canonical_json(value))


# -- an instance's data, stored beside its state ----------------------------------------
#
# `show` and the other reads give an instance's data without restoring the workflow, so
# each save also stores the data as JSON in which the values JSON has no type for are
# tagged, and read back as the same Python values: {"$decimal": "1.50"} is Decimal("1.50"),
# and so on. A dict of the data's own whose only key begins with "$" is wrapped in
# {"$dict": ...}, so that nothing the data holds is ever mistaken for a tag.

_TAGS: dict[str, Any] = {
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$timedelta": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
}


class UnstorableDataError(TypeError):
    """A value the data column cannot hold exactly; the data is then not stored."""


def _tagged(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise UnstorableDataError("not a finite number")
        return value
    if isinstance(value, dict):
        inner = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnstorableDataError(f"a key of type {type(key).__name__}")
            inner[key] = _tagged(item)
        if len(inner) == 1 and next(iter(inner)).startswith("$"):
            return {"$dict": inner}
        return inner
    if isinstance(value, list):
        return [_tagged(item) for item in value]
    if isinstance(value, Decimal | datetime | date | time):
        return _default(value)  # tagged as in the canonical form
    if isinstance(value, timedelta):  # exactly, not as seconds in a float
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    raise UnstorableDataError(f"a value of type {type(value).__name__}")


def _untagged(value: Any) -> Any:
    if isinstance(value, list):
        return [_untagged(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, item),) = value.items()
        if key == "$dict":
            return {k: _untagged(v) for k, v in item.items()}
        if key in _TAGS:
            return _TAGS[key](item)
    return {k: _untagged(v) for k, v in value.items()}


def tag_data(data: Any) -> Any:
    """The data as the stored JSON holds it (values JSON has no type for tagged); None
    when it holds a value that would not read back as itself (a tuple, a set, a UUID...)."""
    try:
        return _tagged(data)
    except (UnstorableDataError, RecursionError):
        return None


def dump_tagged(tagged: Any) -> str:
    """JSON text of a value `tag_data` gave (or a part of one)."""
    try:
        return orjson.dumps(tagged).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return json.dumps(tagged, ensure_ascii=False, separators=(",", ":"))


def dump_data(data: Any) -> str | None:
    """The data as stored beside the state; None when it holds a value that would not
    read back as itself (a tuple, a set, a UUID, ...): readers then restore the state."""
    tagged = tag_data(data)
    return None if tagged is None and data is not None else dump_tagged(tagged)


def load_data(text: str) -> Any:
    # json, not orjson: orjson reads an integer beyond 64 bits as a float.
    return _untagged(json.loads(text))

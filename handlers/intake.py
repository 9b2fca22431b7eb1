"""Intake: checks made when a request is registered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.registry import TaskContext


def check_completeness(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Check that every required field of a request is present and not blank.

    Parameters: `request` (the request's fields) and `required` (the names of the fields
    that must be filled). Returns `complete` (true or false) and `missing` (the names of
    the required fields that are absent or blank, in the order given).
    """
    request = params.get("request") or {}
    if not isinstance(request, Mapping):
        raise TypeError("parameter 'request' must be a mapping of field names to values")
    required = params.get("required") or []
    if isinstance(required, str) or not all(isinstance(name, str) for name in required):
        raise TypeError("parameter 'required' must be a list of field names")
    missing = [name for name in required if _blank(request.get(name))]
    ctx.logger.info("completeness of %s: missing %s", ctx.business_key, missing or "nothing")
    return {"complete": not missing, "missing": missing}


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


HANDLERS = {
    "intake.check_completeness": check_completeness,
}

"""Narrow corrections to SpiffWorkflow behaviour, each with its reason.

Keep this list short; every entry is re-checked when the pinned version changes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import SpiffWorkflow.task as _task_module

_logger = logging.getLogger("spiff.task")
_original_set_state = _task_module.Task._set_state


def _set_state(self: Any, value: int) -> None:
    """`Task._set_state` builds a dict of log extras on every state change, even when
    nothing would log it (a sixth of the library's own run time). Build it only when
    the `spiff.task` logger is enabled."""
    if _logger.isEnabledFor(logging.INFO):
        _original_set_state(self, value)
    elif value != self._state:
        self.last_state_change = time.time()
        self._state = value


_task_module.Task._set_state = _set_state

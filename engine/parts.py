"""What the parts of `Engine` (people, jobs) use of each other, for the type checker.

`Engine` is assembled from mixins (`People`, `Jobs`) over `engine.api`; each part calls
the unit of work `Engine._change` and reads the engine's database, clock and settings.
`EnginePart` declares those once; at run time it is an empty base class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.permissions import Principal, Refusal

if TYPE_CHECKING:
    from engine.clock import Clock
    from engine.persistence import Database
    from engine.runner import Settings, Work
    from engine.views import CommandResult, TaskView

#: Decides, inside an instance command's transaction, whether the acting user may go on.
Gate = Callable[["Work", Principal], Refusal | None]


class EnginePart:
    """A part of `Engine` (see the module's text)."""

    if TYPE_CHECKING:
        db: Database
        clock: Clock
        settings: Settings

        def _change(
            self,
            instance: str | None,
            actor: str,
            apply: Callable[[Work, str | None], None],
            *,
            task_ref: str | None = None,
            fire: bool = True,
            by_id: bool = False,
            operation: str = "change",
            gate: Gate | None = None,
            immediate: bool = False,
        ) -> CommandResult: ...

        def incidents(self, *, operator: str | None = None) -> list[TaskView]: ...


__all__ = ["EnginePart", "Gate"]

"""Storage: typed records, the database and its migrations.

The names are imported on first use (PEP 562): the records need the ORM, the database
SQLAlchemy's engine, and neither is wanted by a command that only prints its help.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import exports

if TYPE_CHECKING:
    from engine.persistence.database import Database, normalise_url
    from engine.persistence.records import (
        ArchiveRecord,
        Base,
        DefinitionRecord,
        EventRecord,
        InstanceRecord,
        JobRecord,
        OperationRecord,
        RoleSetRecord,
        SourceFileRecord,
        TaskRecord,
        UserRecord,
    )

#: The database when none is named: a SQLite file in the working directory.
DEFAULT_DB = "sqlite:///artreturns.db"

_EXPORTS: dict[str, tuple[str, ...]] = {
    "engine.persistence.database": ("Database", "normalise_url"),
    "engine.persistence.records": (
        "ArchiveRecord",
        "Base",
        "DefinitionRecord",
        "EventRecord",
        "InstanceRecord",
        "OperationRecord",
        "RoleSetRecord",
        "SourceFileRecord",
        "JobRecord",
        "TaskRecord",
        "UserRecord",
    ),
}
__getattr__, __dir__ = exports(__name__, _EXPORTS, globals())


__all__ = [
    "DEFAULT_DB",
    "ArchiveRecord",
    "Base",
    "Database",
    "DefinitionRecord",
    "EventRecord",
    "InstanceRecord",
    "JobRecord",
    "OperationRecord",
    "RoleSetRecord",
    "SourceFileRecord",
    "TaskRecord",
    "UserRecord",
    "normalise_url",
]

"""Storage: typed records, the database and its migrations."""

from engine.persistence.database import DEFAULT_DB, Database, normalise_url
from engine.persistence.records import (
    Base,
    DefinitionRecord,
    EventRecord,
    InstanceRecord,
    RoleSetRecord,
    SourceFileRecord,
    TaskRecord,
)

__all__ = [
    "DEFAULT_DB",
    "Base",
    "Database",
    "DefinitionRecord",
    "EventRecord",
    "InstanceRecord",
    "RoleSetRecord",
    "SourceFileRecord",
    "TaskRecord",
    "normalise_url",
]

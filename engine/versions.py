"""Running instances stay on the version they started under; `migrate` moves them to a
newer one where that is safe (`engine.spiff.migration` decides), one instance per
transaction, each move an event in its history (`migrated`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from engine import definitions
from engine.errors import InputError, InvalidStateError
from engine.history import EventKind
from engine.parts import EnginePart
from engine.permissions import may_administer
from engine.persistence import InstanceRecord
from engine.views import _View

if TYPE_CHECKING:
    from engine.runner import Work
    from engine.spiff import SpecBundle

_MOVE = (
    update(InstanceRecord)
    .where(InstanceRecord.id == bindparam("b_id"))
    .values(definition_id=bindparam("b_definition"), process_version=bindparam("b_version"))
)


@dataclass(frozen=True)
class MigrationView(_View):
    """What `migrate` did, or would do, with one instance."""

    instance: str
    process_id: str
    from_version: int
    to_version: int
    #: Whether the move is safe; `moved`: whether it was made (never in a dry run).
    safe: bool
    moved: bool
    #: Why it cannot move (when not safe).
    reasons: list[str] = field(default_factory=list)
    #: What moving changes for the steps it waits at.
    notes: list[str] = field(default_factory=list)


class Versions(EnginePart):
    """Moving running instances between versions of their process."""

    def migrate(
        self,
        *,
        instance: str | None = None,
        process: str | None = None,
        to_version: int,
        dry_run: bool = False,
        actor: str,
    ) -> list[MigrationView]:
        """Move one running instance (`instance`) or every running instance of `process`
        to `to_version` of its process, where that is safe; with `dry_run`, only say
        for each what would happen. Unsafe moves are refused with their reasons and
        change nothing."""
        if (instance is None) == (process is None):
            raise InputError("give an instance or a process to migrate, not both")
        if dry_run:  # a read
            self.authorize(actor, "migrate", "read", target=instance or process)
        else:  # a refusal to move one instance is in its history, like every other one
            self.authorize(
                actor,
                "migrate",
                "administer",
                instance=instance,
                target=process,
                what="migrate instances",
            )
        with self.db.read() as session:
            if instance is not None:
                record = self._find_instance(session, instance)
                if record.status != "running":
                    raise InvalidStateError(
                        f"{record.business_key or f'#{record.id}'} is {record.status}",
                        "Only running instances move to another version.",
                    )
                records = [record]
            else:
                records = list(
                    session.scalars(
                        select(InstanceRecord)
                        .where(
                            InstanceRecord.process_id == process,
                            InstanceRecord.status == "running",
                            InstanceRecord.process_version != to_version,
                        )
                        .order_by(InstanceRecord.id)
                    )
                )
            process_id = records[0].process_id if records else str(process)
            target = definitions.find_definition(session, process_id, to_version)
            target_id, target_hash = target.id, target.content_hash
            for record in records:
                session.expunge(record)
        with self.db.connect() as conn:
            bundle = self._bundle(conn, target_id)
        return [
            self._migrate_one(record, bundle, target_id, target_hash, to_version, dry_run, actor)
            for record in records
        ]

    def _migrate_one(
        self,
        record: InstanceRecord,
        bundle: SpecBundle,
        target_id: int,
        target_hash: str,
        to_version: int,
        dry_run: bool,
        actor: str,
    ) -> MigrationView:
        label = record.business_key or f"#{record.id}"
        view = MigrationView(
            label, record.process_id, record.process_version, to_version, False, False
        )
        if record.process_version == to_version:
            return replace(view, reasons=[f"it is on version {to_version} already"])
        if record.process_version > to_version:
            return replace(
                view,
                reasons=[f"version {to_version} is older than its own ({record.process_version})"],
            )
        with self.db.connect() as conn:
            run = self._restore(conn, record, self.clock.now())
        found = run.migration(bundle, to_version)
        view = replace(view, safe=found.safe, reasons=found.reasons, notes=found.notes)
        if dry_run or not found.safe:
            return view

        def apply(work: Work, _task: str | None) -> None:
            again = work.run.migration(bundle, to_version)
            if not again.safe:  # it changed since it was looked at
                raise InvalidStateError(
                    f"{label} can no longer move to version {to_version}: {again.reasons[0]}"
                )
            work.run.migrate(bundle, again)
            work.conn.execute(
                _MOVE, {"b_id": work.row.id, "b_definition": target_id, "b_version": to_version}
            )
            work.row.definition_id = target_id
            work.row.process_version = to_version
            work.record_event(
                EventKind.MIGRATED,
                {
                    "from_version": record.process_version,
                    "to_version": to_version,
                    "definition": target_hash,
                    "notes": again.notes,
                },
            )

        self._change(
            label,
            actor,
            apply,
            fire=False,
            operation="migrate",
            gate=lambda work, principal: may_administer(principal, "migrate instances"),
        )
        return replace(view, moved=True)

    if TYPE_CHECKING:

        def authorize(
            self,
            actor: str,
            operation: str,
            rule: str,
            *,
            instance: str | None = None,
            target: str | None = None,
            what: str | None = None,
        ) -> None: ...

        def _find_instance(self, session: Any, ref: str) -> InstanceRecord: ...

        def _bundle(self, conn: Any, definition_id: int) -> SpecBundle: ...

        def _restore(self, conn: Any, row: Any, now: Any) -> Any: ...


__all__ = ["MigrationView", "Versions"]

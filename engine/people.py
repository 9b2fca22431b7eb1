"""The engine's commands about people: users, claims, worklists, the operation log.

`Engine` inherits these from `People`; they gather the facts `permissions` decides on
(the acting user, a task's role and claim, the roles a process draws) and record every
refusal: in the instance's history when it concerns an instance (`denied`), else in the
operation log. Instance commands pass through the gate in `Engine._work`; the rest call
`_authorize` first.
"""

from __future__ import annotations

import difflib
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from engine import oplog, users
from engine.errors import (
    ConcurrencyError,
    InputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
)
from engine.history import Break, EventKind
from engine.parts import EnginePart, Gate
from engine.permissions import (
    ADMIN,
    BUILTIN_ROLES,
    Principal,
    Refusal,
    Supervisors,
    TaskFacts,
    check_new_user,
    may_administer,
    may_cancel,
    may_delegate,
    may_housekeep,
    may_read,
    may_read_operations,
    may_retry,
    may_take_part,
    may_unclaim,
    may_work,
)
from engine.persistence import (
    DefinitionRecord,
    InstanceRecord,
    OperationRecord,
    RoleSetRecord,
    UserRecord,
)
from engine.views import CommandResult, OperationView, UserView, WorkItem

if TYPE_CHECKING:
    from engine.roles import Roles
    from engine.runner import Work
    from engine.spiff import OpenTask


#: The rules an application's own operations (`authorize`) can ask for.
RULES = ("read", "start", "take part", "housekeeping", "administer")
#: How often a claim is tried again when another command changed its instance meanwhile.
CLAIM_ATTEMPTS = 6
_LOG_ATTEMPTS = 6
#: The first pause before trying again, doubled each time (with jitter): the winner of
#: a race may still be committing when the loser finds out, and SQLite refuses a writer
#: whose snapshot is stale at once, so an immediate retry only loses again.
RETRY_PAUSE_SECONDS = 0.02

_SORTS = ("due", "age")
_DEFINITION_LANES = select(DefinitionRecord.lanes).where(DefinitionRecord.id == bindparam("b_id"))
_LATEST_ROLES = select(RoleSetRecord.roles).order_by(RoleSetRecord.id.desc()).limit(1)
_INSTANCE_HEAD = select(
    InstanceRecord.id,
    InstanceRecord.business_key,
    InstanceRecord.status,
    InstanceRecord.definition_id,
)


class People(EnginePart):
    """Users, claims, worklists and the operation log (mixed into `Engine`)."""

    if TYPE_CHECKING:
        _lane_cache: dict[int, list[str]]
        intent: str | None

        def roles(self) -> Roles | None: ...

        def _find_instance(self, session: Session, ref: str) -> InstanceRecord: ...

        def _instance_id(self, conn: Connection, ref: str) -> int: ...

    # -- authorization -------------------------------------------------------------

    def authorize(
        self,
        actor: str,
        operation: str,
        rule: str,
        *,
        instance: str | None = None,
        process: str | None = None,
        target: str | None = None,
        what: str | None = None,
    ) -> None:
        """Raise PermissionDeniedError unless `actor` may do `operation` by `rule`:

        - "read": any active user;
        - "start": a role of `process` (its latest version's lanes or their supervisors);
        - "take part": a role of the process `instance` runs;
        - "housekeeping": any active user but an auditor;
        - "administer": an admin.

        For the engine's reads and an application's own operations (adding evidence,
        importing data). A refusal is recorded like the engine's own: in `instance`'s
        history when one is named and still running, else in the operation log (with
        `target`, or `process`, as what it was about). `what` says the operation in a
        refusal ("x may not <what>"); by default "use `operation`"."""
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
        # The operation is a name ("orders import"): "x may not orders import" is no
        # sentence.
        doing = what or f"use '{operation}'"
        if instance is not None:
            self._authorize_on_instance(actor, operation, rule, instance, doing)
            return
        target = target or process
        if rule == "start":
            assert process is not None, "the start rule needs the process"
            lanes = self._process_lanes(process)
            self._authorize(
                actor, operation, lambda p, s: may_take_part(p, lanes, s, doing), target
            )
        elif rule == "read":
            self._authorize(actor, operation, lambda p, _: may_read(p), target)
        elif rule == "housekeeping":
            self._authorize(actor, operation, lambda p, _: may_housekeep(p, doing), target)
        else:
            self._authorize(actor, operation, lambda p, _: may_administer(p, doing), target)

    def _authorize_on_instance(
        self, actor: str, operation: str, rule: str, ref: str, doing: str
    ) -> None:
        with self.db.read() as session:
            conn = session.connection()
            instance_id = self._instance_id(conn, ref)
            head = conn.execute(_INSTANCE_HEAD.where(InstanceRecord.id == instance_id)).one()
            principal = users.principal(conn, actor)
            supervisors = self._supervisors(conn)
            lanes = self._lanes(conn, head.definition_id)
        if rule == "read":
            refusal = may_read(principal)
        elif rule == "housekeeping":
            refusal = may_housekeep(principal, doing)
        elif rule == "administer":
            refusal = may_administer(principal, doing)
        else:
            refusal = may_take_part(principal, lanes, supervisors, doing)
        if refusal is None:
            return
        label = head.business_key or f"#{head.id}"
        if head.status != "running":
            self._deny(actor, operation, label, refusal)
        decided = refusal
        self._change(
            str(head.id),
            actor,
            lambda work, _: None,
            by_id=True,
            fire=False,
            operation=operation,
            gate=lambda work, who: decided,
        )
        raise AssertionError("a refused command always raises")  # pragma: no cover

    def _authorize(
        self,
        actor: str,
        operation: str,
        decide: Callable[[Principal, Supervisors], Refusal | None],
        target: str | None = None,
    ) -> Principal:
        with self.db.read() as session:
            conn = session.connection()
            principal = users.principal(conn, actor)
            supervisors = self._supervisors(conn) if principal.enforced else Supervisors()
        refusal = decide(principal, supervisors)
        if refusal is not None:
            self._deny(actor, operation, target, refusal)
        return principal

    def _deny(self, actor: str, operation: str, target: str | None, refusal: Refusal) -> NoReturn:
        """Record a refusal that concerns no running instance, then raise it."""
        self._log(actor, operation, target, oplog.DENIED, {"reason": refusal.reason})
        raise PermissionDeniedError(refusal.reason, refusal.hint)

    def _log(
        self,
        actor: str,
        operation: str,
        target: str | None,
        outcome: str,
        details: dict[str, Any],
    ) -> None:
        for attempt in range(_LOG_ATTEMPTS):
            try:
                with self.db.connect() as conn:
                    self.log_operation(conn, actor, operation, target, details, outcome=outcome)
                return
            except ConcurrencyError:
                if attempt == _LOG_ATTEMPTS - 1:
                    raise
                _pause(attempt)

    def log_operation(
        self,
        conn: Connection,
        actor: str,
        operation: str,
        target: str | None,
        details: dict[str, Any],
        *,
        outcome: str = oplog.DONE,
    ) -> None:
        """Append an operation to the log inside the caller's transaction (an
        application's own changes, such as an import, kept with what they changed),
        with the intent of the command that does it (its command line), if known."""
        if self.intent is not None:
            details = {**details, "intent": self.intent}
        oplog.append(
            conn,
            at=self.clock.now(),
            actor=actor,
            operation=operation,
            target=target,
            outcome=outcome,
            details=details,
        )

    def _supervisors(self, conn: Connection) -> Supervisors:
        rows = conn.execute(_LATEST_ROLES).scalar_one_or_none()
        declared = {str(r["name"]): str(r["supervisor"]) for r in rows or []}
        return Supervisors(declared)

    def _lanes(self, conn: Connection, definition_id: int) -> list[str]:
        lanes = self._lane_cache.get(definition_id)
        if lanes is None:  # a version never changes: its lanes are read once
            found = conn.execute(_DEFINITION_LANES, {"b_id": definition_id}).scalar_one_or_none()
            lanes = self._lane_cache[definition_id] = [str(lane) for lane in found or []]
        return lanes

    def _process_lanes(self, process_id: str, version: int | None = None) -> list[str]:
        from engine import definitions

        with self.db.read() as session:
            conn = session.connection()
            definition = definitions.find_definition_row(conn, process_id, version)
            return self._lanes(conn, definition.id)

    def _start_refusal(
        self, conn: Connection, actor: str, process_id: str, definition_id: int
    ) -> Refusal | None:
        """Whether `actor` may start the process, read in the start's own transaction;
        the caller records a refusal (`_deny`) after that transaction has ended."""
        principal = users.principal(conn, actor)
        if not principal.enforced:
            return None
        lanes = self._lanes(conn, definition_id)
        return may_take_part(principal, lanes, self._supervisors(conn), f"start {process_id}")

    # -- gates for instance commands -------------------------------------------------

    def _gate(self, rule: str, what: str) -> Gate:
        """A gate for an instance command by the roles its process draws."""

        def check(work: Work, principal: Principal) -> Refusal | None:
            if not principal.enforced:
                return None
            lanes = self._lanes(work.conn, work.row.definition_id)
            supervisors = self._supervisors(work.conn)
            if rule == "cancel":
                return may_cancel(principal, lanes, supervisors)
            if rule == "retry":
                return may_retry(principal, lanes, supervisors)
            if rule == "housekeeping":
                return may_housekeep(principal, what)
            return may_take_part(principal, lanes, supervisors, what)

        return check

    def _task_refusal(self, work: Work, task_id: str | None, operation: str) -> bool:
        """Check that the acting user may complete or claim the task; when not, record
        the refusal on `work` (the command then saves only that) and return True."""
        task = work.open_task(task_id)
        if task is None:
            return False
        refusal = may_work(_acting(work), self._facts(work, task), operation)
        if refusal is None:
            return False
        work.refuse(operation, refusal, task)
        return True

    def _facts(self, work: Work, task: OpenTask) -> TaskFacts:
        claim = work.claims.get(task.id)
        claimer = claim[0] if claim else None
        return TaskFacts(
            name=task.name,
            role=task.lane,
            escalated_to=task.escalated_to,
            claimed_by=claimer,
            claim_holds=users.claim_holds(work.conn, claimer),
        )

    # -- users ---------------------------------------------------------------------

    def known_roles(self) -> list[str]:
        """Every role a user may hold: the deployed roles and their supervisors, the
        lanes of every deployed diagram, admin and auditor."""
        roles = self.roles()
        names = set(roles.names) if roles is not None else set()
        with self.db.read() as session:
            for lanes in session.scalars(select(DefinitionRecord.lanes)).all():
                names.update(str(lane) for lane in lanes or [])
        return sorted(names | set(BUILTIN_ROLES))

    def users(self, *, actor: str | None = None) -> list[UserView]:
        """Every user, active or not, by name."""
        if actor is not None:
            self._authorize(actor, "users list", lambda p, _: may_read(p))
        with self.db.read() as session:
            records = session.scalars(select(UserRecord).order_by(UserRecord.name)).all()
            return [UserView.of(r) for r in records]

    def add_user(self, name: str, roles: Iterable[str], *, actor: str) -> UserView:
        """Add a user with roles. The first user must be an admin: from then on only
        known, active users may act, and only admins add users."""
        principal = self._authorize(
            actor, "users add", lambda p, _: may_administer(p, "add users"), name
        )
        name = users.check_name(name)
        chosen = sorted({role.strip() for role in roles})
        known = self.known_roles()
        for role in chosen:
            if role not in known:
                close = difflib.get_close_matches(role, known, n=1)
                raise InputError(
                    f"no role '{role}': roles are the ones deployed (`artreturns roles`), the "
                    "lanes of deployed diagrams, admin and auditor",
                    f"Did you mean '{close[0]}'?" if close else "Known: " + ", ".join(known),
                )
        refusal = check_new_user(chosen, first=not principal.enforced)
        if refusal is not None:
            raise InputError(refusal.reason, refusal.hint)
        now = self.clock.now()
        with self.db.transaction() as session:
            if session.get(UserRecord, name) is not None:
                raise InputError(
                    f"user '{name}' already exists",
                    "`artreturns users list` shows every user and their roles.",
                )
            record = UserRecord(
                name=name,
                roles=chosen,
                active=True,
                created_at=now,
                created_by=actor,
                disabled_at=None,
                disabled_by=None,
            )
            session.add(record)
            session.flush()
            self.log_operation(session.connection(), actor, "users add", name, {"roles": chosen})
            return UserView.of(record)

    def disable_user(self, name: str, *, actor: str) -> UserView:
        """Disable a user: from now on they can do nothing, and their claims no longer
        hold. The last active admin cannot be disabled."""
        self._authorize(
            actor, "users disable", lambda p, _: may_administer(p, "disable users"), name
        )
        now = self.clock.now()
        with self.db.transaction() as session:
            # Lock the active users first, always in one order (PostgreSQL; SQLite lets
            # one writer at a time): of two admins disabling each other at once, or two
            # disabling one user, the second waits and then sees the first one's change.
            active = session.scalars(
                select(UserRecord)
                .where(UserRecord.active.is_(True))
                .order_by(UserRecord.name)
                .with_for_update()
            ).all()
            record = session.get(UserRecord, name)
            if record is None:
                names = list(session.scalars(select(UserRecord.name)).all())
                close = difflib.get_close_matches(name, names, n=1)
                raise NotFoundError(
                    f"no user '{name}'",
                    f"Did you mean '{close[0]}'?"
                    if close
                    else "`artreturns users list` lists them.",
                )
            if record not in active:
                raise InvalidStateError(f"user '{name}' is already disabled")
            if ADMIN in record.roles:
                admins = [r.name for r in active if ADMIN in r.roles]
                if admins == [name]:
                    raise InvalidStateError(
                        f"'{name}' is the last active admin: nobody could manage users after",
                        "Add another admin first (`artreturns users add NAME --role admin`).",
                    )
            record.active = False
            record.disabled_at = now
            record.disabled_by = actor
            session.flush()
            self.log_operation(
                session.connection(),
                actor,
                "users disable",
                name,
                {"roles": list(record.roles), "active": [True, False]},
            )
            return UserView.of(record)

    # -- claims --------------------------------------------------------------------

    def claim(self, task: str, *, actor: str) -> CommandResult:
        """Take an open user task: it is the actor's until they let go (`unclaim`) or
        it is delegated. Of two people claiming at once exactly one gets it; the other
        is refused with the name of the one who did. Four eyes bars a claim as it bars
        completing: who decided one level of an approval chain may not take another."""
        ref = task

        def apply(work: Work, task_id: str | None) -> None:
            open_task = _person_task(work, task_id, ref)
            if self._task_refusal(work, task_id, "claim"):
                return
            earlier = work.four_eyes_conflict(open_task.id)
            if earlier is not None:
                # A claim they could never complete would only keep the task from others.
                work.refuse("claim", _four_eyes_refusal(actor, earlier, open_task.name), open_task)
                return
            claim = work.claims.get(open_task.id)
            if claim is not None and claim[0] == actor:
                raise InvalidStateError(
                    f"'{open_task.name}' is already claimed by {actor}",
                    f"Complete it with `artreturns complete {ref}`, or let it go with "
                    f"`artreturns unclaim {ref}`.",
                )
            data = {"by": actor, "from": claim[0] if claim else None}
            work.set_claim(open_task, actor, EventKind.CLAIMED, data)

        return self._claim_command(ref, actor, apply, "claim")

    def unclaim(self, task: str, *, actor: str) -> CommandResult:
        """Let go of a claimed task: its claimer, a supervisor of its role, or (when the
        claimer has been disabled) anyone who may work it."""
        ref = task

        def apply(work: Work, task_id: str | None) -> None:
            open_task = _person_task(work, task_id, ref)
            claim = work.claims.get(open_task.id)
            if claim is None:
                raise InvalidStateError(
                    f"'{open_task.name}' is not claimed", f"Claim it with `artreturns claim {ref}`."
                )
            principal = _acting(work)
            refusal = may_unclaim(
                principal, self._facts(work, open_task), self._supervisors(work.conn)
            )
            if refusal is not None:
                work.refuse("unclaim", refusal, open_task)
                return
            work.set_claim(open_task, None, EventKind.UNCLAIMED, {"by": actor, "from": claim[0]})

        return self._claim_command(ref, actor, apply, "unclaim")

    def delegate(self, task: str, to: str, *, actor: str) -> CommandResult:
        """Give an open user task to another user, who must be active, hold its role
        and not be barred by four eyes. Whoever may claim the task may delegate it; a
        supervisor may at any time."""
        ref = task
        target = users.check_name(to)

        def apply(work: Work, task_id: str | None) -> None:
            open_task = _person_task(work, task_id, ref)
            facts = self._facts(work, open_task)
            if facts.claimed_by == target:
                raise InvalidStateError(f"'{open_task.name}' is already {target}'s")
            principal = _acting(work)
            refusal = may_delegate(
                principal,
                facts,
                users.principal(work.conn, target),
                self._supervisors(work.conn),
            )
            earlier = work.four_eyes_conflict(open_task.id, target)
            if refusal is None and earlier is not None:
                refusal = Refusal(
                    f"cannot delegate '{open_task.name}' to {target}: they already decided "
                    f"'{earlier}' in this approval chain",
                    "Four eyes: each level of an approval is decided by someone else.",
                )
            if refusal is not None:
                work.refuse("delegate", refusal, open_task)
                return
            data = {"by": actor, "from": facts.claimed_by, "to": target}
            work.set_claim(open_task, target, EventKind.DELEGATED, data)

        return self._claim_command(ref, actor, apply, "delegate")

    def _claim_command(
        self, ref: str, actor: str, apply: Callable[[Work, str | None], None], operation: str
    ) -> CommandResult:
        # A claim races with every other command on its instance (the revision check):
        # the loser runs again on what is stored, and sees who won.
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                return self._change(None, actor, apply, task_ref=ref, operation=operation)
            except ConcurrencyError:
                if attempt == CLAIM_ATTEMPTS - 1:
                    raise
                _pause(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- worklists -----------------------------------------------------------------

    def worklist(
        self,
        *,
        actor: str | None = None,
        role: str | None = None,
        everyone: bool = False,
        instance: str | None = None,
        overdue: bool = False,
        kinds: tuple[str, ...] = ("user", "manual"),
        states: tuple[str, ...] = ("READY",),
        sort: str = "due",
    ) -> list[WorkItem]:
        """Open tasks from the task table, overdue first, with each instance's summary;
        instances are never loaded.

        Whose: with `actor` (a user) and none of `role`, `everyone`, `instance`, the
        actor's own: tasks of their roles that nobody else holds, tasks escalated to
        their roles, tasks claimed by them. `role` gives a role's tasks and those
        escalated to it, `everyone` all, `instance` all of one instance. Before the
        first user exists, or without `actor`, all. `sort` is "due" (earliest deadline
        first) or "age" (oldest first)."""
        import engine.reading as lists
        from engine.reading import worklist_refusal, worklist_scope

        if sort not in lists.SORTS:
            raise InputError(f"cannot sort by {sort!r}", "Sort by due or age.")
        now = self.clock.now()
        refusal: Refusal | None = None
        with self.db.read() as session:
            conn = session.connection()
            reader = lists.Reader.on(conn)
            principal = users.principal(conn, actor) if actor is not None else None
            if principal is not None:
                supervisors = self._supervisors(conn) if principal.enforced else Supervisors()
                refusal = worklist_refusal(principal, supervisors, role, everyone)
            items: list[WorkItem] = []
            if refusal is None:
                items = lists.worklist(
                    reader,
                    principal=principal,
                    role=role,
                    everyone=everyone,
                    instance=lists.instance_id(reader, instance) if instance else None,
                    overdue=overdue,
                    kinds=kinds,
                    states=states,
                    sort=sort,
                    now=now,
                )
        if refusal is not None:
            assert actor is not None
            self._deny(actor, "tasks", worklist_scope(role, everyone, instance), refusal)
        return items

    # -- the operation log ---------------------------------------------------------

    def operations(
        self,
        *,
        actor: str | None = None,
        user: str | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> list[OperationView]:
        """The operation log, oldest first (the last `limit` entries): admins and
        auditors read it."""
        if actor is not None:
            self._authorize(actor, "operations", lambda p, _: may_read_operations(p))
        with self.db.read() as session:
            query = select(OperationRecord).order_by(OperationRecord.id.desc())
            if user is not None:
                query = query.where(OperationRecord.actor == user)
            if outcome is not None:
                query = query.where(OperationRecord.outcome == outcome)
            if limit is not None:
                query = query.limit(limit)
            records = session.scalars(query).all()
            return [OperationView.of(r) for r in reversed(records)]

    def verify_operations(self, *, actor: str | None = None) -> Break | None:
        """Recompute the operation log's hash chain; return the first broken link."""
        if actor is not None:
            self._authorize(actor, "operations", lambda p, _: may_read_operations(p))
        with self.db.read() as session:
            records = session.scalars(select(OperationRecord).order_by(OperationRecord.id)).all()
            return oplog.verify(
                oplog.Entry(
                    at=r.at,
                    actor=r.actor,
                    operation=r.operation,
                    target=r.target,
                    outcome=r.outcome,
                    details=r.details,
                    prev_hash=r.prev_hash,
                    hash=r.hash,
                )
                for r in records
            )


def _four_eyes_refusal(actor: str, earlier: str, name: str) -> Refusal:
    return Refusal(
        f"{actor} already decided '{earlier}' in this approval chain; another person must "
        f"decide '{name}'",
        "Four eyes: each level of an approval is decided by someone else.",
    )


def _pause(attempt: int) -> None:
    """Wait before trying again after losing a race: 20 ms, 40 ms, 80 ms ... each
    stretched by up to half again, so that two losers do not collide once more."""
    stretch = 1 + random.random() / 2  # noqa: S311 (spreading retries, not a secret)
    time.sleep(RETRY_PAUSE_SECONDS * (2**attempt) * stretch)


def _acting(work: Work) -> Principal:
    """The command's acting user, looked up once per command."""
    if work.principal is None:
        work.principal = users.principal(work.conn, work.actor)
    return work.principal


def _person_task(work: Work, task_id: str | None, ref: str) -> OpenTask:
    """The open user or manual task a claim command names."""
    task = work.open_task(task_id)
    if task is None:
        before = work.before.get(task_id or "")
        raise InvalidStateError(
            f"'{before.name if before else ref}' is no longer open: its deadline passed and "
            "the process moved on",
            f"See what is open now with `artreturns show {work.row.label}`.",
        )
    if task.kind not in ("user", "manual"):
        raise InputError(
            f"'{task.name}' is a {task.kind} task: only people's tasks are claimed",
            "`artreturns tasks` lists the tasks people do.",
        )
    return task

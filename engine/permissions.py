"""Who may do what: every decision about a user's rights, in one place.

The engine gathers the facts (the acting user, the task, the roles a process draws as
lanes, who supervises whom) and asks the rules below; each answers None (allowed) or a
`Refusal` that says why not and what to do. Nothing here reads the database or raises:
the engine records the refusal (in the instance's history, else in the operation log)
and raises `PermissionDeniedError`. docs/permissions.md is these rules as a table.

Before the first user exists nothing is enforced (`Principal.enforced` is False): a
fresh database runs single-user, and names given with `--as` are only labels. The
first user must be an admin; from then on every command needs a known, active user.
Only claims hold in both modes: a task claimed by someone is theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ADMIN = "admin"
AUDITOR = "auditor"
#: Roles every deployment has, beside the ones its diagrams draw.
BUILTIN_ROLES = (ADMIN, AUDITOR)

_NOT_A_USER_HINT = (
    "Act as a user with --as NAME (or ARTRETURNS_USER); `artreturns users list` lists "
    "them, and an admin adds one with `artreturns users add NAME --role ROLE`."
)


@dataclass(frozen=True)
class Principal:
    """The acting user, as the rules see them."""

    name: str
    roles: frozenset[str] = frozenset()
    #: False while no user exists: the engine then runs single-user and checks nothing.
    enforced: bool = False
    known: bool = False
    active: bool = False

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def is_auditor(self) -> bool:
        return AUDITOR in self.roles

    @property
    def work_roles(self) -> frozenset[str]:
        """The roles that do the procedure's work (all but admin and auditor)."""
        return self.roles - frozenset(BUILTIN_ROLES)


@dataclass(frozen=True)
class Refusal:
    """Why an operation is not allowed, and what to do instead."""

    reason: str
    hint: str


@dataclass(frozen=True)
class TaskFacts:
    """What the rules need to know of an open task."""

    name: str
    role: str | None
    escalated_to: str | None = None
    claimed_by: str | None = None
    #: False when the claimer has been disabled: their claim no longer holds.
    claim_holds: bool = True


@dataclass(frozen=True)
class Supervisors:
    """Which role supervises which: from the deployed roles file, else `<role>_supervisor`."""

    declared: Mapping[str, str] = field(default_factory=dict)

    def of(self, role: str) -> str:
        return self.declared.get(role, f"{role}_supervisor")

    def supervising(self, roles: Iterable[str]) -> frozenset[str]:
        """The supervisor roles among `roles`."""
        names = set(roles)
        known = set(self.declared.values())
        return frozenset(r for r in names if r in known or r.endswith("_supervisor"))


# -- the gate every command passes ------------------------------------------------------


def gate(user: Principal) -> Refusal | None:
    """Once users exist, only a known, active user may do anything at all."""
    if not user.enforced:
        return None
    if not user.known:
        return Refusal(f"'{user.name}' is not a user of this database", _NOT_A_USER_HINT)
    if not user.active:
        return Refusal(
            f"user '{user.name}' is disabled",
            "A disabled user can do nothing; an admin can add a new user for them.",
        )
    return None


def may_read(user: Principal) -> Refusal | None:
    """Instances, histories, tasks of an instance, processes, roles, users, returns."""
    return gate(user)


def may_change(user: Principal, what: str) -> Refusal | None:
    """The least every change needs: an active user who is not an auditor."""
    refused = gate(user)
    if refused is not None or not user.enforced:
        return refused
    if user.is_auditor:
        return Refusal(
            f"{user.name} is an auditor and may not {what}: auditors read everything and "
            "change nothing",
            "Ask someone who holds the role for this work.",
        )
    return None


def may_administer(user: Principal, what: str) -> Refusal | None:
    """Users, deployments, schema upgrades and data imports: admins only."""
    refused = may_change(user, what)
    if refused is not None or not user.enforced:
        return refused
    if not user.is_admin:
        return Refusal(
            f"{user.name} may not {what}: that needs the admin role",
            "Ask an admin (`artreturns users list` shows who is one).",
        )
    return None


def may_archive(user: Principal) -> Refusal | None:
    """Move closed instances' events out of the database into an export (`audit
    archive`): admins only. Its dry run changes nothing and is a read."""
    return may_administer(user, "archive histories")


def may_read_operations(user: Principal) -> Refusal | None:
    """The operation log: admins and auditors."""
    refused = gate(user)
    if refused is not None or not user.enforced:
        return refused
    if not (user.is_admin or user.is_auditor):
        return Refusal(
            f"{user.name} may not read the operation log: it is for admins and auditors",
            "Each return's own history is open to everyone: `artreturns history RMA`.",
        )
    return None


def may_list_role(user: Principal, role: str, supervisors: Supervisors) -> Refusal | None:
    """A role's worklist: its holders, its supervisor, admins and auditors."""
    refused = gate(user)
    if refused is not None or not user.enforced:
        return refused
    if role in user.roles or supervisors.of(role) in user.roles:
        return None
    if user.is_admin or user.is_auditor:
        return None
    return Refusal(
        f"{user.name} may not list the tasks of {role}: it is neither their role nor one "
        "they supervise",
        "`artreturns tasks` lists your own; `artreturns tasks --instance RMA` every open "
        "task of one return.",
    )


def may_list_everyone(user: Principal, supervisors: Supervisors) -> Refusal | None:
    """Everyone's open tasks: admins, auditors and supervisors."""
    refused = gate(user)
    if refused is not None or not user.enforced:
        return refused
    if user.is_admin or user.is_auditor or supervisors.supervising(user.roles):
        return None
    return Refusal(
        f"{user.name} may not list everyone's tasks: that is for supervisors, admins and auditors",
        "`artreturns tasks` lists your own, `--role ROLE` one of your roles'.",
    )


# -- tasks ---------------------------------------------------------------------------------


def holds_task(user: Principal, task: TaskFacts) -> bool:
    """The user holds the task's role, or the role it was escalated to. A task drawn in
    no lane is anyone's who does the procedure's work."""
    if task.role is None:
        return bool(user.work_roles)
    return task.role in user.roles or (
        task.escalated_to is not None and task.escalated_to in user.roles
    )


def supervises_task(user: Principal, task: TaskFacts, supervisors: Supervisors) -> bool:
    """The user supervises the task's role, or holds the role it was escalated to."""
    if task.role is not None and supervisors.of(task.role) in user.roles:
        return True
    return task.escalated_to is not None and task.escalated_to in user.roles


def _claimed_by_other(user: Principal, task: TaskFacts) -> bool:
    return task.claimed_by is not None and task.claimed_by != user.name and task.claim_holds


def _claimed_refusal(task: TaskFacts) -> Refusal:
    return Refusal(
        f"'{task.name}' is claimed by {task.claimed_by}",
        f"It is {task.claimed_by}'s until they let go; they or a supervisor can "
        "`artreturns unclaim` or `artreturns delegate` it.",
    )


def may_work(user: Principal, task: TaskFacts, what: str) -> Refusal | None:
    """Complete or claim a task: its role (or the role it was escalated to), and nobody
    else's claim on it."""
    if not user.enforced:
        return _claimed_refusal(task) if _claimed_by_other(user, task) else None
    refused = may_change(user, what)
    if refused is not None:
        return refused
    if not holds_task(user, task):
        needed = task.role or "a role of the procedure"
        if task.escalated_to:
            needed += f" or {task.escalated_to}"
        return Refusal(
            f"{user.name} may not {what} '{task.name}': it needs the role {needed}",
            "`artreturns tasks` lists the tasks of your roles.",
        )
    if _claimed_by_other(user, task):
        return _claimed_refusal(task)
    return None


def may_unclaim(user: Principal, task: TaskFacts, supervisors: Supervisors) -> Refusal | None:
    """Let go of a claim: the claimer; a supervisor; anyone who may work the task when
    the claimer has been disabled."""
    if not user.enforced:
        return None
    refused = may_change(user, "unclaim a task")
    if refused is not None:
        return refused
    if task.claimed_by == user.name or supervises_task(user, task, supervisors):
        return None
    if not task.claim_holds and holds_task(user, task):
        return None
    boss = supervisors.of(task.role) if task.role else "a supervisor"
    return Refusal(
        f"{user.name} may not unclaim '{task.name}': it is {task.claimed_by}'s, and only "
        f"they or {boss} may let it go",
        f"Ask {task.claimed_by} or someone with the role {boss}.",
    )


def may_delegate(
    user: Principal, task: TaskFacts, to: Principal, supervisors: Supervisors
) -> Refusal | None:
    """Hand a task to someone: whoever may claim it (so its claimer too), or a
    supervisor; only to an active user who may work it."""
    if not user.enforced:
        return None
    refused = may_change(user, "delegate a task")
    if refused is not None:
        return refused
    may_claim = may_work(user, task, "delegate") is None
    if not (may_claim or supervises_task(user, task, supervisors)):
        boss = supervisors.of(task.role) if task.role else "a supervisor"
        if _claimed_by_other(user, task):
            return Refusal(
                f"{user.name} may not delegate '{task.name}': it is {task.claimed_by}'s",
                f"{task.claimed_by} or someone with the role {boss} can delegate it.",
            )
        return Refusal(
            f"{user.name} may not delegate '{task.name}': it is not their role's task, "
            "and they do not supervise it",
            f"Ask someone with the role {task.role or 'of the task'} or {boss}.",
        )
    target = gate(to)
    if target is not None:
        return Refusal(f"cannot delegate to {to.name}: {target.reason}", target.hint)
    if to.is_auditor or not holds_task(to, task):
        return Refusal(
            f"cannot delegate '{task.name}' to {to.name}: they do not hold the role "
            f"{task.role or 'of the task'}",
            "Delegate to an active user holding the task's role (`artreturns users list`).",
        )
    return None


# -- instances -----------------------------------------------------------------------------


def _drawn(lanes: Iterable[str], supervisors: Supervisors) -> set[str]:
    names = set(lanes)
    return names | {supervisors.of(lane) for lane in names}


def may_take_part(
    user: Principal, lanes: Iterable[str], supervisors: Supervisors, what: str
) -> Refusal | None:
    """Start an instance, deliver a message, comment, add evidence: a role the process
    draws as a lane (or the supervisor of one)."""
    refused = may_change(user, what)
    if refused is not None or not user.enforced:
        return refused
    drawn = _drawn(lanes, supervisors)
    if (user.work_roles & drawn) if drawn else user.work_roles:
        return None
    needed = ", ".join(sorted(set(lanes))) or "a role of the procedure"
    return Refusal(
        f"{user.name} may not {what}: that needs a role of the process ({needed})",
        "An admin can grant the role; `artreturns users list` shows who holds which.",
    )


def may_retry(user: Principal, lanes: Iterable[str], supervisors: Supervisors) -> Refusal | None:
    """Run failed service tasks again: who takes part in the process, or an admin."""
    if user.enforced and user.is_admin and gate(user) is None:
        return None
    return may_take_part(user, lanes, supervisors, "retry failed tasks")


def may_cancel(user: Principal, lanes: Iterable[str], supervisors: Supervisors) -> Refusal | None:
    """Cancel an instance: the supervisor of one of the process's roles."""
    refused = may_change(user, "cancel an instance")
    if refused is not None or not user.enforced:
        return refused
    drawn = set(lanes)
    bosses = {supervisors.of(lane) for lane in drawn} | supervisors.supervising(drawn)
    if user.roles & bosses:
        return None
    needed = ", ".join(sorted(bosses)) or "a supervisor role"
    return Refusal(
        f"{user.name} may not cancel: that needs a supervisor role of the process ({needed})",
        "Ask a supervisor; the reason goes into the history with --reason.",
    )


def may_housekeep(user: Principal, what: str) -> Refusal | None:
    """Fire due timers, deliver pending notices: any active user but an auditor. They
    only do what is due anyway, so a scheduler account needs no role."""
    return may_change(user, what)


def check_new_user(roles: Iterable[str], *, first: bool) -> Refusal | None:
    """Rules on the roles a user may be given (which names exist is checked apart)."""
    chosen = set(roles)
    if first and ADMIN not in chosen:
        return Refusal(
            "the first user must be an admin: from the first user on, only known users may "
            "act, and someone must be able to add the others",
            "Add yourself first: `artreturns users add NAME --role admin` (add other roles "
            "with more --role options).",
        )
    if AUDITOR in chosen and len(chosen) > 1:
        return Refusal(
            "an auditor holds no other role: auditors read everything and change nothing",
            "Give the person a second user for their other work, or drop --role auditor.",
        )
    return None

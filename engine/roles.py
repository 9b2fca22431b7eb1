"""The roles a procedure's lanes may name, declared in a `roles.toml` beside its diagrams.

A process owner lists each role once, with a title, what it does and who it escalates
to; `validate` and `deploy` then refuse a lane (or an escalation) naming anything else,
so a typo in a lane name cannot create a role nobody works in.

    [customer_service]
    title = "Customer service"
    does = "intake, first approval, contact with the customer"
    supervisor = "customer_service_supervisor"   # optional; this is the default

Every role's supervisor is a known role too. Without a roles file lanes are not checked.

A top-level `user_tasks_need = ["due_time", "form"]` (before the first table) makes
`validate` and `deploy` refuse a user task without a due-time timer or without a form.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from engine.checks import USER_TASK_NEEDS
from engine.errors import Problem

ROLES_FILE = "roles.toml"
#: The top-level key that says what every user task must have (see `Roles`).
NEEDS_KEY = "user_tasks_need"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


@dataclass(frozen=True)
class Role:
    name: str
    title: str
    does: str
    supervisor: str


@dataclass(frozen=True)
class Roles:
    """The declared roles and, derived from them, their supervisor roles."""

    roles: tuple[Role, ...]
    file: str = ROLES_FILE
    #: What every user task of the procedure must have (`user_tasks_need`): a due-time
    #: timer ("due_time"), a form ("form"). Checked by `validate` and `deploy`.
    user_tasks_need: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Every role a lane may name: the declared ones and their supervisors."""
        found = {r.name for r in self.roles} | {r.supervisor for r in self.roles}
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def suggest(self, name: str) -> str | None:
        import difflib

        close = difflib.get_close_matches(name, self.names, n=1)
        return close[0] if close else None

    def as_data(self) -> list[dict[str, str]]:
        return [
            {"name": r.name, "title": r.title, "does": r.does, "supervisor": r.supervisor}
            for r in self.roles
        ]

    @classmethod
    def from_data(cls, rows: list[dict[str, Any]], file: str = ROLES_FILE) -> Roles:
        return cls(
            tuple(
                Role(str(r["name"]), str(r["title"]), str(r["does"]), str(r["supervisor"]))
                for r in rows
            ),
            file,
        )


def parse_roles(text: str, file: str = ROLES_FILE) -> tuple[Roles | None, list[Problem]]:
    """Read a roles file; the problems say what is wrong with it, line by line if TOML can."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(f"not valid TOML: {exc}", file)]
    except RecursionError:  # arrays or tables nested thousands deep
        return None, [Problem("not valid TOML: nested too deep to read", file)]
    problems: list[Problem] = []
    roles: list[Role] = []
    needs = table.pop(NEEDS_KEY, [])
    if not isinstance(needs, list) or any(n not in USER_TASK_NEEDS for n in needs):
        problems.append(
            Problem(f"'{NEEDS_KEY}' is a list of {', '.join(map(repr, USER_TASK_NEEDS))}", file)
        )
        needs = []
    for name, body in table.items():
        if not _NAME.match(name):
            problems.append(
                Problem(f"role '{name}': write names in lower case with underscores", file)
            )
            continue
        if not isinstance(body, dict):
            problems.append(Problem(f"role '{name}': expected a [{name}] table", file))
            continue
        unknown = sorted(set(body) - {"title", "does", "supervisor"})
        if unknown:
            problems.append(
                Problem(
                    f"role '{name}': unknown key '{unknown[0]}' (known: title, does, supervisor)",
                    file,
                )
            )
        title, does = body.get("title"), body.get("does")
        supervisor = body.get("supervisor", f"{name}_supervisor")
        for key, value in (("title", title), ("does", does), ("supervisor", supervisor)):
            if not isinstance(value, str) or not value.strip():
                problems.append(Problem(f"role '{name}': '{key}' must be a non-empty text", file))
        if isinstance(supervisor, str) and supervisor and not _NAME.match(supervisor):
            problems.append(
                Problem(f"role '{name}': supervisor '{supervisor}' is not a role name", file)
            )
        roles.append(Role(name, str(title or ""), str(does or ""), str(supervisor or "")))
    if not roles and not problems:
        problems.append(Problem("declares no roles", file))
    if problems:
        return None, problems
    return Roles(tuple(roles), file, tuple(needs)), []

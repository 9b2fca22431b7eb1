"""The `artreturns` command: parse options, call the engine, format what it returns.

This is the only module that prints. Expected failures (EngineError) become a one-line
message, a hint and a non-zero exit code; `--debug` shows the traceback as well.
"""

from __future__ import annotations

import getpass
import json
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from engine import (
    DEFAULT_DB,
    CommandResult,
    ConfigurationError,
    Engine,
    EngineError,
    EventView,
    FixedClock,
    HistoryBrokenError,
    InputError,
    InstanceView,
    ProcessValidationError,
    Registry,
    SystemClock,
    TaskView,
    parse_time,
)
from engine.persistence import normalise_url
from handlers import desk, mail
from handlers.store import Folders, services_factory

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    """What every command needs: the database, the clock, the acting user."""

    db: str
    now: datetime | None
    actor: str
    debug: bool
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            clock = FixedClock(self.now) if self.now is not None else SystemClock()
            self._engine = Engine(
                self.db,
                registry=Registry.from_entry_points(),
                clock=clock,
                services=services_factory(self.folders),
            )
        return self._engine

    @property
    def folders(self) -> Folders:
        """Where evidence and outbox files go: ARTRETURNS_DATA, else beside the database."""
        url = normalise_url(self.db)
        database_file = url.database if url.get_backend_name() == "sqlite" else None
        return Folders.beside(database_file)


class ArtreturnsGroup(click.Group):
    """Turns EngineError into a message, a hint and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EngineError as exc:
            if ctx.params.get("debug"):
                traceback.print_exc(file=sys.stderr)
            _error(exc)
            ctx.exit(exc.exit_code)


def _error(exc: EngineError) -> None:
    if isinstance(exc, ProcessValidationError) and len(exc.problems) > 1:
        click.echo(f"Error: {len(exc.problems)} problems in the diagrams:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"Error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


pass_context = click.make_pass_decorator(Context)


def _console() -> Console:
    # A terminal gets its own width; a pipe or file gets long lines rather than wraps.
    # markup=False: table cells hold user text ([register], comments) to print as is.
    if sys.stdout.isatty():
        return Console(highlight=False, markup=False)
    return Console(width=200, highlight=False, no_color=True, markup=False)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


# -- input parsing ------------------------------------------------------------------


def parse_data(data: str | None, sets: Sequence[str]) -> dict[str, Any]:
    """`--data JSON|@file` merged with `--set key=value` (value as JSON when it parses)."""
    result: dict[str, Any] = {}
    if data:
        text = data
        if data.startswith("@"):
            path = Path(data[1:])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"--data is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                "Give a JSON object such as '{\"amount\": 1200}' or @file.json.",
            ) from exc
        if not isinstance(loaded, dict):
            raise InputError("--data must be a JSON object", "For example '{\"approved\": true}'.")
        result.update(loaded)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r} is not key=value", "For example --set approved=true.")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"--set {item!r}: '{part}' is already a value, not an object")
            target = child
        target[parts[-1]] = value
    return result


def data_options(fn: F) -> F:
    fn = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set one field (repeatable); VALUE is read as JSON when it parses, else text. "
        "Dotted keys make nested objects.",
    )(fn)
    return click.option(
        "--data", metavar="JSON|@FILE", help="Data as a JSON object, or @file with one."
    )(fn)


# -- output -------------------------------------------------------------------------


def _task_table(tasks: Iterable[TaskView], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in ("task", "instance", "step", "role", "state", "due", "created"):
        table.add_column(column)
    for task in tasks:
        state = task.state
        if task.state == "FAILED":
            state = f"FAILED ({task.attempts}x)"
        due = _time(task.due_at)
        if task.escalated_to:
            due = f"{due} overdue, escalated to {task.escalated_to}"
        table.add_row(
            task.short_id,
            task.business_key or f"#{task.instance_id}",
            f"{task.name} [{task.bpmn_id}]",
            task.role or "",
            state,
            due,
            _time(task.created_at),
        )
    return table


def _print_result(result: CommandResult, as_json: bool, verb: str) -> None:
    if as_json:
        _echo_json(result.to_dict())
        return
    instance = result.instance
    click.echo(
        f"{verb} {instance.label} ({instance.process_id} v{instance.process_version}): "
        f"{instance.status}"
    )
    _print_open(instance)
    for failure in result.failures:
        click.echo(f"Warning: a service task failed: {failure}", err=True)
    if result.failures:
        click.echo(f"Hint: fix the cause, then run `artreturns retry {instance.label}`.", err=True)


def _print_open(instance: InstanceView) -> None:
    if not instance.open_tasks:
        return
    click.echo("Open:")
    for task in instance.open_tasks:
        details = [task.kind]
        if task.role:
            details.append(f"role {task.role}")
        if task.due_at:
            details.append(f"due {_time(task.due_at)}")
        if task.state == "FAILED":
            details.append(f"FAILED: {task.error}")
        click.echo(f"  {task.short_id}  {task.name} [{task.bpmn_id}]  ({', '.join(details)})")


# -- commands -----------------------------------------------------------------------


@click.group(cls=ArtreturnsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="ARTRETURNS_DB",
    default=DEFAULT_DB,
    show_default=True,
    help="Database: a SQLite file path or a SQLAlchemy URL (env ARTRETURNS_DB).",
)
@click.option(
    "--now",
    "now_text",
    envvar="ARTRETURNS_NOW",
    metavar="TIME",
    help="Act as if it were this ISO 8601 time (env ARTRETURNS_NOW); default: the clock.",
)
@click.option(
    "--as",
    "actor",
    envvar="ARTRETURNS_USER",
    metavar="USER",
    help="The acting user (env ARTRETURNS_USER); default: the login name.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="artreturns")
@click.pass_context
def cli(ctx: click.Context, db: str, now_text: str | None, actor: str | None, debug: bool) -> None:
    """Run the art return and exchange procedure as BPMN processes.

    \b
    Exit codes: 0 done, 1 refused or failed (the message says why), 2 bad input,
    3 lost a race with another command (run it again), 4 not allowed,
    5 a history that does not verify.

    \b
    A first session:
      artreturns init
      artreturns deploy processes/
      artreturns start return_request --key RMA-1 --set customer=Ann
      artreturns tasks
      artreturns complete RMA-1:register --set order_number=A-1
    """
    try:
        now = parse_time(now_text) if now_text else None
    except InputError as exc:
        raise InputError(f"--now (or ARTRETURNS_NOW): {exc.message}", exc.hint) from exc
    ctx.obj = Context(db=db, now=now, actor=actor or _default_actor(), debug=debug)


@cli.command()
@pass_context
def init(obj: Context) -> None:
    """Create the database schema, or upgrade it to the newest revision."""
    before, after = obj.engine.init()
    if before == after:
        click.echo(f"Database {obj.engine.db.display_url} is up to date (schema {after}).")
    else:
        click.echo(f"Database {obj.engine.db.display_url}: schema {before or 'none'} -> {after}.")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@json_option
@pass_context
def deploy(obj: Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Validate diagrams and deploy each changed process as a new version.

    PATHS are .bpmn/.dmn files or folders (default: processes/), with the roles.toml
    that declares the roles lanes may name. Nothing is deployed when any file fails
    validation.
    """
    deployed = obj.engine.deploy(paths or ("processes",), actor=obj.actor)
    if as_json:
        _echo_json([d.to_dict() for d in deployed])
        return
    for item in deployed:
        change = "deployed as" if item.created else "unchanged at"
        click.echo(f"{item.process_id}: {change} version {item.version}  ({item.name})")
    roles = obj.engine.roles()
    if roles is not None:
        click.echo(f"roles: {len(roles.roles)} declared, lanes checked against them")


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@pass_context
def validate(obj: Context, paths: tuple[str, ...]) -> None:
    """Check diagrams without deploying them (default: processes/).

    Lanes are checked against the roles.toml among PATHS, else against the roles
    deployed to the database, if any."""
    checked = obj.engine.validate(paths or ("processes",))
    for item in checked:
        click.echo(f"{item.process_id}: ok  ({item.name})")


@cli.command(name="roles")
@json_option
@pass_context
def roles_command(obj: Context, as_json: bool) -> None:
    """List the roles deployed with the diagrams (from roles.toml) and their supervisors."""
    roles = obj.engine.roles()
    if as_json:
        _echo_json(roles.as_data() if roles is not None else [])
        return
    if roles is None:
        click.echo("No roles deployed. Deploy a folder with a roles.toml: `artreturns deploy`.")
        return
    table = Table(header_style="bold")
    for column in ("role", "title", "does", "overdue tasks go to"):
        table.add_column(column)
    for role in roles.roles:
        table.add_row(role.name, role.title, role.does, role.supervisor)
    _console().print(table)


@cli.command()
@click.option(
    "--all", "all_versions", is_flag=True, help="List every version, not only the latest."
)
@json_option
@pass_context
def processes(obj: Context, all_versions: bool, as_json: bool) -> None:
    """List deployed processes and their versions."""
    found = obj.engine.processes(all_versions=all_versions)
    if as_json:
        _echo_json([p.to_dict() for p in found])
        return
    if not found:
        click.echo("No processes deployed. Deploy some with `artreturns deploy processes/`.")
        return
    table = Table(header_style="bold")
    for column in ("process", "version", "name", "roles", "deployed", "by"):
        table.add_column(column)
    for item in found:
        table.add_row(
            item.process_id + ("" if item.latest else " (old)"),
            str(item.version),
            item.name,
            ", ".join(item.lanes),
            _time(item.deployed_at),
            item.deployed_by,
        )
    _console().print(table)


@cli.command()
@click.argument("process_id")
@click.option("--key", help="Business key to name the instance by (for example RMA-2026-000001).")
@click.option("--version", type=int, help="Start on this version instead of the latest.")
@data_options
@json_option
@pass_context
def start(
    obj: Context,
    process_id: str,
    key: str | None,
    version: int | None,
    data: str | None,
    sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Start an instance of PROCESS_ID with data, and run it until it waits."""
    result = obj.engine.start(
        process_id, parse_data(data, sets), business_key=key, actor=obj.actor, version=version
    )
    _print_result(result, as_json, "Started")


@cli.command()
@click.option("--role", help="Only tasks of this role (lane).")
@click.option("--instance", help="Only tasks of this instance.")
@click.option("--all", "everything", is_flag=True, help="Also service tasks, timers and messages.")
@json_option
@pass_context
def tasks(
    obj: Context, role: str | None, instance: str | None, everything: bool, as_json: bool
) -> None:
    """List open tasks, earliest deadline first."""
    if everything:
        found = obj.engine.tasks(
            role=role,
            instance=instance,
            kinds=("user", "manual", "service", "timer", "message"),
            states=("READY", "QUEUED", "FAILED", "WAITING"),
        )
    else:
        found = obj.engine.tasks(role=role, instance=instance)
    if as_json:
        _echo_json([t.to_dict() for t in found])
        return
    if not found:
        click.echo("No open tasks.")
        return
    _console().print(_task_table(found))


@cli.command()
@click.option(
    "--status",
    type=click.Choice(["running", "completed", "cancelled"]),
    help="Only instances in this state.",
)
@click.option("--process", "process_id", help="Only instances of this process.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@pass_context
def instances(
    obj: Context, status: str | None, process_id: str | None, limit: int, as_json: bool
) -> None:
    """List instances, most recently changed first, with where each one stands."""
    found = obj.engine.instances(status=status, process_id=process_id, limit=limit)
    if as_json:
        _echo_json([i.to_dict() for i in found])
        return
    if not found:
        click.echo("No instances.")
        return
    table = Table(header_style="bold")
    for column in ("instance", "process", "status", "waiting at", "next timer", "updated"):
        table.add_column(column)
    for item in found:
        waiting = ", ".join(
            f"{t.name} ({t.role})" if t.role else t.name
            for t in item.open_tasks
            if t.kind in ("user", "manual", "service")
        )
        if item.incident_count:
            waiting += f"  [{item.incident_count} failed]"
        table.add_row(
            item.label,
            f"{item.process_id} v{item.process_version}",
            item.status,
            waiting,
            _time(item.next_timer_at),
            _time(item.updated_at),
        )
    _console().print(table)


@cli.command()
@click.argument("instance")
@json_option
@pass_context
def show(obj: Context, instance: str, as_json: bool) -> None:
    """Show an instance: status, data, open and finished tasks."""
    view = obj.engine.show(instance)
    if as_json:
        _echo_json(view.to_dict())
        return
    click.echo(f"{view.label}  (instance #{view.id}, {view.process_id} v{view.process_version})")
    click.echo(
        f"  status:   {view.status}"
        + (f", {view.incident_count} failed task(s)" if view.incident_count else "")
    )
    click.echo(f"  started:  {_time(view.started_at)} by {view.started_by}")
    if view.ended_at:
        click.echo(f"  ended:    {_time(view.ended_at)}")
    if view.next_timer_at:
        click.echo(f"  next timer: {_time(view.next_timer_at)}")
    click.echo(f"  events:   {view.event_count}")
    data = view.to_dict()["data"]
    click.echo("  data:     " + json.dumps(data, ensure_ascii=False, sort_keys=True))
    console = _console()
    if view.open_tasks:
        click.echo("Open:")
        console.print(_task_table(view.open_tasks))
        for task in view.open_tasks:
            if task.error:
                click.echo(f"  {task.short_id} failed: {task.error}")
    if view.done_tasks:
        click.echo("Done:")
        table = Table(header_style="bold")
        for column in ("step", "role", "state", "ended", "by"):
            table.add_column(column)
        for task in view.done_tasks:
            table.add_row(
                f"{task.name} [{task.bpmn_id}]",
                task.role or "",
                task.state,
                _time(task.ended_at),
                task.completed_by or "",
            )
        console.print(table)


@cli.command()
@click.argument("task")
@data_options
@json_option
@pass_context
def complete(
    obj: Context, task: str, data: str | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Complete TASK (an id prefix, or INSTANCE:STEP) with data."""
    result = obj.engine.complete(task, parse_data(data, sets), actor=obj.actor)
    _print_result(result, as_json, "Completed a task of")


@cli.command()
@click.argument("instance")
@click.option("--reason", default="", help="Why the instance is cancelled (kept in the history).")
@json_option
@pass_context
def cancel(obj: Context, instance: str, reason: str, as_json: bool) -> None:
    """Cancel a running instance."""
    result = obj.engine.cancel(instance, actor=obj.actor, reason=reason)
    _print_result(result, as_json, "Cancelled")


@cli.command(name="run-due")
@click.option("--limit", type=int, help="Handle at most this many instances.")
@json_option
@pass_context
def run_due(obj: Context, limit: int | None, as_json: bool) -> None:
    """Fire every timer that is due now (use --now to move time)."""
    results = obj.engine.run_due(actor=obj.actor, limit=limit)
    if as_json:
        _echo_json(
            [
                {
                    "instance": r.instance,
                    "error": r.error,
                    "result": r.result.to_dict() if r.result else None,
                }
                for r in results
            ]
        )
        return
    if not results:
        click.echo("No timers due.")
        return
    for item in results:
        if item.error:
            click.echo(f"{item.instance}: {item.error}", err=True)
        elif item.result:
            fired = sum(1 for e in item.result.events if e.kind == "timer_fired")
            click.echo(
                f"{item.instance}: fired {fired} timer event(s), now {item.result.instance.status}"
            )


@cli.command()
@click.option("--operator", help="Only incidents of service tasks calling this operator.")
@json_option
@pass_context
def incidents(obj: Context, operator: str | None, as_json: bool) -> None:
    """List incidents: service tasks whose handler failed, oldest first.

    Fix the cause (the error says what failed), then run them again with `retry`.

    \b
    Example:
      artreturns incidents --operator notify.customer
    """
    found = obj.engine.incidents(operator=operator)
    if as_json:
        _echo_json([t.to_dict() for t in found])
        return
    if not found:
        click.echo("No incidents.")
        return
    table = Table(header_style="bold")
    for column in ("incident", "instance", "step", "operator", "attempts", "since", "error"):
        table.add_column(column)
    for task in found:
        table.add_row(
            task.short_id,
            task.business_key or f"#{task.instance_id}",
            f"{task.name} [{task.bpmn_id}]",
            task.operator or "",
            str(task.attempts),
            _time(task.created_at),
            task.error or "",
        )
    _console().print(table)


@cli.command()
@click.argument("target", required=False)
@click.option("--all", "every", is_flag=True, help="Every incident (of --operator, if given).")
@click.option("--operator", help="Only service tasks calling this operator.")
@json_option
@pass_context
def retry(
    obj: Context, target: str | None, every: bool, operator: str | None, as_json: bool
) -> None:
    """Run failed service tasks again, once their cause is fixed.

    TARGET is an incident (its id from `artreturns incidents`, or INSTANCE:STEP) or an
    instance (every incident of it). Each retry is recorded in the instance's history.

    \b
    Examples:
      artreturns retry 3f2a9c1e
      artreturns retry RMA-2026-000042
      artreturns retry --all --operator notify.customer
    """
    if every == (target is not None):
        raise click.UsageError("give an incident or an instance, or --all (not both)")
    if target is not None:
        result = obj.engine.retry(target, actor=obj.actor, operator=operator)
        _print_result(result, as_json, "Retried")
        return
    results = obj.engine.retry_all(actor=obj.actor, operator=operator)
    if as_json:
        _echo_json(
            [
                {
                    "instance": r.instance,
                    "error": r.error,
                    "result": r.result.to_dict() if r.result else None,
                }
                for r in results
            ]
        )
        return
    if not results:
        click.echo("No incidents.")
        return
    for item in results:
        if item.error:
            click.echo(f"{item.instance}: {item.error}", err=True)
        elif item.result:
            still = len(item.result.failures)
            outcome = f"failed again ({still})" if still else "ran"
            click.echo(f"{item.instance}: {outcome}, now {item.result.instance.status}")


@cli.command()
@click.argument("instance")
@click.argument("name")
@data_options
@json_option
@pass_context
def message(
    obj: Context, instance: str, name: str, data: str | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Deliver the BPMN message NAME (with a payload) to INSTANCE."""
    result = obj.engine.message(instance, name, parse_data(data, sets), actor=obj.actor)
    _print_result(result, as_json, "Delivered to")


@cli.command()
@click.argument("instance")
@click.argument("text")
@json_option
@pass_context
def comment(obj: Context, instance: str, text: str, as_json: bool) -> None:
    """Add a comment to the history of INSTANCE."""
    result = obj.engine.comment(instance, text, actor=obj.actor)
    _print_result(result, as_json, "Commented on")


@cli.command()
@click.argument("instance")
@json_option
@pass_context
def history(obj: Context, instance: str, as_json: bool) -> None:
    """The history of INSTANCE, one event per line, oldest first."""
    events = obj.engine.history(instance)
    if as_json:
        _echo_json([e.to_dict() for e in events])
        return
    table = Table(header_style="bold")
    for column in ("#", "time", "actor", "event", "step", "details"):
        table.add_column(column)
    for event in events:
        table.add_row(
            str(event.seq),
            _time(event.at),
            event.actor,
            event.kind,
            event.task_name or "",
            _summary(event),
        )
    _console().print(table)


def _summary(event: EventView) -> str:
    data = event.data
    if event.kind == "task_completed":
        return json.dumps(data.get("data", {}), ensure_ascii=False, sort_keys=True)
    if event.kind == "handler_result":
        return f"{data.get('operator')} -> " + json.dumps(
            data.get("result", {}), ensure_ascii=False
        )
    if event.kind == "handler_failed":
        return f"{data.get('operator')}: {data.get('error')}"
    if event.kind == "timer_fired":
        return ", ".join(t.get("name", "") for t in data.get("timers", []))
    if event.kind == "started":
        return json.dumps(data.get("data", {}), ensure_ascii=False, sort_keys=True)
    if event.kind in ("message", "comment", "cancelled"):
        return str(data.get("name") or data.get("text") or data.get("reason") or "")
    return ""


@cli.command()
@click.argument("instance")
@pass_context
def verify(obj: Context, instance: str) -> None:
    """Recompute the hash chain of INSTANCE's history and report the first broken link."""
    broken = obj.engine.verify(instance)
    if broken is None:
        click.echo(f"{instance}: history intact.")
        return
    raise HistoryBrokenError(
        f"the history of {instance} is broken at event {broken.seq}: {broken.reason}",
        "The stored events were changed after they were written; compare them with a "
        "backup or an export before trusting this instance's history.",
    )


@cli.group()
def orders() -> None:
    """The orders returns are checked against."""


@orders.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@pass_context
def orders_import(obj: Context, file: Path) -> None:
    """Load orders and their artworks from a CSV or JSON FILE (all rows or none)."""
    done = desk.import_orders(obj.engine, obj.folders, file)
    click.echo(f"Imported {done.orders} order(s) with {done.artworks} artwork(s) from {file.name}.")


@cli.command()
@click.option("--order", "order_number", required=True, help="The order number.")
@click.option(
    "--artwork",
    "artwork_ids",
    multiple=True,
    required=True,
    help="An artwork of the order (repeat for several, e.g. both panels of a diptych).",
)
@click.option("--type", "request_type", type=click.Choice(desk.TYPES), required=True)
@click.option("--reason", type=click.Choice(desk.REASONS), required=True)
@click.option("--description", required=True, help="What the customer says, in their words.")
@click.option(
    "--evidence",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A photo, video or document to keep with the return (repeatable).",
)
@json_option
@pass_context
def apply(
    obj: Context,
    order_number: str,
    artwork_ids: tuple[str, ...],
    request_type: str,
    reason: str,
    description: str,
    evidence: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Register a customer's return or exchange request and start it.

    The request gets its RMA number (RMA-YYYY-NNNNNN), which names it from then on.
    """
    result = desk.apply(
        obj.engine,
        obj.folders,
        order_number=order_number,
        artwork_ids=artwork_ids,
        request_type=request_type,
        reason=reason,
        description=description,
        evidence=evidence,
        actor=obj.actor,
    )
    _print_result(result, as_json, "Registered")


@cli.command(name="returns")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@pass_context
def returns_command(obj: Context, limit: int, as_json: bool) -> None:
    """List the latest returns: ticket, where each one is or how it ended, the money."""
    lines = desk.overview(obj.engine, obj.folders, limit=limit)
    if as_json:
        _echo_json([line.as_data() for line in lines])
        return
    if not lines:
        click.echo("No returns yet. Start one with `artreturns apply`.")
        return
    table = Table(header_style="bold")
    for column in ("rma", "work", "type", "reason", "ticket", "where", "refunded", "charged"):
        table.add_column(column)
    for line in lines:
        ticket = f"{line.ticket} ({line.rule})" if line.rule else line.ticket
        table.add_row(
            line.rma,
            line.works,
            line.request_type,
            line.reason,
            ticket,
            line.where,
            line.refunded or "",
            line.charged or "",
        )
    _console().print(table)


@cli.group()
def evidence() -> None:
    """Photos, videos and documents kept with a return, by their SHA-256."""


@evidence.command(name="add")
@click.argument("rma")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_context
def evidence_add(obj: Context, rma: str, files: tuple[Path, ...]) -> None:
    """Keep FILES as evidence of RMA."""
    for item in desk.add_evidence(obj.engine, obj.folders, rma, files, obj.actor):
        click.echo(f"{item['sha256'][:12]}  {item['kind']:<8} {item['name']}")


@evidence.command(name="list")
@click.argument("rma")
@json_option
@pass_context
def evidence_list(obj: Context, rma: str, as_json: bool) -> None:
    """List the evidence of RMA: name, kind, size, SHA-256, locked or not, intact or not."""
    items = desk.list_evidence(obj.engine, obj.folders, rma)
    if as_json:
        _echo_json(items)
        return
    if not items:
        click.echo(f"No evidence kept for {rma}.")
        return
    table = Table(header_style="bold")
    for column in ("sha256", "kind", "size", "name", "locked", "intact"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["sha256"][:12],
            item["kind"],
            f"{item['size']:,}",
            item["name"],
            "locked" if item["locked"] else "",
            "yes" if item["intact"] else "NO: content changed or missing",
        )
    _console().print(table)


# -- notices ------------------------------------------------------------------------


@cli.group()
def notices() -> None:
    """Notices to customers: list them, show one, deliver the pending ones.

    \b
      artreturns notices list [RMA] [--pending] [--json]
      artreturns notices show ID [--json]
      artreturns notices send [--limit N] [--json]

    A process stores each notice it sends. By default the notice is also written, as it
    is stored, to a text file under the outbox folder (ARTRETURNS_DATA/outbox, else
    beside the database file), and counts as delivered. With ARTRETURNS_SMTP set it is
    stored pending instead, and `notices send` mails it, oldest first, outside the
    command that wrote it: run it from cron or a timer, on one machine or several. A
    notice that fails stays pending, with its attempts and last error, for the next run.

    \b
    ARTRETURNS_SMTP=smtp://USER:PASSWORD@HOST:PORT?from=ADDRESS&starttls=true
      smtp://        plain; STARTTLS with starttls=true (smtps:// is implicit TLS)
      USER:PASSWORD  optional, percent-encoded: log in with them
      PORT           default 465 for smtps, 587 with starttls=true, else 25
      from=          the sender (default ARTRETURNS_HOUSE_EMAIL)
      starttls=      true or false (default false)
      timeout=       seconds to wait for the server (default 30)
    TLS checks the server's certificate against the system's trusted authorities.
    """


def _delivery(notice: mail.Notice, now: datetime) -> str:
    if notice.delivered_at is not None:
        again = f" (attempt {notice.attempts})" if notice.attempts > 1 else ""
        return f"delivered {_time(notice.delivered_at)}{again}"
    if notice.claimed_until is not None and notice.claimed_until > now:
        return "sending"
    if notice.attempts:
        return f"pending, {notice.attempts} attempt(s)"
    return "pending"


@notices.command(name="list")
@click.argument("rma", required=False)
@click.option("--pending", is_flag=True, help="Only the notices not delivered yet.")
@json_option
@pass_context
def notices_list(obj: Context, rma: str | None, pending: bool, as_json: bool) -> None:
    """List the notices of RMA (default: all), oldest first, with their delivery."""
    found = mail.list_notices(obj.engine, rma, pending=pending)
    if as_json:
        _echo_json([n.as_data(body=False) for n in found])
        return
    if not found:
        click.echo(f"No {'pending ' if pending else ''}notices{f' for {rma}' if rma else ''}.")
        return
    now = obj.engine.clock.now()
    table = Table(header_style="bold")
    for column in ("id", "time", "rma", "notice", "locale", "to", "subject", "delivery"):
        table.add_column(column)
    for item in found:
        table.add_row(
            str(item.id),
            _time(item.created_at),
            item.rma,
            item.notice,
            item.locale,
            item.recipient,
            item.subject,
            _delivery(item, now),
        )
    _console().print(table)


@notices.command(name="show")
@click.argument("notice_id", metavar="ID", type=int)
@json_option
@pass_context
def notices_show(obj: Context, notice_id: int, as_json: bool) -> None:
    """Show notice ID whole: its delivery, subject and body."""
    item = mail.show_notice(obj.engine, notice_id)
    if as_json:
        _echo_json(item.as_data())
        return
    click.echo(f"Notice #{item.id}: {item.notice} ({item.locale}) for {item.rma}")
    click.echo(f"  to:         {item.recipient}")
    click.echo(f"  written:    {_time(item.created_at)}")
    click.echo(f"  delivery:   {_delivery(item, obj.engine.clock.now())}")
    if item.last_error and item.delivered_at is None:
        click.echo(f"  last error: {item.last_error}")
    if item.file:
        click.echo(f"  file:       {item.file}")
    click.echo("")
    click.echo(f"Subject: {item.subject}")
    click.echo("")
    click.echo(item.body.rstrip("\n"))


@notices.command(name="send")
@click.option("--limit", type=click.IntRange(min=1), help="Deliver at most this many.")
@json_option
@pass_context
def notices_send(obj: Context, limit: int | None, as_json: bool) -> None:
    """Deliver the pending notices, oldest first (SMTP if ARTRETURNS_SMTP is set)."""
    run = mail.send_notices(obj.engine, obj.folders, limit=limit)
    if as_json:
        _echo_json(run.as_data())
    elif not run.attempts:
        click.echo("No notices pending.")
    else:
        for attempt in run.attempts:
            item = attempt.notice
            where = f"#{item.id} {item.rma} {item.notice} to {item.recipient}"
            if attempt.delivered:
                click.echo(f"{where}: delivered" + (f" ({attempt.file})" if attempt.file else ""))
            elif attempt.error != run.stopped:
                click.echo(
                    f"Warning: {where}: attempt {item.attempts} failed: {attempt.error}", err=True
                )
        delivered = sum(1 for a in run.attempts if a.delivered)
        click.echo(
            f"Delivered {delivered} notice(s) through {run.transport}; {run.pending} pending."
        )
    if run.stopped is not None:
        raise ConfigurationError(
            run.stopped,
            "The notices stay pending. Check ARTRETURNS_SMTP and the mail server, then run "
            "`artreturns notices send` again.",
        )
    if any(not a.delivered for a in run.attempts) and not as_json:
        click.echo(
            "Hint: failed notices stay pending; `artreturns notices show ID` shows the error, "
            "and the next `artreturns notices send` tries them again.",
            err=True,
        )


@cli.command(name="handlers")
@json_option
@pass_context
def handlers_command(obj: Context, as_json: bool) -> None:
    """List the operators that service tasks can name, and what each does."""
    registry = obj.engine.registry
    if as_json:
        _echo_json(
            [{"operator": h.operator, "summary": h.summary, "source": h.source} for h in registry]
        )
        return
    table = Table(header_style="bold")
    for column in ("operator", "what it does", "from"):
        table.add_column(column)
    for info in registry:
        table.add_row(info.operator, info.summary, info.source)
    _console().print(table)


@cli.command()
@click.option("--instances", default=300, show_default=True, help="Instances per round.")
@click.option("--rounds", default=5, show_default=True, help="Rounds of each runner.")
@click.option(
    "--history",
    "history_sizes",
    default="10,1000",
    show_default=True,
    help="History sizes (events) whose step cost is compared.",
)
@click.option("--samples", default=25, show_default=True, help="Instances per history size.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table (for docs/benchmarks.md).")
def bench(instances: int, rounds: int, history_sizes: str, samples: int, markdown: bool) -> None:
    """Measure the engine against bare SpiffWorkflow, side by side in one run.

    Uses its own temporary SQLite files; --db is not touched.
    """
    from engine import bench as bench_module

    try:
        sizes = [int(part) for part in history_sizes.split(",") if part.strip()]
    except ValueError as exc:
        raise InputError(f"--history {history_sizes!r} is not a list of numbers") from exc
    report = bench_module.run(
        instances=instances,
        rounds=rounds,
        history_sizes=sizes,
        history_samples=samples,
        progress=lambda line: click.echo(line, err=True),
    )
    if markdown:
        click.echo("| measurement | value | unit | how |")
        click.echo("|---|---:|---|---|")
        for figure in report.figures:
            click.echo(f"| {figure.name} | {figure.value:,.2f} | {figure.unit} | {figure.note} |")
        click.echo("")
        click.echo("Machine: " + ", ".join(f"{k} {v}" for k, v in report.machine.items()))
        return
    table = Table(header_style="bold")
    for column in ("measurement", "value", "unit", "how"):
        table.add_column(column)
    for figure in report.figures:
        table.add_row(figure.name, f"{figure.value:,.2f}", figure.unit, figure.note)
    _console().print(table)
    click.echo("Machine: " + ", ".join(f"{k} {v}" for k, v in report.machine.items()))


def main() -> None:
    cli(prog_name="artreturns")


if __name__ == "__main__":
    main()


__all__ = ["cli", "main", "parse_data"]

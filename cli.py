"""The `artreturns` command: parse options, call the engine, format what it returns.

This is the only module that prints. Expected failures (EngineError) become a one-line
message, a hint and a non-zero exit code; `--debug` shows the traceback as well.
"""

from __future__ import annotations

import csv
import gc
import getpass
import json
import os
import re
import shlex
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial, update_wrapper
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

# Only what every command needs is imported here (the engine's names are imported on
# first use, see engine/__init__.py): the ORM, SpiffWorkflow, Alembic, Jinja and rich
# come with the commands that use them, so that `--help` and `tasks` stay quick.
from engine import (
    DEFAULT_DB,
    ConfigurationError,
    EngineError,
    FieldProblem,
    FixedClock,
    FormValidationError,
    HistoryBrokenError,
    InputError,
    InvalidStateError,
    ProcessValidationError,
    Registry,
    ReplayDivergedError,
    SystemClock,
    parse_time,
)
from handlers import vocabulary

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from engine import (
        CommandResult,
        Engine,
        EventView,
        Form,
        FormField,
        FormView,
        InstanceView,
        ReplayReport,
        TaskView,
        UserView,
        WorkItem,
    )
    from engine.api import DueResult
    from engine.watching import Snapshot
    from handlers import desk, mail
    from handlers.store import Folders
else:

    class _Later:
        """A module imported when one of its names is first used."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            return getattr(import_module(self._name), attr)

    def _later_class(module: str, name: str) -> Callable[..., Any]:
        """A class, made through a function that imports its module when first called."""

        def make(*args: Any, **kwargs: Any) -> Any:
            return getattr(import_module(module), name)(*args, **kwargs)

        return make

    desk = _Later("handlers.desk")
    mail = _Later("handlers.mail")
    Console = _later_class("rich.console", "Console")
    Table = _later_class("rich.table", "Table")

F = TypeVar("F", bound=Callable[..., Any])
#: "off" where workers run the service tasks (`artreturns worker`); on by default.
INLINE_ENV = "ARTRETURNS_INLINE_HANDLERS"
R = TypeVar("R")


@dataclass
class Context:
    """What every command needs: the database, the clock, the acting user."""

    db: str
    now: datetime | None
    actor: str
    debug: bool
    _engine: Engine | None = None
    #: The running command as asked (see `_intent`), kept with what it records.
    intent: str | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            # Importing the engine (SQLAlchemy, the ORM's records) makes hundreds of
            # thousands of objects that live as long as the process. The cycle collector
            # would scan them while they are made and in every collection after: pause it,
            # then set them aside (gc.freeze). A fifth of a short command's time.
            first = "engine.api" not in sys.modules
            collecting = gc.isenabled()
            gc.disable()
            try:
                pass
            finally:
                if first:
                    gc.freeze()
                if collecting:
                    gc.enable()
            self._engine = self.new_engine()
        self._engine.intent = self.intent
        return self._engine

    def new_engine(self) -> Engine:
        """An engine of its own (its connections, its cache): one per worker thread."""
        from engine import Engine, Settings
        from handlers.store import services_factory

        clock = FixedClock(self.now) if self.now is not None else SystemClock()
        inline = os.environ.get(INLINE_ENV, "on").strip().lower()
        if inline not in ("on", "off"):
            raise ConfigurationError(
                f"{INLINE_ENV}={inline!r} is neither on nor off",
                f"Set {INLINE_ENV}=off where workers run the service tasks, else leave it unset.",
            )
        return Engine(
            self.db,
            # Read from the entry points when a handler is first needed: a command
            # that runs none (tasks, show) imports no handler module.
            registry=Registry.from_entry_points,
            clock=clock,
            services=services_factory(self.folders),
            settings=Settings(inline_handlers=inline == "on"),
        )

    @property
    def folders(self) -> Folders:
        """Where evidence and outbox files go: ARTRETURNS_DATA, else beside the database."""
        import engine.reading as reading
        from handlers.store import Folders

        target = reading.driver_target(self.db)  # without SQLAlchemy, where it can
        if target is not None:
            return Folders.beside(target[1] if target[0] == "sqlite" else None)
        from engine.persistence import normalise_url

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
    elif isinstance(exc, FormValidationError):
        click.echo(f"Error: {exc.lead}:", err=True)
        for field_problem in exc.problems:
            click.echo(f"  {field_problem}", err=True)
    else:
        click.echo(f"Error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"Hint: {exc.hint}", err=True)


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


#: Options that say how to print, not what to do: left out of a command's intent.
_OUTPUT_OPTIONS = frozenset({"as_json", "as_csv"})
#: The longest intent kept with an event.
INTENT_LIMIT = 1000


def _intent(ctx: click.Context) -> str:
    """The command as the person asked for it, from what click parsed: the command's
    own arguments and options (not --db, --now, --as, which the event records apart,
    nor output options), so that a history reads what was asked, never a password."""
    parts = [ctx.command_path]
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if name in _OUTPUT_OPTIONS or value is None or value is False or value == ():
            continue
        if isinstance(param, click.Option) and value == param.default:
            continue
        values = value if isinstance(value, tuple | list) else (value,)
        for item in values:
            text = shlex.quote(str(item))
            if isinstance(param, click.Argument):
                parts.append(text)
            elif isinstance(param, click.Option) and param.is_flag:
                parts.append(param.opts[0])
            else:
                parts.append(f"{param.opts[0]} {text}")
    intent = " ".join(parts)
    return intent if len(intent) <= INTENT_LIMIT else intent[: INTENT_LIMIT - 1] + "…"


def pass_context(fn: Callable[..., R]) -> Callable[..., R]:
    """Pass the command's `Context`, with the command's intent noted on it."""

    def wrapper(*args: Any, **kwargs: Any) -> R:
        ctx = click.get_current_context()
        obj = ctx.find_object(Context)
        assert obj is not None, "the artreturns group sets the context"
        obj.intent = _intent(ctx)
        return ctx.invoke(fn, obj, *args, **kwargs)

    return update_wrapper(wrapper, fn)


def _console() -> Console:
    # A terminal gets its own width; a pipe or file gets long lines rather than wraps.
    # markup=False, emoji=False: table cells hold user text ([register], comments, a
    # customer's ":)") to print as is, never as markup or emoji codes.
    if sys.stdout.isatty():
        return Console(highlight=False, markup=False, emoji=False)
    return Console(width=200, highlight=False, no_color=True, markup=False, emoji=False)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal's stderr for a batch command (what it prints on
    stdout does not change; a pipe or a file gets no bar)."""
    if not sys.stderr.isatty():
        yield lambda _done, _total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False))


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


# -- CSV out -----------------------------------------------------------------------------

#: How a cell begins that a spreadsheet may read as a formula (OWASP: "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?\Z")


def csv_cell(value: Any) -> Any:
    """A cell as written: a text that begins like a formula, and is not a plain number
    (-12.50 stays as it is), gets a leading apostrophe, so that a spreadsheet opening the
    file shows it as text rather than running it (a customer named "=HYPERLINK(...)")."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and len(value) > 1  # "-", no value in a report, runs nothing
        and not _PLAIN_NUMBER.match(value)
    ):
        return "'" + value
    return value


class _SafeCsvWriter:
    """A CSV writer whose cells a spreadsheet will not run (`csv_cell`)."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([csv_cell(value) for value in row])


# -- input parsing ------------------------------------------------------------------


#: The most `--data @FILE` reads: an instance's data is a few kilobytes, and a file
#: that never ends (`@/dev/zero`) must not be read until memory runs out.
DATA_FILE_LIMIT = 16 * 1024 * 1024


def _data_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(DATA_FILE_LIMIT + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > DATA_FILE_LIMIT:
        raise InputError(
            f"{path} is larger than {DATA_FILE_LIMIT // (1024 * 1024)} MiB",
            "--data @FILE is for an instance's data: a JSON object of a few kilobytes.",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc


def parse_data(data: str | None, sets: Sequence[str], form: Form | None = None) -> dict[str, Any]:
    """`--data JSON|@file` merged with `--set key=value`.

    A `--set` value for a field of `form` is read as the field's type: text stays text
    ("162000.00" is never made a number), long is a whole number, boolean is
    true/false/yes/no, json is parsed. A value that does not read as its type is kept as
    text, for the engine to report with every other problem of the data. Any other
    value is read as JSON when it parses, else kept as text. `--data` is taken as given."""
    from engine.canonical import read_json

    result: dict[str, Any] = {}
    if data:
        text = data
        if data.startswith("@"):
            text = _data_file(Path(data[1:]))
        try:
            loaded = read_json(text)
        except ValueError as exc:
            raise InputError(
                f"--data is not valid JSON: {exc}",
                "Give a JSON object such as '{\"amount\": 1200}' or @file.json.",
            ) from exc
        if not isinstance(loaded, dict):
            raise InputError("--data must be a JSON object", "For example '{\"approved\": true}'.")
        result.update(loaded)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r} is not key=value", "For example --set approved=true.")
        parts = key.strip().split(".")
        field = form.field(parts[0]) if form is not None and len(parts) == 1 else None
        value: Any
        if field is not None:
            value = _typed(field, raw)
        else:
            try:
                value = read_json(raw)
            except ValueError:
                value = raw
        target = result
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"--set {item!r}: '{part}' is already a value, not an object")
            target = child
        target[parts[-1]] = value
    return result


def _typed(field: FormField, raw: str) -> Any:
    try:
        return field.parse_text(raw)
    except ValueError:
        return raw


def data_options(fn: F) -> F:
    fn = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set one field (repeatable). For a field of the task's form, VALUE is read as "
        "the field's type (text stays text); otherwise as JSON when it parses, else text. "
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
    5 stored data not as written (a history that does not verify, a state that
    cannot be read).

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
    """Create the database schema, or upgrade it to the newest revision.

    Once users exist, only an admin may upgrade; the change is in the operation log.

    \b
      artreturns --db postgresql://returns@db.example/returns init
    """
    before, after = obj.engine.init(actor=obj.actor)
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

    \b
      artreturns --as ada deploy processes/
      artreturns deploy processes/approval.bpmn processes/approval_tiers.dmn --json
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

    Every problem is listed at once, with its file, line and element id: XML and
    schema, operators, lanes, gateway flows without a condition or default, expressions,
    timers that are not ISO 8601, steps no start reaches and dead ends, elements the
    engine cannot run, and (when roles.toml sets user_tasks_need) a user task without a
    due-time timer or a form. Exit code 1 when anything is wrong.

    Lanes are checked against the roles.toml among PATHS, else against the roles
    deployed to the database, if any.

    \b
      artreturns validate processes/
      artreturns validate processes/refund.bpmn
    """
    checked = obj.engine.validate(paths or ("processes",))
    for item in checked:
        click.echo(f"{item.process_id}: ok  ({item.name})")
    if not checked:
        click.echo(
            f"{', '.join(paths or ('processes',))}: no problems, and no executable process "
            '(only processes marked isExecutable="true" are run and deployed)'
        )


@cli.command()
@click.argument("process_id")
@data_options
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(),
    metavar="PATH",
    help="Diagram files or folders to run (repeatable; default: processes/).",
)
@click.option(
    "--answer",
    "answers",
    multiple=True,
    metavar="STEP=JSON",
    help="The result of a service task, the data of a user task (by id, name or, for a "
    "service task, operator), or a message's payload (by message name). Repeatable.",
)
@click.option("--fire-timers", is_flag=True, help="Fire timers in order instead of stopping.")
@json_option
@pass_context
def simulate(
    obj: Context,
    process_id: str,
    data: str | None,
    sets: tuple[str, ...],
    paths: tuple[str, ...],
    answers: tuple[str, ...],
    fire_timers: bool,
    as_json: bool,
) -> None:
    """Show the path a case would take under the diagrams on disk; nothing is stored.

    Compiles and checks the files as `validate` does, starts PROCESS_ID on the data
    and runs it with stub handlers: a service task gets its --answer, else the sample
    its handler declares, else nothing (listed as stubbed; a handler that adds fields
    to the data then adds none, so give them in --data). A user task is completed with
    its --answer, or with no data when its form requires nothing; otherwise the run
    stops there and says which fields it waits for. A message is delivered when an
    --answer names it. Timers are reported, not waited for (--fire-timers fires them,
    earliest first). Prints the steps in order with their role and each decision
    table's outputs, the deadlines started, where the case stops or ends and the data
    it changed. No database is opened. --json prints {process, files, steps,
    deadlines, outcome, waits, error, changed, stubbed, unused_answers}.

    \b
      artreturns simulate return_request --data @case.json
      artreturns simulate return_request --data @case.json --path /tmp/tiers/ \\
          --answer approve_return='{"decision": "approve"}' --answer return_shipped='{}'
    """
    from engine.canonical import read_json
    from engine.simulate import simulate as run_simulation

    given: dict[str, Any] = {}
    for item in answers:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"--answer {item!r} is not STEP=JSON",
                'For example --answer approve_return=\'{"decision": "approve"}\'.',
            )
        try:
            given[key.strip()] = read_json(raw)
        except ValueError as exc:
            raise InputError(f"--answer {key.strip()}: not valid JSON: {exc}") from exc
    result = run_simulation(
        process_id,
        paths or ("processes",),
        parse_data(data, sets),
        registry=Registry.from_entry_points(),
        answers=given,
        fire_timers=fire_timers,
        start=obj.now or datetime.now(UTC),
    )
    if as_json:
        _echo_json(result.to_dict())
    else:
        for line in result.lines():
            click.echo(line)


@cli.command(name="docs")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--out",
    default="docs/manual",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The folder the manual is written to.",
)
@click.option(
    "--deployed",
    is_flag=True,
    help="From the latest deployed version of each process, not from files.",
)
@click.option("--check", is_flag=True, help="Write nothing; fail when --out is not up to date.")
@pass_context
def docs_command(
    obj: Context, paths: tuple[str, ...], out: str, deployed: bool, check: bool
) -> None:
    """Write the operating manual from the diagrams: an index and a page per process.

    From the files in PATHS (default: processes/, what `deploy` deploys), or with
    --deployed from the versions deployed to the database; each page says which. Per
    process: the steps in order with the role responsible, the deadline and what
    happens when it passes (an escalation, a reminder), what each step records, the
    routes out of each decision point, the decision tables it uses (every row) and
    its diagram as SVG. Pages that no process makes any more are removed.

    \b
      artreturns docs
      artreturns docs --out /tmp/manual processes/
      artreturns --db prod.db docs --deployed --out manual-prod
    """
    from engine.manual import manual_from_database, manual_from_files, render_manual, write_manual

    if deployed and paths:
        raise click.UsageError("give PATHS or --deployed, not both")
    manual = (
        manual_from_database(obj.engine, obj.actor)
        if deployed
        else manual_from_files(paths or ("processes",))
    )
    pages = render_manual(manual)
    target = Path(out)
    if check:
        stale = sorted(
            name
            for name, text in pages.items()
            if not (target / name).is_file() or (target / name).read_text(encoding="utf-8") != text
        )
        if stale:
            raise InputError(
                f"{out} is not up to date: {', '.join(stale)}",
                "Run `artreturns docs` (or `make docs`) and commit the result.",
            )
        click.echo(f"{out} is up to date ({len(pages)} files).")
        return
    for line in write_manual(pages, target):
        click.echo(line)
    click.echo(f"{out}: {len(pages)} files from {manual.source}.")


@cli.command()
@click.argument("process_id")
@click.option(
    "--from",
    "from_version",
    type=int,
    metavar="V",
    help="The deployed version to compare from (default: the latest).",
)
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="V|PATH",
    help="A deployed version, or diagram files and folders (default: processes/); "
    "repeat for several paths.",
)
@json_option
@pass_context
def diff(
    obj: Context, process_id: str, from_version: int | None, to: tuple[str, ...], as_json: bool
) -> None:
    """Tell what changed in a process, in business words, before you deploy it.

    Compares the latest deployed version of PROCESS_ID (or --from V) with the diagram
    files on disk, or with another deployed version (--to V): steps added, removed,
    renamed, moved to another role, their kind, operator, form fields, deadlines and
    scripts; flows and their conditions; the same for the processes it calls; and the
    decision tables it uses, row by row (before → after) with their hit policy and
    columns. Files named stand in for the version's files of the same name, so naming
    one edited table shows that table's changes alone. Where shapes are drawn, and
    white space, are no change. Exits 0 whether or not anything changed.

    --json prints {process, from, to, changes}: each change has what (step, name,
    role, kind, operator, deadline, timer, form field, flow, condition, decision row,
    hit policy, ...), change (added, removed, changed), id, where (the process or
    decision), before, after and the text.

    \b
      artreturns diff return_request
      artreturns diff approval --from 2 --to processes/approval.bpmn
      artreturns diff return_request --from 1 --to 2 --json
    """
    version = to[0].removeprefix("v") if len(to) == 1 else ""
    to_version = int(version) if version.isdigit() and not Path(to[0]).exists() else None
    compared = obj.engine.diff(
        process_id,
        from_version=from_version,
        to_version=to_version,
        to_paths=to if to and to_version is None else None,
        actor=obj.actor,
    )
    if as_json:
        _echo_json(compared.to_dict())
        return
    heading = f"{compared.process_id} {compared.before} → {compared.after}"
    if not compared.changes:
        click.echo(f"{heading}: no change")
        return
    click.echo(heading)
    for change in compared.changes:
        click.echo(f"  {change.line}")


@cli.command(name="roles")
@json_option
@pass_context
def roles_command(obj: Context, as_json: bool) -> None:
    """List the roles deployed with the diagrams (from roles.toml) and their supervisors.

    \b
      artreturns roles --json
    """
    obj.engine.authorize(obj.actor, "roles", "read")
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
    """List deployed processes and their versions.

    \b
      artreturns processes --all
    """
    found = obj.engine.processes(all_versions=all_versions, actor=obj.actor)
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
    """Start an instance of PROCESS_ID with data, and run it until it waits.

    \b
      artreturns start return_request --key RMA-1 --set customer=Ann
    """
    result = obj.engine.start(
        process_id, parse_data(data, sets), business_key=key, actor=obj.actor, version=version
    )
    _print_result(result, as_json, "Started")


#: The columns of `tasks --csv`, before one column per summary field.
WORKLIST_CSV = (
    "task_id",
    "rma",
    "step",
    "name",
    "role",
    "assignee",
    "due_at",
    "overdue",
    "escalated_to",
    "created_at",
    "age_seconds",
    "state",
    "kind",
)


@cli.command()
@click.option("--role", help="The tasks of this role and those escalated to it, not only yours.")
@click.option("--all", "everyone", is_flag=True, help="Everyone's open tasks, not only yours.")
@click.option("--instance", help="Every open task of this instance (RMA or number).")
@click.option("--overdue", is_flag=True, help="Only tasks past their due time.")
@click.option(
    "--sort",
    type=click.Choice(["due", "age"]),
    default="due",
    show_default=True,
    help="After the overdue ones: earliest due time first, or oldest first.",
)
@click.option(
    "--any-kind",
    is_flag=True,
    help="Also service tasks (failed ones too), timers and message waits.",
)
@json_option
@click.option(
    "--csv", "as_csv", is_flag=True, help="Print CSV (a header line, then a task a line)."
)
@pass_context
def tasks(
    obj: Context,
    role: str | None,
    everyone: bool,
    instance: str | None,
    overdue: bool,
    sort: str,
    any_kind: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List your open tasks, overdue first, then by due time (or age).

    Yours are the tasks of your roles that nobody else has claimed, those escalated to
    one of your roles, and those claimed by (or delegated to) you. Before the first user
    exists, every open task. --role lists one of your roles' tasks (or one you
    supervise), --all everyone's (supervisors, admins, auditors), --instance every open
    task of one return.

    \b
      artreturns tasks                       what is yours to do
      artreturns tasks --overdue --sort age  the oldest late ones first
      artreturns tasks --role finance --csv > finance.csv

    \b
    --json gives a list of objects with the keys of a task: id, short_id, instance_id,
    business_key (the RMA), bpmn_id (the step), name, kind, role, state, operator,
    due_at, escalated_to, created_at, ended_at, completed_by, attempts, error,
    claimed_by (the assignee), claimed_at; and overdue (true/false), age_seconds,
    summary (an object: artwork, customer). Times are ISO 8601 in UTC.
    --csv gives the columns task_id, rma, step, name, role, assignee, due_at, overdue,
    escalated_to, created_at, age_seconds, state, kind, then one per summary field
    (artwork, customer).
    """
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    kinds: tuple[str, ...] = ("user", "manual")
    states: tuple[str, ...] = ("READY",)
    if any_kind:
        kinds = ("user", "manual", "service", "timer", "message")
        states = ("READY", "QUEUED", "FAILED", "WAITING")
    asked: dict[str, Any] = {
        "role": role,
        "everyone": everyone,
        "overdue": overdue,
        "kinds": kinds,
        "states": states,
        "sort": sort,
    }
    found = _worklist_by_driver(obj, instance, asked)
    if found is None:  # the engine answers (and records a refusal)
        found = obj.engine.worklist(actor=obj.actor, instance=instance, **asked)
    from engine.reading import summary_paths

    fields = list(summary_paths())
    if as_json:
        _echo_json(
            [
                {
                    **item.task.to_dict(),
                    "overdue": item.overdue,
                    "age_seconds": item.age_seconds,
                    "summary": {name: item.summary.get(name) for name in fields},
                }
                for item in found
            ]
        )
        return
    if as_csv:
        writer = _SafeCsvWriter(sys.stdout)
        writer.writerow([*WORKLIST_CSV, *fields])
        for item in found:
            task = item.task
            writer.writerow(
                [
                    task.id,
                    task.business_key or f"#{task.instance_id}",
                    task.bpmn_id,
                    task.name,
                    task.role or "",
                    task.claimed_by or "",
                    _iso(task.due_at),
                    "true" if item.overdue else "false",
                    task.escalated_to or "",
                    _iso(task.created_at),
                    item.age_seconds,
                    task.state,
                    task.kind,
                    *(item.summary.get(name) or "" for name in fields),
                ]
            )
        return
    if not found:
        click.echo("No open tasks.")
        return
    _console().print(_worklist_table(found, fields, any_kind))


def _worklist_by_driver(
    obj: Context, instance: str | None, asked: dict[str, Any]
) -> list[WorkItem] | None:
    """The worklist read through the database driver alone, without importing
    SQLAlchemy or the engine: the same query `Engine.worklist` runs. None when the
    engine must answer: a database URL the driver cannot open as it is, or a refusal,
    which the engine records."""
    import engine.reading as lists
    from engine.permissions import Supervisors

    with lists.open_reader(obj.db) as reader:
        if reader is None:
            return None
        principal = lists.principal(reader, obj.actor)
        supervisors = lists.supervisors(reader) if principal.enforced else Supervisors()
        refusal = lists.worklist_refusal(principal, supervisors, asked["role"], asked["everyone"])
        if refusal is not None:
            return None
        now = obj.now or datetime.now(UTC)
        number = lists.instance_id(reader, instance) if instance else None
        return lists.worklist(reader, principal=principal, instance=number, now=now, **asked)


def _show_by_driver(
    obj: Context, instance: str
) -> tuple[InstanceView, dict[str, Any] | None] | None:
    """`show` read through the database driver alone: the same reads `Engine.show` and
    `desk.picture` make. None when the engine must answer: a URL the driver cannot open
    as it is, an instance last saved before its data was stored beside its state, or a
    refusal, which the engine records."""
    import engine.reading as reading
    from engine.permissions import may_read
    from handlers.store import picture as returns_picture

    with reading.open_reader(obj.db) as reader:
        if reader is None:
            return None
        number = reading.instance_id(reader, instance)
        if may_read(reading.principal(reader, obj.actor)) is not None:
            return None
        view = reading.instance_view(reader, number)
        if view is None:
            return None
        label = view.business_key
        found = returns_picture.picture(reader, obj.folders, label, view.data) if label else None
        return view, found


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _age(seconds: int) -> str:
    """A task's age for people: 3d 4h, 5h 20m, 12m."""
    minutes = seconds // 60
    days, hours = divmod(minutes // 60, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes % 60}m"
    return f"{minutes}m"


def _worklist_table(items: Sequence[WorkItem], fields: Sequence[str], states: bool) -> Table:
    table = Table(header_style="bold")
    columns = ["task", "rma", *fields, "step", "role", "assignee", "age", "due"]
    if states:
        columns.append("state")
    for column in columns:
        table.add_column(column)
    for item in items:
        task = item.task
        due = _time(task.due_at)
        if item.overdue:
            due += " OVERDUE"
        if task.escalated_to:
            due += f", escalated to {task.escalated_to}"
        row = [
            task.short_id,
            task.business_key or f"#{task.instance_id}",
            *(item.summary.get(name) or "" for name in fields),
            f"{task.name} [{task.bpmn_id}]",
            task.role or "",
            task.claimed_by or "",
            _age(item.age_seconds),
            due,
        ]
        if states:
            row.append(f"FAILED ({task.attempts}x)" if task.state == "FAILED" else task.state)
        table.add_row(*row)
    return table


@cli.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit (with --json: the numbers).")
@click.option("--role", help="Only this role's work: its tasks and those escalated to it.")
@json_option
@pass_context
def watch(obj: Context, interval: float, once: bool, role: str | None, as_json: bool) -> None:
    """Watch work in flight, refreshed until Ctrl-C: open, late, escalated, failed.

    One frame shows, per step of each process (and role): how many items are open, how
    many are overdue or escalated, and the one waiting longest; then the totals per
    role, the escalated items, the failed service tasks (incidents), the jobs waiting
    for a worker, the instances running per process and the returns in flight per
    ticket status, and the time of the frame. Everyone's work is for supervisors,
    admins and auditors; --role one role's (its holders and supervisor too).

    \b
      artreturns watch                       refreshed every 5 seconds
      artreturns watch --role finance --interval 2
      artreturns watch --once --json         one frame's numbers, for a script

    \b
    --json (with --once) gives an object: at, role, totals (open, overdue, escalated,
    incidents, jobs), steps (a list: process_id, bpmn_id, name, role, kind, open,
    overdue, escalated, oldest_key, oldest_since, oldest_age_seconds), roles (role ->
    open, overdue), escalated and incidents (lists: key, process_id, bpmn_id, name,
    role, operator, escalated_to, due_at, overdue, attempts, error, since), jobs
    (queued, retrying, running) and in_flight (process -> running instances, ticket ->
    running returns). Times are ISO 8601 in UTC.
    """
    if as_json and not once:
        raise click.UsageError("--json gives one frame: add --once")
    if once:
        frame = _watch_frame(obj, role)
        if as_json:
            _echo_json(frame.to_dict())
        else:
            _console().print(_watch_view(frame, None))
        return
    import time

    from rich.live import Live

    try:
        view = _watch_view(_watch_frame(obj, role), interval)
        with Live(view, console=_console(), auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(_watch_view(_watch_frame(obj, role), interval), refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends


def _watch_frame(obj: Context, role: str | None) -> Snapshot:
    """One frame, read through the database driver alone where it can (as `tasks`);
    else, and for a refusal (which the engine records), by the engine."""
    import engine.reading as reading
    from engine.permissions import Supervisors
    from engine.watching import snapshot
    from handlers.store.tallies import TALLIES

    with reading.open_reader(obj.db) as reader:
        if reader is not None:
            principal = reading.principal(reader, obj.actor)
            supervisors = reading.supervisors(reader) if principal.enforced else Supervisors()
            if reading.worklist_refusal(principal, supervisors, role, role is None) is None:
                now = obj.now or datetime.now(UTC)
                return snapshot(reader, now=now, role=role, tallies=TALLIES)
    return obj.engine.watch(actor=obj.actor, role=role, tallies=TALLIES)


def _watch_view(frame: Snapshot, interval: float | None) -> Any:
    """A frame as rich renders it: a headline, then a table per part."""
    from rich.console import Group

    totals = frame.totals
    whose = f"role {frame.role}" if frame.role else "everyone"
    head = (
        f"Work in flight ({whose}) at {_time(frame.at)}: {totals['open']} open, "
        f"{totals['overdue']} overdue, {totals['escalated']} escalated, "
        f"{totals['incidents']} failed, {totals['jobs']} jobs"
    )
    if interval is not None:
        head += f"; refreshed every {interval:g}s, Ctrl-C to stop"
    parts: list[Any] = [head]
    steps = Table(title="Open work by step", header_style="bold", title_justify="left")
    for column in ("process", "step", "role", "open", "overdue", "escalated", "oldest"):
        steps.add_column(column, justify="right" if column in ("open", "overdue") else "left")
    for step in frame.steps:
        waits = "message awaited" if step.kind == "message" else step.role or ""
        steps.add_row(
            step.process_id,
            f"{step.name} [{step.bpmn_id}]",
            waits,
            str(step.open),
            f"{step.overdue} OVERDUE" if step.overdue else "0",
            str(step.escalated) if step.escalated else "",
            f"{step.oldest_key}, {_age(step.oldest_age_seconds)}",
        )
    parts.append(steps if frame.steps else "No open work.")
    if frame.roles:
        roles = Table(title="By role", header_style="bold", title_justify="left")
        for column in ("role", "open", "overdue"):
            roles.add_column(column)
        for name, counts in frame.roles.items():
            roles.add_row(name or "(no lane)", str(counts["open"]), str(counts["overdue"]))
        parts.append(roles)
    for title, items, total in (
        ("Escalated", frame.escalated, frame.escalated_total),
        ("Failed service tasks (incidents)", frame.incidents, frame.incidents_total),
    ):
        if not items:
            parts.append(f"{title}: none.")
            continue
        shown = f"{title}: {total}" + (f", the first {len(items)}" if total > len(items) else "")
        table = Table(title=shown, header_style="bold", title_justify="left")
        incident = title.startswith("Failed")
        columns = ["rma", "step", "role"]
        columns += ["operator", "attempts", "error"] if incident else ["escalated to", "due"]
        for column in columns:
            table.add_column(column)
        for item in items:
            row = [item.key, f"{item.name} [{item.bpmn_id}]", item.role or ""]
            if incident:
                row += [item.operator or "", str(item.attempts), item.error or ""]
            else:
                due = _time(item.due_at) + (" OVERDUE" if item.overdue else "")
                row += [item.escalated_to or "", due]
            table.add_row(*row)
        parts.append(table)
    jobs = ", ".join(f"{count} {name}" for name, count in frame.jobs.items())
    parts.append(f"Jobs waiting for a worker: {jobs}.")
    for name, counts in frame.in_flight.items():
        said = ", ".join(f"{key} {count}" for key, count in counts.items()) or "none"
        parts.append(f"Running, by {name}: {said}.")
    return Group(*parts)


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
    """List instances, most recently changed first, with where each one stands.

    \b
      artreturns instances --status running --process return_request --limit 20
    """
    found = obj.engine.instances(status=status, process_id=process_id, limit=limit, actor=obj.actor)
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
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="As it stood at TIME (ISO 8601), rebuilt by replaying its history.",
)
@json_option
@pass_context
def show(obj: Context, instance: str, at: str | None, as_json: bool) -> None:
    """The whole picture of INSTANCE (an RMA or #number) on one screen.

    For a return: the customer, the order and its works, the request, the policy's
    decision, what is open now and who holds it with its deadline, the path taken so
    far, the money (refund due, ledger), the evidence with its SHA-256 and whether it
    is intact, the notices sent, and open incidents. For any other instance: its
    status, data, and tasks.

    \b
      artreturns show RMA-2026-000001
      artreturns show RMA-2026-000001 --json | jq .return.money

    \b
    --json gives the instance (id, uid, business_key, process_id, process_version,
    status, started_at, started_by, updated_at, ended_at, next_timer_at,
    incident_count, event_count, data, open_tasks, done_tasks) and `return`: for a
    return, an object with rma, ticket, customer, order, artworks, request, policy,
    money, evidence and notices; else null.

    --at TIME shows the instance as it stood then: its status, data, open tasks (who
    held them, their deadlines) and the steps done by then, rebuilt from its history
    as `artreturns replay` does (the return's ledger, evidence and notices are shown
    as of now by `show` alone; with --at, `return` is null).

    \b
      artreturns show RMA-2026-000001 --at 2026-11-20T12:00Z
    """
    if at is not None:
        _show_at(obj, instance, parse_time(at), as_json)
        return
    found = _show_by_driver(obj, instance)
    if found is None:  # the engine answers (restores an old instance, records a refusal)
        view = obj.engine.show(instance, actor=obj.actor)
        label = view.business_key or ""
        picture = desk.picture(obj.engine, obj.folders, label, view.data) if label else None
    else:
        view, picture = found
    if as_json:
        _echo_json({**view.to_dict(), "return": picture})
        return
    _print_instance(obj, view, picture)


def _print_instance(
    obj: Context,
    view: InstanceView,
    picture: dict[str, Any] | None,
    *,
    then: datetime | None = None,
) -> None:
    """An instance on one screen (what `show` prints). `then`: the moment a view of the
    past stands at (what was overdue then), its data a key a line."""
    incidents = f", {view.incident_count} failed task(s)" if view.incident_count else ""
    click.echo(
        f"{view.label}  {view.process_id} v{view.process_version}, {view.status}{incidents}"
        f"  (instance #{view.id}, {view.event_count} events)"
    )
    click.echo(f"  started:   {_time(view.started_at)} by {view.started_by}")
    if view.ended_at:
        click.echo(f"  ended:     {_time(view.ended_at)}")
    if view.next_timer_at:
        click.echo(f"  next timer: {_time(view.next_timer_at)}")
    if picture is not None:
        _show_return(picture)
    elif then is not None:
        click.echo("  data:")
        for key, value in sorted(view.to_dict()["data"].items()):
            click.echo(f"    {key}: {_short_value(value)}")
    else:
        data = view.to_dict()["data"]
        click.echo("  data:      " + json.dumps(data, ensure_ascii=False, sort_keys=True))
    console = _console()
    click.echo("")
    if view.open_tasks:
        click.echo("Now:")
        table = Table(header_style="bold")
        for column in ("task", "step", "role", "held by", "due", "state"):
            table.add_column(column)
        now = then or obj.now or datetime.now(UTC)
        for task in view.open_tasks:
            due = _time(task.due_at)
            if task.due_at is not None and task.due_at <= now and task.kind in ("user", "manual"):
                due += " OVERDUE"
            if task.escalated_to:
                due += f", escalated to {task.escalated_to}"
            state = f"FAILED ({task.attempts}x)" if task.state == "FAILED" else task.state
            table.add_row(
                task.short_id,
                f"{task.name} [{task.bpmn_id}]",
                task.role or "",
                task.claimed_by or "",
                due,
                state,
            )
        console.print(table)
    elif view.status == "running":
        click.echo("Now: nothing open (waiting for a timer or a message).")
    failed = [t for t in view.open_tasks if t.state == "FAILED"]
    if failed:
        click.echo("Incidents:")
        for task in failed:
            click.echo(
                f"  {task.short_id}  {task.name} [{task.bpmn_id}] calling {task.operator}, "
                f"{task.attempts} attempt(s): {task.error}"
            )
        click.echo(f"  Fix the cause, then `artreturns retry {view.label}`.")
    people = [t for t in view.done_tasks if t.kind in ("user", "manual")]
    if people:
        click.echo("Path so far:")
        table = Table(header_style="bold")
        for column in ("ended", "step", "role", "by"):
            table.add_column(column)
        for task in people:
            table.add_row(
                _time(task.ended_at),
                f"{task.name} [{task.bpmn_id}]",
                task.role or "",
                task.completed_by or "",
            )
        console.print(table)
    if picture is not None:
        _show_return_records(picture)


def _show_at(obj: Context, instance: str, at: datetime, as_json: bool) -> None:
    """`show --at`: the instance as its replayed history had it at `at`."""
    view, report = obj.engine.as_it_stood(instance, at=at, actor=obj.actor)
    _replay_verdict(report, quiet=True)
    if as_json:
        _echo_json({**view.to_dict(), "return": None, "as_of": _iso(at)})
        return
    click.echo(
        f"As it stood at {_time(at)} (after event {view.event_count}, {_time(view.updated_at)}):"
    )
    _print_instance(obj, view, None, then=at)


def _replay_verdict(report: ReplayReport, *, quiet: bool = False) -> None:
    """Say what did not hold in a replay, on stderr, and exit 5; a clean replay says
    its one line unless `quiet`."""
    if report.clean:
        if not quiet:
            click.echo(report.summary())
        return
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}", err=True)
    divergence = report.replayed.divergence
    if divergence is not None:
        click.echo(f"DIVERGED at {divergence.headline()}", err=True)
        for line in divergence.details:
            click.echo(f"  {line}", err=True)
    raise ReplayDivergedError(
        report.summary(),
        "The history does not rebuild the instance as recorded: the definition it ran "
        "under, the engine's code or the events were changed. Compare with an export "
        "(`artreturns audit verify --export DIR`) before trusting this instance.",
    )


def _money(value: Any) -> str:
    """{"amount": "162000.00", "currency": "CNY"} as CNY 162,000.00."""
    if isinstance(value, dict) and "amount" in value:
        try:
            amount = f"{Decimal(str(value['amount'])):,}"
        except ArithmeticError:
            amount = str(value["amount"])
        return f"{value.get('currency', '')} {amount}".strip()
    return "" if value is None else str(value)


def _show_return(picture: dict[str, Any]) -> None:
    """The return's people, order, works, request and policy, as lines."""
    customer = picture.get("customer") or {}
    order = picture.get("order") or {}
    request = picture.get("request") or {}
    policy = picture.get("policy") or {}
    email = f" <{customer['email']}>" if customer.get("email") else ""
    click.echo(f"  ticket:    {picture.get('ticket')}")
    click.echo(f"  customer:  {customer.get('name', '')}{email}")
    click.echo(
        f"  order:     {order.get('order_number')}, {order.get('channel')} "
        f"({order.get('jurisdiction')}), sold {order.get('sold_at')}, "
        f"delivered {order.get('delivered_at') or '(not yet)'}"
    )
    for work in picture.get("artworks") or []:
        click.echo(
            f"  artwork:   {work.get('artwork_id')} {work.get('title')} by "
            f"{work.get('artist')} ({work.get('category')}), {_money(work.get('price'))}"
        )
    click.echo(
        f"  request:   {request.get('type')}, {request.get('reason')}: "
        f"{request.get('description')!r}, reported {request.get('reported_at')}"
    )
    decision = policy.get("eligibility") or "(not decided yet)"
    rule = f" by {policy['rule']}" if policy.get("rule") else ""
    tier = f", approval tier {policy['tier']}" if policy.get("tier") else ""
    click.echo(f"  policy:    {decision}{rule}{tier}")
    if policy.get("basis"):
        click.echo(f"             {policy['basis']}")
    if policy.get("closed_by"):
        click.echo(f"  closed by: {policy['closed_by']}")


def _show_return_records(picture: dict[str, Any]) -> None:
    """The return's money, evidence and notices, as tables."""
    console = _console()
    money = picture.get("money") or {}
    if money.get("refund_due") or money.get("ledger"):
        due = _money(money.get("refund_due"))
        by = f", by {money['refund_deadline']}" if money.get("refund_deadline") else ""
        click.echo(f"Money: refund due {due or '(not set)'}{by}")
        if money.get("ledger"):
            table = Table(header_style="bold")
            for column in ("time", "entry", "kind", "amount", "channel"):
                table.add_column(column)
            for entry in money["ledger"]:
                table.add_row(
                    _time(datetime.fromisoformat(entry["at"])),
                    entry["reference"],
                    entry["kind"],
                    _money(entry["amount"]),
                    entry.get("channel") or "",
                )
            console.print(table)
    evidence = picture.get("evidence") or []
    if evidence:
        click.echo("Evidence:")
        table = Table(header_style="bold")
        for column in ("sha256", "kind", "name", "locked", "intact"):
            table.add_column(column)
        for item in evidence:
            table.add_row(
                item["sha256"][:12],
                item["kind"],
                item["name"],
                "locked" if item["locked"] else "",
                "yes" if item["intact"] else "NO: content changed or missing",
            )
        console.print(table)
    notices = picture.get("notices") or []
    if notices:
        click.echo("Notices sent:")
        table = Table(header_style="bold")
        for column in ("id", "time", "notice", "to", "delivered"):
            table.add_column(column)
        for notice in notices:
            table.add_row(
                str(notice["id"]),
                _time(datetime.fromisoformat(notice["at"])),
                notice["notice"],
                notice["to"],
                "yes" if notice["delivered"] else "pending",
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
    """Complete TASK (an id prefix, or INSTANCE:STEP) with data.

    The data must fit the task's form, as `artreturns form TASK` shows it: every field
    that is unknown, missing, of the wrong type or not among the choices is listed, and
    nothing is saved. --set reads each value as its field's type, so an amount stays
    text ("162000.00"). Without --data or --set, a terminal asks for the fields one by
    one; a pipe gets the list of required fields instead.

    \b
      artreturns complete RMA-1:approve_return --set decision=approve --set note=ok
      artreturns complete RMA-1:inspect_work --data @report.json
      artreturns complete 3f2a9c1e         (asks for each field)
    """
    engine = obj.engine
    form = engine.form(task) if sets or not data else None
    if data or sets:
        payload = parse_data(data, sets, form.form if form is not None else None)
    elif form is None or form.form is None or not form.fields:
        payload = {}
    elif _stdin_is_terminal():
        payload = _fill_in(form)
    else:
        raise _no_data(form, task)
    result = engine.complete(task, payload, actor=obj.actor)
    _print_result(result, as_json, "Completed a task of")


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _no_data(view: FormView, ref: str) -> FormValidationError:
    """The refusal when a form needs data and there is no terminal to ask on."""
    form = view.form
    assert form is not None
    required = form.required
    example = shlex.quote(json.dumps(form.example(), ensure_ascii=False))
    command = f"artreturns complete {shlex.quote(ref)} --data {example}"
    if not required:
        return FormValidationError(
            view.name,
            [FieldProblem(f.id, f"optional, {f.what}") for f in form.fields],
            f"Give the fields you mean to with --data or --set, or --data '{{}}' for none:\n"
            f"  {command}",
            lead=f"no --data or --set for '{view.name}', and no terminal to ask on",
        )
    return FormValidationError(
        view.name,
        [FieldProblem(f.id, f"required, {f.what}") for f in required],
        f"Give the fields with --data or --set, for example:\n  {command}\n"
        f"`artreturns form {ref}` describes every field of the form.",
        lead=f"no --data or --set for '{view.name}', and no terminal to ask on",
    )


_SKIPPED = object()


def _fill_in(view: FormView) -> dict[str, Any]:
    """Ask for each field of a task's form on the terminal (on stderr, so that stdout
    keeps only the result): the choices of an enum are numbered, a required field is
    asked again until it is given, an optional one is skipped with Enter."""
    role = f", role {view.role}" if view.role else ""
    click.echo(f"{view.name} [{view.bpmn_id}] of {view.instance}{role}", err=True)
    click.echo("Fields marked * are required; press Enter to skip an optional one.", err=True)
    answers: dict[str, Any] = {}
    for field in view.fields:
        click.echo("", err=True)
        mark = " *" if field.required else ""
        click.echo(f"{field.label}{mark} ({field.type})", err=True)
        if field.documentation:
            click.echo(f"  {field.documentation}", err=True)
        for number, choice in enumerate(field.choices, start=1):
            click.echo(f"  {number}) {choice.id} - {choice.name}", err=True)
        value = click.prompt(
            f"{field.id} [{_asked_as(field)}]",
            default="",
            show_default=False,
            value_proc=partial(_answer, field),
            err=True,
        )
        if value is not _SKIPPED:
            answers[field.id] = value
    return answers


def _asked_as(field: FormField) -> str:
    if field.type == "enum":
        return f"1-{len(field.choices)} or a name"
    return {
        "string": "text",
        "long": "a whole number",
        "boolean": "yes/no",
        "date": "YYYY-MM-DD",
        "json": "JSON",
        "amount": "an amount such as 300.00",
    }[field.type]


def _answer(field: FormField, text: str) -> Any:
    """One typed answer as the field's value; click asks again on a UsageError."""
    if not text.strip():
        if field.required:
            raise click.UsageError(f"{field.label} is required.")
        return _SKIPPED
    try:
        return field.parse_text(text)
    except ValueError as exc:
        raise click.UsageError(f"{exc}.") from exc


@cli.command(name="form")
@click.argument("task")
@json_option
@pass_context
def form_command(obj: Context, task: str, as_json: bool) -> None:
    """Show the form of TASK: each field's type, choices, and whether it is required.

    \b
      artreturns form RMA-2026-000001:inspect_work
      artreturns form 3f2a9c1e --json
    """
    obj.engine.authorize(obj.actor, "form", "read", target=task)
    view = obj.engine.form(task)
    if as_json:
        _echo_json(view.to_dict())
        return
    role = f", role {view.role}" if view.role else ""
    click.echo(f"{view.name} [{view.bpmn_id}] of {view.instance}{role}")
    if not view.has_form:
        click.echo("No form: the task takes any data with --data/--set, or none.")
        return
    if view.variable:
        click.echo(f"The fields go into the data as '{view.variable}'.")
    if not view.fields:
        click.echo("The form has no fields: complete the task without data.")
        return
    table = Table(header_style="bold")
    for column in ("field", "type", "required", "label", "choices, or what to write"):
        table.add_column(column)
    for field in view.fields:
        if field.choices:
            notes = ", ".join(f"{c.id} ({c.name})" for c in field.choices)
        else:
            notes = field.documentation or ""
        table.add_row(field.id, field.type, "yes" if field.required else "", field.label, notes)
    _console().print(table)


# -- people: users, claims, delegation ------------------------------------------------


@cli.group()
def users() -> None:
    """The people who may act, and their roles.

    Roles are the lanes of the deployed diagrams (and the roles file's supervisors),
    plus admin and auditor. Before the first user exists, anyone may do anything and
    --as is only a label; the first user must be an admin, and from then on only known,
    active users may act, each within their roles. Users are never deleted, only
    disabled, so that every name in a history keeps meaning someone.

    \b
      artreturns users add ada --role admin
      artreturns users add fin-fay --role finance
      artreturns users list
      artreturns users disable fin-fay
    """


def _user_table(found: Sequence[UserView]) -> Table:
    table = Table(header_style="bold")
    for column in ("user", "roles", "active", "added", "by", "disabled"):
        table.add_column(column)
    for user in found:
        disabled = ""
        if user.disabled_at is not None:
            disabled = f"{_time(user.disabled_at)} by {user.disabled_by}"
        table.add_row(
            user.name,
            ", ".join(user.roles),
            "yes" if user.active else "no",
            _time(user.created_at),
            user.created_by,
            disabled,
        )
    return table


@users.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="A role to hold (repeatable): a lane of a deployed diagram, admin or auditor.",
)
@json_option
@pass_context
def users_add(obj: Context, name: str, roles: tuple[str, ...], as_json: bool) -> None:
    """Add user NAME with one or more roles (admins only, once users exist).

    \b
      artreturns users add ada --role admin
      artreturns --as ada users add ivy --role inspector --role expert
    """
    user = obj.engine.add_user(name, roles, actor=obj.actor)
    if as_json:
        _echo_json(user.to_dict())
        return
    click.echo(f"Added {user.name} with the role(s) {', '.join(user.roles)}.")


@users.command(name="list")
@json_option
@pass_context
def users_list(obj: Context, as_json: bool) -> None:
    """List every user, active or disabled, with their roles.

    \b
      artreturns users list --json
    """
    found = obj.engine.users(actor=obj.actor)
    if as_json:
        _echo_json([u.to_dict() for u in found])
        return
    if not found:
        click.echo(
            "No users yet: anyone may act. Add the first (an admin) with "
            "`artreturns users add NAME --role admin`."
        )
        return
    _console().print(_user_table(found))


@users.command(name="disable")
@click.argument("name")
@json_option
@pass_context
def users_disable(obj: Context, name: str, as_json: bool) -> None:
    """Disable user NAME: they can do nothing more, and their claims no longer hold.

    \b
      artreturns --as ada users disable fin-fay
    """
    user = obj.engine.disable_user(name, actor=obj.actor)
    if as_json:
        _echo_json(user.to_dict())
        return
    click.echo(f"Disabled {user.name}; their claimed tasks are free for their roles again.")


@cli.command()
@click.argument("task")
@json_option
@pass_context
def claim(obj: Context, task: str, as_json: bool) -> None:
    """Claim TASK (an id prefix, or INSTANCE:STEP): it is yours until you let it go.

    Only a holder of the task's role (or of the role it was escalated to) may claim it;
    of two people claiming at once, one gets it and the other is told who did.

    \b
      artreturns --as fin-fay claim RMA-2026-000001:confirm_refund
    """
    result = obj.engine.claim(task, actor=obj.actor)
    _print_result(result, as_json, "Claimed a task of")


@cli.command()
@click.argument("task")
@json_option
@pass_context
def unclaim(obj: Context, task: str, as_json: bool) -> None:
    """Let go of TASK, so that anyone of its role may take it.

    Its claimer may, and a supervisor of its role; when the claimer has been disabled,
    anyone who may work the task.

    \b
      artreturns --as fin-fay unclaim RMA-2026-000001:confirm_refund
    """
    result = obj.engine.unclaim(task, actor=obj.actor)
    _print_result(result, as_json, "Let go of a task of")


@cli.command()
@click.argument("task")
@click.option("--to", "to", required=True, metavar="USER", help="The user to give it to.")
@json_option
@pass_context
def delegate(obj: Context, task: str, to: str, as_json: bool) -> None:
    """Give TASK to another user, who must hold its role (and not break four eyes).

    Whoever may claim the task may delegate it; a supervisor of its role may at any time.

    \b
      artreturns --as fin-sam delegate RMA-2026-000001:confirm_refund --to fin-fay
    """
    result = obj.engine.delegate(task, to, actor=obj.actor)
    _print_result(result, as_json, f"Delegated to {to} a task of")


@cli.command()
@click.option("--user", help="Only what this user did (or was refused).")
@click.option("--denied", is_flag=True, help="Only refused operations.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N entries.")
@click.option("--verify", is_flag=True, help="Check the log's hash chain instead of listing it.")
@json_option
@pass_context
def operations(
    obj: Context,
    user: str | None,
    denied: bool,
    limit: int | None,
    verify: bool,
    as_json: bool,
) -> None:
    """The operation log of what was done outside any one return (admins, auditors).

    It also holds every refusal that concerns no return.

    Adding and disabling users, deployments, schema upgrades and imports are logged
    here, each with who, when and what changed; refusals that concern a return are in
    its own history (`artreturns history RMA`). The log is hash-chained like a history.

    \b
      artreturns operations --limit 20
      artreturns operations --user fin-fay --denied --json
      artreturns operations --verify
    """
    if verify:
        broken = obj.engine.verify_operations(actor=obj.actor)
        if broken is None:
            click.echo("Operation log intact.")
            return
        raise HistoryBrokenError(
            f"the operation log is broken at entry {broken.seq}: {broken.reason}",
            "The stored entries were changed after they were written; compare them with a "
            "backup before trusting the log.",
        )
    found = obj.engine.operations(
        actor=obj.actor, user=user, outcome="denied" if denied else None, limit=limit
    )
    if as_json:
        _echo_json([o.to_dict() for o in found])
        return
    if not found:
        click.echo("No operations logged.")
        return
    table = Table(header_style="bold")
    for column in ("#", "time", "user", "operation", "target", "outcome", "details"):
        table.add_column(column)
    for entry in found:
        table.add_row(
            str(entry.id),
            _time(entry.at),
            entry.actor,
            entry.operation,
            entry.target or "",
            entry.outcome,
            json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
        )
    _console().print(table)


@cli.command()
@click.argument("instance", required=False)
@click.option("--process", "process", help="Every running instance of this process.")
@click.option(
    "--to-version", "to_version", type=int, required=True, help="The version to move them to."
)
@click.option("--dry-run", is_flag=True, help="Say what would happen to each; change nothing.")
@json_option
@pass_context
def migrate(
    obj: Context,
    instance: str | None,
    process: str | None,
    to_version: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Move running instances to a newer version of their process, where that is safe.

    INSTANCE (an RMA or #number), or --process P for every running instance of P not on
    the version yet. A move is safe when every step that ran or waits still exists in
    the new version and no step that already ran changed there: the new version then
    decides only what comes next. Deadlines already running keep their due times.
    Unsafe moves are refused with the reason and change nothing; each move is a
    `migrated` event in the instance's history. Instances not moved stay on their
    version and finish under it. --dry-run says, for each, what would happen (any user
    may ask; moving needs the admin role). --json gives a list of {instance,
    process_id, from_version, to_version, safe, moved, reasons, notes}.

    \b
      artreturns migrate --process return_request --to-version 2 --dry-run
      artreturns migrate RMA-2026-000001 --to-version 2
    """
    if (instance is None) == (process is None):
        raise click.UsageError("give INSTANCE or --process P")
    views = obj.engine.migrate(
        instance=instance, process=process, to_version=to_version, dry_run=dry_run, actor=obj.actor
    )
    if as_json:
        _echo_json([v.to_dict() for v in views])
        return
    if not views:
        click.echo(f"No running instance of {process} is on another version.")
        return
    for view in views:
        if view.moved:
            verdict = f"moved v{view.from_version} -> v{view.to_version}"
        elif view.safe:
            verdict = f"can move v{view.from_version} -> v{view.to_version}"
        else:
            verdict = f"stays on v{view.from_version}"
        click.echo(f"{view.instance}: {verdict}")
        for reason in view.reasons:
            click.echo(f"  because {reason}")
        for note in view.notes:
            click.echo(f"  {note}")
    moved = sum(v.moved for v in views)
    movable = sum(v.safe for v in views)
    if dry_run:
        click.echo(f"{movable} of {len(views)} can move to version {to_version} (dry run).")
    else:
        click.echo(f"{moved} of {len(views)} moved to version {to_version}.")
    if instance is not None and not views[0].safe:
        raise InvalidStateError(
            f"{views[0].instance} cannot move to version {to_version}",
            "It stays on its version and finishes under it.",
        )


@cli.command()
@click.argument("instance")
@click.option("--reason", default="", help="Why the instance is cancelled (kept in the history).")
@json_option
@pass_context
def cancel(obj: Context, instance: str, reason: str, as_json: bool) -> None:
    """Cancel a running instance.

    \b
      artreturns --as cs-lead cancel RMA-2026-000001 --reason "customer withdrew"
    """
    result = obj.engine.cancel(instance, actor=obj.actor, reason=reason)
    _print_result(result, as_json, "Cancelled")


@cli.command(name="run-due")
@click.option("--limit", type=int, help="Handle at most this many instances.")
@json_option
@pass_context
def run_due(obj: Context, limit: int | None, as_json: bool) -> None:
    """Fire every timer that is due now (use --now to move time).

    Each instance is its own transaction; when one cannot be fired, the others still
    are, and the command exits 1 after reporting them all.

    \b
      artreturns run-due                          (from cron, every few minutes)
      artreturns --now 2026-12-01T09:00Z run-due
    """
    with _progress("Firing due timers") as progress:
        results = obj.engine.run_due(actor=obj.actor, limit=limit, progress=progress)
    if as_json:
        _echo_json([r.to_dict() for r in results])
    elif not results:
        click.echo("No timers due.")
    else:
        for item in results:
            if item.error:
                click.echo(f"{item.instance}: {item.error}", err=True)
            elif item.result:
                fired = sum(1 for e in item.result.events if e.kind == "timer_fired")
                status = item.result.instance.status
                click.echo(f"{item.instance}: fired {fired} timer event(s), now {status}")
    _exit_if_any_failed(results, "fired")


@cli.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs run at once (threads, each with its own connections).",
)
@click.option("--once", is_flag=True, help="Run the jobs that are due, then stop.")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Stop after this many jobs.")
@click.option(
    "--lease",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds a claimed job stays this worker's; then another worker may take it.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds between looks for work when nothing is due.",
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Attempts at a failing service task before it becomes an incident.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds before a failed job's second attempt; doubled for each one after.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a handler may run before it is cut off and its attempt fails "
    "(default: as the handler declares, else 120).",
)
@click.option("--name", help="This worker's name in leases and logs (default: host:pid).")
@pass_context
def worker(
    obj: Context,
    concurrency: int,
    once: bool,
    max_jobs: int | None,
    lease: int,
    poll: float,
    attempts: int,
    backoff: float,
    timeout: float | None,
    name: str | None,
) -> None:
    """Run queued service tasks and due timers (jobs) until stopped.

    Several workers, on one machine or many, may share one database: each job is taken
    by one of them under a lease. Run workers with ARTRETURNS_INLINE_HANDLERS=off set
    for every command, so that commands queue service tasks instead of running them.
    One JSON line per job goes to stderr. SIGTERM or Ctrl-C lets the jobs in hand
    finish and takes no new one. A database that cannot be reached (restarting) is
    logged and tried again, with the worker running on. A handler call past its
    --timeout is cut off: the attempt fails, and after --attempts the task becomes an
    incident; with many calls cut off still running, the worker exits (exit code 1) to
    be started afresh.

    \b
      ARTRETURNS_INLINE_HANDLERS=off artreturns --as ops-bot worker --concurrency 4
      artreturns --as ops-bot worker --once        (what is due now, then stop)
      artreturns --as ops-bot worker --timeout 30  (cut a handler off after 30 s)
    """
    import signal
    import socket
    from dataclasses import replace
    from datetime import timedelta

    from engine.worker import Worker, patiently

    name = name or f"{socket.gethostname()}:{os.getpid()}"
    patiently(  # a worker started before its database waits for it
        lambda: obj.engine.authorize(obj.actor, "worker", "housekeeping", what="run jobs"),
        log=lambda line: click.echo(json.dumps(line, ensure_ascii=False), err=True),
        name=name,
    )
    if obj.engine.settings.inline_handlers:
        click.echo(
            f"Note: {INLINE_ENV} is not off here, so commands run service tasks themselves "
            "and queue none; set it to off for every command where workers run.",
            err=True,
        )
    engines = [obj.engine] + [obj.new_engine() for _ in range(concurrency - 1)]
    for engine in engines:
        engine.settings = replace(
            engine.settings, job_attempts=attempts, job_backoff=timedelta(seconds=backoff)
        )
        if timeout is not None:
            engine.settings = replace(engine.settings, handler_timeout=timeout)
    _note_limits_past_the_lease(engines[0], lease)
    running = Worker(
        engines,
        actor=obj.actor,
        name=name,
        lease=timedelta(seconds=lease),
        poll=poll,
        once=once,
        max_jobs=max_jobs,
        log=lambda line: click.echo(json.dumps(line, ensure_ascii=False), err=True),
    )

    def stop(signum: int, _frame: Any) -> None:
        click.echo(f"{signal.Signals(signum).name}: finishing the jobs in hand", err=True)
        running.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        report = running.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = ", ".join(f"{n} {o}" for o, n in sorted(report.outcomes.items())) or "none"
    click.echo(f"Jobs run: {report.jobs} ({summary}).")
    if report.outages:
        click.echo(
            f"Database unreachable {report.outages} times (longest {report.longest_outage:.1f} s).",
            err=True,
        )
    if report.errors:
        for error in report.errors:
            click.echo(f"Error: {error}", err=True)
        raise SystemExit(1)


def _note_limits_past_the_lease(engine: Engine, lease: int) -> None:
    """Say which handlers may run as long as a job's lease or longer: another worker
    may then take their job while the call still runs (the revision check keeps the
    second save out, but the handler's side effects may happen twice)."""
    settings, registry = engine.settings, engine.registry
    long = []
    for info in registry:
        limit = settings.timeout_for(info.operator, registry)
        if limit is None or limit >= lease:
            long.append(f"{info.operator} ({'no limit' if limit is None else f'{limit:g} s'})")
    if long:
        shown = ", ".join(long[:5]) + (f" and {len(long) - 5} more" if len(long) > 5 else "")
        click.echo(
            f"Note: handlers may run as long as the {lease} s lease or longer: {shown}. "
            "Another worker may take such a job while its call runs; give --timeout below "
            "--lease.",
            err=True,
        )


@cli.command()
@json_option
@pass_context
def jobs(obj: Context, as_json: bool) -> None:
    """List the jobs workers run: queued, retrying, running and failed.

    Service tasks and timers; a failed one is an incident (its last attempt failed):
    `artreturns incidents` says more, `artreturns retry` queues it again.

    \b
      artreturns jobs
      artreturns jobs --json | jq 'map(select(.status == "running"))'

    \b
    --json gives a list of objects: id (null for a failed one), instance_id,
    business_key, task_id, bpmn_id, operator, due_at, attempts, locked_by,
    locked_until, last_error, status (queued, retrying, running, failed), kind
    (service, timer).
    """
    obj.engine.authorize(obj.actor, "jobs", "read")
    found = obj.engine.jobs()
    if as_json:
        _echo_json([j.to_dict() for j in found])
        return
    if not found:
        click.echo("No jobs.")
        return
    table = Table(header_style="bold")
    for column in ("job", "rma", "kind", "step", "operator", "due", "attempts", "status", "error"):
        table.add_column(column)
    for job in found:
        status = job.status
        if job.locked_by:
            status += f" ({job.locked_by} until {_time(job.locked_until)})"
        table.add_row(
            str(job.id) if job.id is not None else "-",
            job.business_key or f"#{job.instance_id}",
            job.kind,
            job.bpmn_id or "",
            job.operator or "",
            _time(job.due_at),
            str(job.attempts),
            status,
            (job.last_error or "")[:80],
        )
    _console().print(table)


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
    obj.engine.authorize(obj.actor, "incidents", "read")
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
    With --all, an instance that cannot be retried does not stop the others; the
    command then exits 1 after reporting them all.

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
    with _progress("Retrying incidents") as progress:
        results = obj.engine.retry_all(actor=obj.actor, operator=operator, progress=progress)
    if as_json:
        _echo_json([r.to_dict() for r in results])
    elif not results:
        click.echo("No incidents.")
    else:
        for item in results:
            if item.error:
                click.echo(f"{item.instance}: {item.error}", err=True)
            elif item.result:
                still = len(item.result.failures)
                outcome = f"failed again ({still})" if still else "ran"
                click.echo(f"{item.instance}: {outcome}, now {item.result.instance.status}")
    _exit_if_any_failed(results, "retried")


def _exit_if_any_failed(results: Sequence[DueResult], done: str) -> None:
    """Exit 1, after every instance was tried and reported, when any could not be (a
    cron job or script then knows); the others' changes stay saved. One skipped because
    another command changed it meanwhile is not a failure."""
    failed = sum(1 for r in results if r.error and not r.raced)
    if failed:
        click.echo(
            f"Error: {failed} of {len(results)} instance(s) could not be {done}; the others were.",
            err=True,
        )
        raise SystemExit(1)


@cli.command()
@click.argument("instance")
@click.argument("name")
@data_options
@json_option
@pass_context
def message(
    obj: Context, instance: str, name: str, data: str | None, sets: tuple[str, ...], as_json: bool
) -> None:
    """Deliver the BPMN message NAME (with a payload) to INSTANCE.

    \b
      artreturns message RMA-2026-000001 return_shipped \\
          --data '{"carrier": "SF Express", "tracking_number": "SF2001000001"}'
    """
    result = obj.engine.message(instance, name, parse_data(data, sets), actor=obj.actor)
    _print_result(result, as_json, "Delivered to")


@cli.command()
@click.argument("instance")
@click.argument("text")
@json_option
@pass_context
def comment(obj: Context, instance: str, text: str, as_json: bool) -> None:
    """Add a comment to the history of INSTANCE.

    \b
      artreturns comment RMA-2026-000001 "Called the customer: parcel leaves Monday"
    """
    result = obj.engine.comment(instance, text, actor=obj.actor)
    _print_result(result, as_json, "Commented on")


HISTORY_CSV = ("rma", "seq", "at", "actor", "kind", "step", "task", "what", "hash")


@cli.command()
@click.argument("instance", required=False)
@click.option("--actor", "by", metavar="USER", help="Across instances: what USER did.")
@click.option("--since", help="Across instances: events from this time (ISO 8601).")
@click.option("--until", help="Across instances: events up to this time (ISO 8601).")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header, then an event a line).")
@pass_context
def history(
    obj: Context,
    instance: str | None,
    by: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """The history of INSTANCE as a story: who did what, when, and what it changed.

    Each event says what happened in words, the data a step changed (before -> after),
    and the command that asked for it. Refusals are there too. Without INSTANCE,
    --actor, --since and --until select events across every instance, oldest first:
    everything one person did, or what happened in a period. --json gives every event
    whole (seq, at, actor, kind, bpmn_id, task_name, task_id, data, process_id,
    process_version, state_digest, hash; across instances also `rma`); `data.intent`
    is the command that asked for it, `data.changed` each key a step changed as
    [before, after]. --csv gives the columns rma, seq, at, actor, kind, step,
    task, what, hash.

    \b
      artreturns history RMA-2026-000001
      artreturns history RMA-2026-000001 --json | jq '.[] | select(.kind == "denied")'
      artreturns history --actor fin-fay --since 2026-11-01T00:00Z --csv > fay.csv
    """
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    if instance is None:
        if not (by or since or until):
            raise click.UsageError("give INSTANCE, or --actor, --since or --until")
        found = obj.engine.events(
            by=by,
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
            actor=obj.actor,
        )
    elif by or since or until:
        raise click.UsageError("--actor, --since and --until are for events across instances")
    else:
        found = [(instance, e) for e in obj.engine.history(instance, actor=obj.actor)]
        if not found or found[0][1].seq > 1:  # the events before were archived
            for kept in obj.engine.archives(instance, actor=obj.actor):
                click.echo(
                    f"{instance}: events 1-{kept.through_seq} were archived to {kept.folder} "
                    f"on {_time(kept.archived_at)} by {kept.archived_by}; read them in "
                    f"{Path(kept.folder) / 'events.jsonl'} (`artreturns audit verify "
                    f"--export {shlex.quote(kept.folder)}` checks them).",
                    err=as_json or as_csv,
                )
            if not found and not (as_json or as_csv):
                return
    if as_json:
        across = instance is None
        _echo_json([{**({"rma": r} if across else {}), **e.to_dict()} for r, e in found])
        return
    if as_csv:
        writer = _SafeCsvWriter(sys.stdout)
        writer.writerow(HISTORY_CSV)
        for rma, event in found:
            writer.writerow(
                [
                    rma,
                    event.seq,
                    _iso(event.at),
                    event.actor,
                    event.kind,
                    event.bpmn_id or "",
                    event.task_name or "",
                    " / ".join(_story(event).splitlines()),
                    event.hash,
                ]
            )
        return
    if instance is None:
        table = Table(header_style="bold", show_lines=True)
        for column in ("time", "rma", "#", "who", "what happened"):
            table.add_column(column)
        for rma, event in found:
            table.add_row(_time(event.at), rma, str(event.seq), event.actor, _story(event))
        if found:
            _console().print(table)
        else:
            click.echo("No events.")
        return
    events = [e for _, e in found]
    if events:
        first = events[0]
        click.echo(
            f"{instance}: {first.process_id} v{first.process_version}, {len(events)} event(s)"
        )
    table = Table(header_style="bold", show_lines=True)
    for column in ("#", "time", "who", "what happened"):
        table.add_column(column)
    for event in events:
        table.add_row(str(event.seq), _time(event.at), event.actor, _story(event))
    _console().print(table)


#: The longest value a story line shows (the event in --json holds it whole).
STORY_VALUE_LIMIT = 120


def _readable(value: Any) -> Any:
    """Stored values as people write them: {"$decimal": "1200.00"} as 1200.00."""
    if isinstance(value, dict):
        if len(value) == 1 and "$decimal" in value:
            return value["$decimal"]
        return {k: _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def _short_value(value: Any) -> str:
    value = _readable(value)
    if value is None:
        return "—"
    if value == "":
        return '""'
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= STORY_VALUE_LIMIT else text[: STORY_VALUE_LIMIT - 1] + "…"


def _changed_lines(changed: dict[str, Any]) -> list[str]:
    """A step's data changes, a key a line: before -> after."""
    return [
        f"  {key}: {_short_value(old)} -> {_short_value(new)}"
        for key, (old, new) in sorted(changed.items())
    ]


def _story(event: EventView) -> str:
    """One event in words, with what it changed and the command that asked for it."""
    data = event.data
    step = f"'{event.task_name}'" if event.task_name else "a step"
    lines: list[str] = []
    kind = event.kind
    if kind == "started":
        lines.append(f"started {event.process_id}")
        lines += [f"  {k}: {_short_value(v)}" for k, v in sorted(data.get("data", {}).items())]
        lines += _changed_lines(data.get("changed", {}))
    elif kind == "task_completed":
        lines.append(f"completed {step}")
        changed = data.get("changed")
        if changed is None:  # recorded before changes were: the data given
            changed = {k: [None, v] for k, v in data.get("data", {}).items()}
        lines += _changed_lines(changed)
    elif kind == "handler_result":
        lines.append(f"{step}: {data.get('operator')} ran")
        if "changed" in data:
            lines += _changed_lines(data["changed"])
        else:  # recorded before changes were: the result
            result = sorted(data.get("result", {}).items())
            lines += [f"  {k}: {_short_value(v)}" for k, v in result]
    elif kind == "handler_failed":
        lines.append(
            f"{step}: {data.get('operator')} failed (attempt {data.get('attempt')}): "
            f"{data.get('error')}"
        )
    elif kind == "error_thrown":
        lines.append(
            f"{step}: {data.get('operator')} raised '{data.get('code')}': {data.get('message')}"
        )
        lines += _changed_lines(data.get("changed", {}))
    elif kind == "timer_fired":
        names = ", ".join(t.get("name") or t.get("bpmn_id", "") for t in data.get("timers", []))
        lines.append(f"time was up: {names}")
        lines += _changed_lines(data.get("changed", {}))
    elif kind == "escalated":
        lines.append(f"{step} was not done in time: escalated to {data.get('role')}")
    elif kind == "message":
        lines.append(f"message '{data.get('name')}' arrived")
        lines += [f"  {k}: {_short_value(v)}" for k, v in sorted(data.get("payload", {}).items())]
        lines += _changed_lines(data.get("changed", {}))
    elif kind == "retried":
        lines.append(f"retried {step} (after {data.get('attempts_so_far')} attempt(s))")
    elif kind == "cancelled":
        lines.append("cancelled" + (f": {data['reason']}" if data.get("reason") else ""))
    elif kind == "completed":
        lines.append("the process reached its end")
    elif kind == "comment":
        lines.append(f"commented: {data.get('text')}")
    elif kind == "denied":
        lines.append(f"was refused ({data.get('operation')}): {data.get('reason')}")
    elif kind == "claimed":
        taken = f" (from {data['from']})" if data.get("from") else ""
        lines.append(f"claimed {step}{taken}")
    elif kind == "unclaimed":
        lines.append(
            f"let go of {step}" + (f", claimed by {data['from']}" if data.get("from") else "")
        )
    elif kind == "delegated":
        lines.append(f"gave {step} to {data.get('to')}")
    elif kind == "migrated":
        lines.append(f"moved from version {data.get('from_version')} to {data.get('to_version')}")
        lines += [f"  {note}" for note in data.get("notes", [])]
    elif kind == "state_upgraded":
        lines.append(
            f"its stored state was upgraded from serializer {data.get('from')} to {data.get('to')}"
        )
    else:
        lines.append(f"{kind} {step}".strip())
    if data.get("intent"):
        lines.append(f"  asked: {data['intent']}")
    return "\n".join(lines)


@cli.command()
@click.argument("instance")
@pass_context
def verify(obj: Context, instance: str) -> None:
    """Recompute the hash chain of INSTANCE's history and report the first broken link.

    \b
      artreturns verify RMA-2026-000001
    """
    broken = obj.engine.verify(instance, actor=obj.actor)
    if broken is None:
        click.echo(f"{instance}: history intact.")
        return
    raise HistoryBrokenError(
        f"the history of {instance} is broken at event {broken.seq}: {broken.reason}",
        "The stored events were changed after they were written; compare them with a "
        "backup or an export before trusting this instance's history.",
    )


@cli.command()
@click.argument("instance")
@click.option(
    "--until",
    "until",
    metavar="EVENT|TIME",
    help="Stop after this event number, or at the last event at or before this time, "
    "and show the instance as it stood then.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Replay the events of this export (or archive) folder in place of the database's.",
)
@json_option
@pass_context
def replay(
    obj: Context, instance: str, until: str | None, export_dir: Path | None, as_json: bool
) -> None:
    """Rebuild INSTANCE from its recorded events alone and check every step.

    The instance is started again from nothing under the process version its events
    were recorded with (the definition stored when it was deployed, never today's
    files), and each event is applied in order: the start data, each task's data,
    each handler's recorded result (no handler runs), messages, timers, with the
    clock at each event's time. After every event the rebuilt state is compared with
    the digest recorded then. A clean replay prints one line; the first divergence
    is explained (which event and step, which data keys, recorded against rebuilt,
    where the history goes on) and the exit code is 5. The stored definition is
    checked against the hash the instance started under, and the hash chain too.

    With --until, the instance is shown as it stood after that event (a number) or
    at that time: its status, data, open tasks, who held them and their deadlines.
    --json gives the report (instance, process_id, version, events, replayed, clean,
    problems, divergence) and, with --until, the instance as `show --json` gives it.
    --export DIR replays the events an export or an archive holds (checked against its
    manifest first): an archived instance's events are only there.

    \b
      artreturns replay RMA-2026-000001
      artreturns replay RMA-2026-000001 --until 12
      artreturns replay RMA-2026-000001 --until 2026-11-20T12:00Z --json
      artreturns replay RMA-2025-000042 --export archive-2025
    """
    if until is None:
        report = obj.engine.replay(instance, export=export_dir, actor=obj.actor)
        if as_json:
            _echo_json(report.as_dict())
            if not report.clean:
                raise SystemExit(ReplayDivergedError.exit_code)
            return
        _replay_verdict(report)
        return
    seq = int(until) if until.strip().isdigit() else None
    view, report = obj.engine.as_it_stood(
        instance,
        at=parse_time(until) if seq is None else None,
        until_seq=seq,
        export=export_dir,
        actor=obj.actor,
    )
    if as_json:
        _echo_json({**report.as_dict(), "instance_then": view.to_dict() if report.clean else None})
        if not report.clean:
            raise SystemExit(ReplayDivergedError.exit_code)
        return
    _replay_verdict(report)
    click.echo("")
    _print_instance(obj, view, None, then=view.updated_at)


@cli.group()
def audit() -> None:
    """Prove a history untouched: verify chains, export them, verify an export offline.

    \b
      artreturns audit verify --all
      artreturns audit export --since 2026-11-01T00:00Z -o audit-2026-11
      artreturns audit archive --before 2026-01-01T00:00Z -o archive-2025
    """


_new_folder_option = click.option(
    "-o",
    "--output",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new folder for the export.",
)


@audit.command(name="verify")
@click.argument("instance", required=False)
@click.option("--all", "everything", is_flag=True, help="Every instance's history.")
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Check an export folder instead, with no database.",
)
@pass_context
def audit_verify(
    obj: Context, instance: str | None, everything: bool, export_dir: Path | None
) -> None:
    """Recompute hash chains and report the first broken link of each.

    INSTANCE (an RMA or #number), --all instances, or --export DIR: an export made by
    `audit export`, checked offline against its manifest (no database is opened).
    An archived instance (`audit archive`) holds when its chain head is the one
    recorded with its archive; INSTANCE --export DIR also checks the archive's export
    against that head. Exit 5 when anything does not hold.

    \b
      artreturns audit verify RMA-2026-000001
      artreturns audit verify --all
      artreturns audit verify --export audit-2026-11
      artreturns audit verify RMA-2026-000001 --export archive-2025
    """
    chosen = sum(bool(x) for x in (instance, everything, export_dir))
    if chosen != 1 and not (chosen == 2 and instance and export_dir):
        raise click.UsageError("give one of INSTANCE, --all or --export DIR")
    if export_dir is not None:
        from engine.audit import verify_export

        manifest, breaks = verify_export(export_dir)
        if breaks:
            for problem in breaks:
                click.echo(f"BROKEN {problem}", err=True)
            raise HistoryBrokenError(
                f"the export in {export_dir} does not hold: {len(breaks)} problem(s)",
                "Compare it with the database and with another copy of its manifest.",
            )
        click.echo(
            f"{export_dir}: {manifest['events']} events of {len(manifest['instances'])} "
            "instance(s) intact."
        )
        if instance is None:
            return
    if instance is not None:
        results = [(instance, obj.engine.verify(instance, actor=obj.actor))]
    else:
        results = obj.engine.verify_all(actor=obj.actor)
    broken = [(label, b) for label, b in results if b is not None]
    for label, found in broken:
        click.echo(f"BROKEN {label} at event {found.seq}: {found.reason}", err=True)
    if broken:
        raise HistoryBrokenError(
            f"{len(broken)} of {len(results)} histories are broken",
            "The stored events were changed after they were written; compare them with a "
            "backup or an export before trusting these instances' histories.",
        )
    archives = obj.engine.archives(instance, actor=obj.actor)
    if export_dir is not None:
        from engine.archive import against_export

        if not archives:
            raise InputError(
                f"{instance} is not archived",
                "`artreturns audit verify --export DIR` checks an export on its own.",
            )
        differs = against_export(archives[0], manifest)
        if differs is not None:
            raise HistoryBrokenError(
                f"the export in {export_dir} does not hold the archived history: {differs}",
                "`artreturns audit verify INSTANCE` names the folder its events went to.",
            )
    for kept in archives:
        folder = shlex.quote(kept.folder)
        click.echo(
            f"{kept.instance}: archived to {kept.folder} (events 1-{kept.through_seq}, head "
            f"{kept.head_hash[:12]}); verify the export with "
            f"`artreturns audit verify --export {folder}`."
        )
    click.echo(f"{len(results)} histor{'y' if len(results) == 1 else 'ies'} intact.")


@audit.command(name="archive")
@click.option(
    "--before",
    required=True,
    help="Instances completed or cancelled before this time (ISO 8601).",
)
@_new_folder_option
@click.option("--dry-run", is_flag=True, help="List what would be archived; change nothing.")
@json_option
@pass_context
def audit_archive(obj: Context, before: str, folder: Path, dry_run: bool, as_json: bool) -> None:
    """Move closed instances' events out of the database into an export.

    The events of every instance completed or cancelled before --before are written
    whole into a new folder, as `audit export` writes them, flushed to disk and checked;
    only then are they deleted from the database, in one transaction that records what
    went where (and the operation log). Instances keep their chain heads: `audit verify`
    still holds and names the folder, `history` says where the events went. Admins only;
    --dry-run lists what would go and changes nothing. --json: folder, before, dry_run,
    events, events_sha256, instances (instance, instance_id, uid, status, ended_at,
    first_seq, last_seq).

    \b
      artreturns audit archive --before 2026-01-01T00:00Z -o archive-2025 --dry-run
      artreturns audit archive --before 2026-01-01T00:00Z -o archive-2025
    """
    with _progress("Archiving") as progress:
        result = obj.engine.audit_archive(
            folder, before=parse_time(before), dry_run=dry_run, actor=obj.actor, progress=progress
        )
    if as_json:
        _echo_json(result.to_dict())
        return
    taken = f"{result.events} events of {len(result.instances)} instance(s)"
    if not result.instances:
        click.echo(f"Nothing to archive: no instance closed before {before} has events left.")
    elif dry_run:
        for item in result.instances:
            click.echo(
                f"{item.instance}  {item.status} {_time(item.ended_at)}  "
                f"events {item.first_seq}-{item.last_seq}"
            )
        click.echo(f"Would archive {taken} to {folder}.")
    else:
        click.echo(
            f"Archived {taken} to {folder} (events SHA-256 {result.events_sha256}); "
            f"check it with `artreturns audit verify --export {shlex.quote(str(folder))}` and "
            "keep a copy of its manifest where the database's owner cannot write."
        )


@audit.command(name="export")
@click.option("--since", help="Events from this time (ISO 8601).")
@click.option("--until", help="Events up to this time (ISO 8601).")
@_new_folder_option
@pass_context
def audit_export(obj: Context, since: str | None, until: str | None, folder: Path) -> None:
    """Write events as JSON Lines and a manifest of chain heads into a new folder.

    Every instance with events in the window is exported whole from its first event
    in the window to its last, so its chain can be checked: `audit verify --export DIR`
    does it offline. Keep the manifest where the database's owner cannot write.

    \b
      artreturns audit export --since 2026-11-01T00:00Z -o audit-2026-11
      artreturns audit export --until 2026-12-01T00:00Z -o audit-until-december
    """
    manifest = obj.engine.audit_export(
        folder,
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
        actor=obj.actor,
    )
    click.echo(
        f"Exported {manifest.events} events of {len(manifest.instances)} instance(s) to "
        f"{folder} (events SHA-256 {manifest.events_sha256})."
    )


@audit.command(name="report")
@click.argument("instance")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (default: audit-INSTANCE.html here).",
)
@pass_context
def audit_report(obj: Context, instance: str, output: Path | None) -> None:
    """Write INSTANCE's audit report: one HTML page that needs nothing else to open.

    The diagram of the version it ran under, drawn from the files stored when that
    version was deployed, with the path taken marked (done, where it stands now, not
    taken) and each called process it entered drawn below; its timeline (time, actor,
    step, kind, what changed); whether its hash chain holds; for a return, its evidence
    files with their SHA-256 and the notices sent. No script, font or picture is fetched
    from anywhere. Prints the path written.

    \b
      artreturns audit report RMA-2026-000001
      artreturns audit report RMA-2026-000001 -o /tmp/rma-1.html
    """
    # A return's records live in its own stores, read here and handed to the engine.
    picture = desk.picture(obj.engine, obj.folders, instance.strip(), {}) or {}
    html = obj.engine.audit_report(
        instance,
        actor=obj.actor,
        evidence=picture.get("evidence") or [],
        notices=picture.get("notices") or [],
    )
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in instance.strip())
    target = output or Path(f"audit-{safe}.html")
    target.write_text(html, encoding="utf-8")
    click.echo(str(target))


@cli.group()
def orders() -> None:
    """The orders returns are checked against.

    \b
      artreturns orders import orders.csv
    """


@orders.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@pass_context
def orders_import(obj: Context, file: Path) -> None:
    """Load orders and their artworks from a CSV or JSON FILE (all rows or none).

    \b
      artreturns --as ada orders import docs/demo/orders.csv
    """
    done = desk.import_orders(obj.engine, obj.folders, file, actor=obj.actor)
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
@click.option("--type", "request_type", type=click.Choice(vocabulary.TYPES), required=True)
@click.option("--reason", type=click.Choice(vocabulary.REASONS), required=True)
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

    \b
      artreturns --as cs-ann apply --order D-2001 --artwork W-101 --type return \\
          --reason no_reason --description "Changed my mind" --evidence photo.jpg
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
    """List the latest returns: ticket, where each one is or how it ended, the money.

    \b
      artreturns returns --limit 10
      artreturns returns --json
    """
    obj.engine.authorize(obj.actor, "returns", "read")
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


REPORT_CSV = ("section", "indicator", "group", "value", "unit", "currency")


@cli.command(name="report")
@click.option("--since", help="Returns started from this time (ISO 8601).")
@click.option("--until", help="Returns started before this time (ISO 8601).")
@click.option(
    "--by",
    type=click.Choice(["category", "reason", "channel", "role", "step"]),
    help="Break volume, times and scores down by a field of the return, or show the "
    "task figures by role or by step only.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "html"]),
    default="table",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@pass_context
def report_command(
    obj: Context,
    since: str | None,
    until: str | None,
    by: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """The procedure's indicators, computed from the history and the task table.

    Over the returns started from --since to --until (all by default), as they stand
    now: volume and return rates, end-to-end time and time per step and role (waiting
    and working) with the bottlenecks, missed due times and escalations, refunds paid
    after their legal deadline (shown first when there are any), inspection outcomes,
    disputes and the handlers' error rate, customers' scores, money per currency, and
    return reasons with the categories returned far more than the rest. docs/monitoring.md
    says how each one is computed and what to do when it turns red. --format json gives
    every section whole (amounts as text); csv one line per indicator: section,
    indicator, group, value, unit, currency.

    \b
      artreturns report
      artreturns report --since 2026-11-01 --until 2026-12-01 --by category
      artreturns report --by role --format csv > roles.csv
      artreturns report --format json | jq .deadlines.paid_late
      artreturns report --format html -o report.html
    """
    found = obj.engine.report(
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
        by=by,
        actor=obj.actor,
    )
    with click.open_file(str(output) if output else "-", "w", encoding="utf-8") as out:
        _write_report(found, fmt, out)
    if output:
        click.echo(f"Report written to {output}.", err=True)


def _write_report(found: Any, fmt: str, out: Any) -> None:
    if fmt == "json":
        out.write(json.dumps(found.as_data(), indent=2, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = _SafeCsvWriter(out)
        writer.writerow(REPORT_CSV)
        for row in found.rows():
            writer.writerow([getattr(row, name) for name in REPORT_CSV])
    elif fmt == "html":
        from engine.report_html import render

        out.write(render(found))
    else:
        _print_report(found, out)


def _print_report(found: Any, out: Any) -> None:
    """The indicators as rich tables, alarms first."""
    from engine.indicators import seconds_text as took

    console = _console() if out is sys.stdout else Console(file=out, width=200, no_color=True)
    for alarm in found.alarms:
        console.print(f"ALARM: {alarm}", style="bold red")
    v, t, d, q, c = found.volume, found.time, found.deadlines, found.quality, found.customers
    by = found.window.by

    def rate(r: Any) -> str:
        return "-" if r.value is None else f"{r.value * 100:.1f}% ({r.part}/{r.whole})"

    def table(title: str, *columns: str) -> Any:
        made = Table(title=title, title_justify="left", header_style="bold")
        for column in columns:
            made.add_column(column)
        return made

    volume = table(
        f"Volume by {v.dimension}",
        v.dimension,
        "opened",
        "closed",
        "declined",
        "in flight",
        "median end to end",
        "p90",
    )
    lines = [
        (g.group, g.opened, g.closed, g.declined, g.in_flight, g.end_to_end) for g in v.by_group
    ]
    lines.append(("all", v.opened, v.closed, v.declined, v.in_flight, t.end_to_end))
    for group, *counts, spent in lines:
        volume.add_row(group, *(str(n) for n in counts), took(spent.median), took(spent.p90))
    console.print(volume)
    if v.return_rates:
        rates = table("Return rates (returns / works sold)", "by", "group", "rate")
        for r in v.return_rates:
            rates.add_row(r.dimension, r.group, rate(r.rate))
        console.print(rates)
    if by != "role":
        steps = table(
            "Time per step (median / p90)",
            "step",
            "role",
            "done",
            "waiting",
            "working",
            "total",
            "missed due",
            "escalated",
        )
        late = {(s.step, s.role): s for s in d.steps}
        for s in t.steps:
            miss = late.get((s.step, s.role))
            steps.add_row(
                s.name,
                s.role,
                str(s.total.count),
                f"{took(s.waiting.median)} / {took(s.waiting.p90)}",
                f"{took(s.working.median)} / {took(s.working.p90)}",
                f"{took(s.total.median)} / {took(s.total.p90)}",
                f"{miss.breached}/{miss.with_due}" if miss else "-",
                str(miss.escalated) if miss else "-",
            )
        timed = {(s.step, s.role) for s in t.steps}
        for key, miss in late.items():  # open past their due time, none done yet
            if key not in timed:
                steps.add_row(
                    miss.name,
                    miss.role,
                    "0",
                    "-",
                    "-",
                    "-",
                    f"{miss.breached}/{miss.with_due}",
                    str(miss.escalated),
                )
        console.print(steps)
    if by != "step":
        roles = table(
            "Time per role (median / p90)",
            "role",
            "done",
            "waiting",
            "working",
            "total",
            "missed due",
            "escalated",
        )
        late_roles = {r.role: r for r in d.roles}
        for r in t.roles:
            miss = late_roles.get(r.role)
            roles.add_row(
                r.role,
                str(r.total.count),
                f"{took(r.waiting.median)} / {took(r.waiting.p90)}",
                f"{took(r.working.median)} / {took(r.working.p90)}",
                f"{took(r.total.median)} / {took(r.total.p90)}",
                f"{miss.breached}/{miss.with_due}" if miss else "-",
                str(miss.escalated) if miss else "-",
            )
        for role, miss in late_roles.items():
            if role not in {r.role for r in t.roles}:
                roles.add_row(
                    role,
                    "0",
                    "-",
                    "-",
                    "-",
                    f"{miss.breached}/{miss.with_due}",
                    str(miss.escalated),
                )
        console.print(roles)
    names = {s.step: s.name for s in t.steps}
    summary = table("Summary", "indicator", "value")
    summary.add_row(
        "bottlenecks (slowest median)", ", ".join(names.get(s, s) for s in t.bottlenecks) or "-"
    )
    summary.add_row("due times missed", rate(d.breached))
    summary.add_row("escalations", str(d.escalated))
    summary.add_row("refunds with a legal deadline", str(d.refunds_due))
    summary.add_row("refunds paid late (must be 0)", str(len(d.paid_late)))
    summary.add_row("refunds unpaid past deadline (must be 0)", str(len(d.unpaid_overdue)))
    summary.add_row("handler error rate", rate(q.error_rate))
    summary.add_row("open incidents", str(q.open_incidents))
    summary.add_row("inspections", ", ".join(f"{x.key} {x.count}" for x in q.inspections) or "-")
    summary.add_row("disputes", ", ".join(f"{x.key} {x.count}" for x in q.disputes) or "-")
    summary.add_row("survey responses", rate(c.responses))
    summary.add_row("mean score", "-" if c.mean is None else str(c.mean))
    summary.add_row("scores", ", ".join(f"{x.key}: {x.count}" for x in c.scores) or "-")
    for m in found.money:
        summary.add_row(
            f"{m.kind.replace('_', ' ')} ({m.count})", f"{m.amount.currency} {m.amount.amount:,}"
        )
    for f in found.reasons.flagged:
        summary.add_row(f"flagged: {f.category}", f"{rate(f.rate)} against {rate(f.overall)}")
    console.print(summary)
    if found.reasons.counts:
        reasons = table("Return reasons", "reason", "category", "channel", "returns")
        for rc in found.reasons.counts:
            reasons.add_row(rc.reason, rc.category, rc.channel, str(rc.count))
        console.print(reasons)


@cli.group()
def evidence() -> None:
    """Photos, videos and documents kept with a return, by their SHA-256.

    \b
      artreturns evidence add RMA-2026-000001 crack.jpg crate.mp4
      artreturns evidence list RMA-2026-000001
    """


@evidence.command(name="add")
@click.argument("rma")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_context
def evidence_add(obj: Context, rma: str, files: tuple[Path, ...]) -> None:
    """Keep FILES as evidence of RMA.

    \b
      artreturns --as inspector-ivy evidence add RMA-2026-000001 crack.jpg
    """
    obj.engine.authorize(obj.actor, "evidence add", "take part", instance=rma)
    for item in desk.add_evidence(obj.engine, obj.folders, rma, files, obj.actor):
        click.echo(f"{item['sha256'][:12]}  {item['kind']:<8} {item['name']}")


@evidence.command(name="list")
@click.argument("rma")
@json_option
@pass_context
def evidence_list(obj: Context, rma: str, as_json: bool) -> None:
    """List the evidence of RMA: name, kind, size, SHA-256, locked or not, intact or not.

    Every file is checked against its SHA-256 as it is listed; when one was changed or
    is missing, the list is shown and the command exits with 5, naming it.

    \b
      artreturns evidence list RMA-2026-000001 --json
    """
    obj.engine.authorize(obj.actor, "evidence list", "read", target=rma)
    items = desk.list_evidence(obj.engine, obj.folders, rma)
    broken = [f"{item['name']} ({item['sha256'][:12]})" for item in items if not item["intact"]]
    _list_evidence(rma, items, as_json)
    if broken:
        raise HistoryBrokenError(
            f"evidence of {rma} changed or missing: {', '.join(broken)}",
            f"Restore the original: `artreturns evidence add {rma} FILE` puts back a "
            "file whose content has the SHA-256 recorded.",
        )


def _list_evidence(rma: str, items: list[dict[str, Any]], as_json: bool) -> None:
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
    """List the notices of RMA (default: all), oldest first, with their delivery.

    \b
      artreturns notices list RMA-2026-000001
      artreturns notices list --pending --json
    """
    obj.engine.authorize(obj.actor, "notices list", "read", target=rma)
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
    """Show notice ID whole: its delivery, subject and body.

    \b
      artreturns notices show 12
    """
    obj.engine.authorize(obj.actor, "notices show", "read", target=str(notice_id))
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
    """Deliver the pending notices, oldest first (SMTP if ARTRETURNS_SMTP is set).

    \b
      ARTRETURNS_SMTP=smtp://mail.example.com:587?starttls=true artreturns notices send
    """
    obj.engine.authorize(obj.actor, "notices send", "housekeeping")
    with _progress("Delivering notices") as progress:
        run = mail.send_notices(obj.engine, obj.folders, limit=limit, progress=progress)
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
    """List the operators that service tasks can name, and what each does.

    \b
      artreturns handlers --json
    """
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
@click.option(
    "--cli-returns",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Returns in the database the commands are timed on (0: do not time commands).",
)
@click.option(
    "--cli-runs",
    default=7,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timed runs of each command, after a warm-up.",
)
@click.option(
    "--engine/--no-engine",
    "engine_part",
    default=True,
    show_default=True,
    help="Measure the engine against bare SpiffWorkflow (and the history's cost).",
)
@click.option(
    "--workers-pg",
    metavar="URL",
    help="A PostgreSQL database to measure workers on (a schema of its own per run).",
)
@click.option(
    "--worker-returns",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Returns taken in per worker run.",
)
@click.option(
    "--seed-history",
    metavar="N",
    type=click.IntRange(min=1),
    help="Fill --db, an empty database, with N generated returns, and stop.",
)
@click.option("--seed", default=0, show_default=True, help="The generator's seed.")
@click.option(
    "--report-history",
    metavar="N",
    type=click.IntRange(min=1),
    help="Time `report` on N generated returns (a temporary SQLite file).",
)
@click.option(
    "--report-pg",
    metavar="URL",
    help="With --report-history, also on PostgreSQL (a schema of its own per run).",
)
@click.option(
    "--report-on",
    "report_on",
    metavar="URL",
    multiple=True,
    help="Time `report` on a database seeded before with --seed-history (repeatable).",
)
@click.option("--markdown", is_flag=True, help="Print a Markdown table (for docs/benchmarks.md).")
@pass_context
def bench(
    obj: Context,
    instances: int,
    rounds: int,
    history_sizes: str,
    samples: int,
    cli_returns: int,
    cli_runs: int,
    engine_part: bool,
    workers_pg: str | None,
    worker_returns: int,
    seed_history: int | None,
    seed: int,
    report_history: int | None,
    report_pg: str | None,
    report_on: tuple[str, ...],
    markdown: bool,
) -> None:
    """Measure the engine, and time whole commands beside their targets.

    First the engine against bare SpiffWorkflow, side by side in one run; then whole
    `artreturns` commands (--help, tasks, show, complete), each run as a process of its
    own on a database of --cli-returns returns, beside its target (tasks and show under
    300 ms, complete under 600 ms).

    With --workers-pg, also returns taken in by 1, 2 and 4 `artreturns worker`
    processes on PostgreSQL, beside one process with handlers inline on SQLite:
    throughput and step latency (p50, p95).

    With --report-history N, also `report` timed on N generated returns (5 % still in
    flight) on SQLite, and with --report-pg on PostgreSQL, beside its target (5 s).
    --report-on URL times it on a database seeded before, so that seeding and timing can
    be run apart.

    Uses its own temporary SQLite files (and, with --workers-pg or --report-pg, schemas
    of its own, dropped afterwards); --db is not touched. Making 10,000 returns takes
    minutes; --cli-returns 0 skips the commands.

    --seed-history N does only this: it fills --db (a SQLite file or a PostgreSQL URL,
    holding no returns and no users yet) with N returns copied, with their own
    numbers, people and dates, from template returns run through the engine, and
    orders never returned (docs/benchmarks.md says what is real and what is varied).
    The same --seed makes the same returns.

    \b
      artreturns bench --markdown
      artreturns bench --cli-returns 0
      artreturns bench --instances 100 --rounds 3 --cli-returns 1000 --cli-runs 5
      artreturns bench --no-engine --cli-returns 0 --workers-pg postgresql://localhost/db
      artreturns --db history.db bench --seed-history 100000 --seed 7
      artreturns bench --no-engine --cli-returns 0 --report-history 100000 --markdown
      artreturns bench --report-history 100000 --report-pg postgresql://localhost/db
      artreturns bench --no-engine --cli-returns 0 --report-on sqlite:///history.db
    """
    import tempfile

    from engine import bench as bench_module

    def progress(line: str) -> None:
        click.echo(line, err=True)

    if seed_history:
        from handlers import seed_history as generator

        made = generator.seed(obj.db, seed_history, seed=seed, progress=progress)
        statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(made.by_status.items()))
        categories = ", ".join(f"{n:,} {c}" for c, n in made.by_category.most_common())
        click.echo(f"{made.returns:,} returns ({statuses}) and {made.orders:,} orders")
        click.echo(f"categories: {categories}")
        click.echo(f"seeded in {made.seconds:,.0f} s")
        return

    try:
        sizes = [int(part) for part in history_sizes.split(",") if part.strip()]
    except ValueError as exc:
        raise InputError(f"--history {history_sizes!r} is not a list of numbers") from exc

    if engine_part:
        report = bench_module.run(
            instances=instances,
            rounds=rounds,
            history_sizes=sizes,
            history_samples=samples,
            progress=progress,
        )
    else:
        report = bench_module.Report(bench_module.machine())
    if workers_pg:
        from handlers import bench_workers

        bench_workers.measure(report, workers_pg, worker_returns, progress=progress)
    if report_history:
        from handlers import seed_history as generator

        generator.measure(report, report_history, pg=report_pg, seed=seed, progress=progress)
    if report_on:
        from handlers import seed_history as generator

        generator.time_seeded(report, report_on, progress=progress)
    if cli_returns:
        from handlers import bench as returns_bench

        with tempfile.TemporaryDirectory(prefix="artreturns-bench-cli-") as tmp:
            workdir = Path(tmp)
            built = returns_bench.build(workdir, cli_returns, fresh=cli_runs + 1, progress=progress)
            stages = ", ".join(f"{len(rmas):,} {stage}" for stage, rmas in built.stages.items())
            report.add(
                "returns in the database",
                cli_returns,
                "returns",
                f"made in {built.seconds:,.0f} s in one process; {stages}",
            )
            bench_module.time_commands(
                report,
                returns_bench.commands(built, cli_runs),
                env=returns_bench.environment(built, workdir),
                runs=cli_runs,
                progress=progress,
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

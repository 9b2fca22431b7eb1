"""Deploying diagrams as versioned process definitions, and reading them back.

`deploy` validates every file before anything is stored; a process whose parsed spec
is identical to its latest version keeps that version, any change makes a new one.
Specs are stored once per version and parsed specs are cached per version in memory.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from engine.errors import (
    DefinitionNotFoundError,
    ExpressionError,
    InputError,
    Problem,
    ProcessValidationError,
    UnsafeDocumentError,
)
from engine.forms import Form
from engine.persistence import DefinitionRecord, SourceFileRecord
from engine.persistence.writes import Write
from engine.registry import Registry
from engine.roles import ROLES_FILE, Roles, parse_roles
from engine.xmlsafe import MAX_DOCUMENT_BYTES

if TYPE_CHECKING:  # SpiffWorkflow is imported by what deploys or runs, not to list tasks
    from engine.spiff import Compilation, CompiledProcess, Element, SourceFile, SpecBundle

DIAGRAM_SUFFIXES = (".bpmn", ".dmn")


def collect_files(paths: Iterable[str | Path]) -> list[SourceFile]:
    """Read the diagram files named, or found in the folders named."""
    from engine.spiff import SourceFile

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Only regular files (or links to them): never directories, devices or pipes.
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in DIAGRAM_SUFFIXES and p.is_file()
                )
            )
        elif path.is_file():
            if path.name != ROLES_FILE:  # read by find_roles
                found.append(path)
        elif path.exists():
            raise InputError(
                f"{path} is not a regular file", "Give .bpmn or .dmn files, or folders."
            )
        else:
            raise InputError(
                f"no such file or folder: {path}",
                "Give .bpmn or .dmn files, or folders that contain them.",
            )
    if not found:
        raise InputError(
            "no .bpmn or .dmn files found in " + ", ".join(str(p) for p in paths),
            "Name diagram files or folders that contain them.",
        )
    names: dict[str, Path] = {}
    files: list[SourceFile] = []
    for path in found:
        if path.name in names:
            raise InputError(
                f"two files are named {path.name}: {names[path.name]} and {path}",
                "A file's name is its process or decision id: give each file its own name.",
            )
        names[path.name] = path
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise UnsafeDocumentError(
                [Problem(f"file is {size:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}", path.name)]
            )
        with path.open("rb") as handle:  # read no more than the limit, whatever stat said
            content = handle.read(MAX_DOCUMENT_BYTES + 1)
        files.append(SourceFile.named(str(path), content))
    return files


def find_roles(paths: Iterable[str | Path]) -> tuple[Roles | None, list[Problem]]:
    """The roles file among the paths (named, or in a folder named), read and checked."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob(ROLES_FILE) if p.is_file()))
        elif path.name == ROLES_FILE and path.is_file():
            found.append(path)
    if not found:
        return None, []
    if len(found) > 1:
        raise InputError(
            f"two roles files: {found[0]} and {found[1]}",
            "Keep one roles.toml for the diagrams deployed together.",
        )
    with found[0].open("rb") as handle:
        content = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(content) > MAX_DOCUMENT_BYTES:
        return None, [Problem(f"larger than {MAX_DOCUMENT_BYTES:,} bytes", ROLES_FILE)]
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [Problem(f"not UTF-8 text: {exc}", ROLES_FILE)]
    return parse_roles(text, ROLES_FILE)


def _positive(text: str) -> bool:
    return text.strip().isdigit() and int(text) >= 1


def check(
    compilation: Compilation, registry: Registry, roles: Roles | None = None
) -> list[Problem]:
    """Everything wrong with the compiled processes, beyond what parsing found."""
    from engine import checks, evaluator

    needs = frozenset(roles.user_tasks_need) if roles is not None else frozenset()
    names: set[str] = set()
    for root in compilation.documents.values():
        names |= checks.data_names(root)
    found: list[Problem] = []
    for file, root in compilation.documents.items():
        found.extend(checks.check_document(root, file, needs, names))
    # The library's word on a flow without a condition says less than ours.
    problems = [
        p for p in compilation.problems if not p.message.startswith(checks.LIBRARY_NO_CONDITION)
    ]
    problems.extend(found)
    seen: set[tuple[str, str, str]] = set()
    # A timer already refused as not ISO 8601 is not compiled as an expression too.
    seen.update((p.file or "", p.element or "", "timer") for p in found if "timer" in p.message)
    for process in compilation.processes.values():
        if roles is not None:
            problems.extend(_unknown_roles(compilation, process, roles, seen))
        problems.extend(_clashing_forms(compilation, process, seen))
        for element in process.elements:
            if element.attempts is not None and not _positive(element.attempts):
                problems.append(
                    Problem(
                        f"service task '{element.name}' has attempts '{element.attempts}'; "
                        "it must be a whole number of at least 1",
                        process.file,
                        element.bpmn_id,
                        compilation.locate(process.file, element.bpmn_id),
                    )
                )
            if element.operator is None or element.operator in registry:
                continue
            key = (process.file, element.bpmn_id, element.operator)
            if key in seen:
                continue
            seen.add(key)
            suggestion = registry.suggest(element.operator)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            problems.append(
                Problem(
                    f"service task '{element.name}' names operator '{element.operator}', which "
                    f"no handler provides{hint}",
                    process.file,
                    element.bpmn_id,
                    compilation.locate(process.file, element.bpmn_id),
                )
            )
        for expression in process.expressions:
            file = expression.file or process.file
            key = (file, expression.element, expression.source)
            if key in seen or (file, expression.element, expression.kind) in seen:
                continue
            seen.add(key)
            try:
                evaluator.check(expression.source, expression.mode)
            except ExpressionError as exc:
                problems.append(
                    Problem(
                        f"{expression.kind} {expression.source!r}: {exc.message}",
                        file,
                        expression.element,
                        compilation.locate(file, expression.element),
                    )
                )
    return problems


def _clashing_forms(
    compilation: Compilation, process: CompiledProcess, seen: set[tuple[str, str, str]]
) -> list[Problem]:
    """User tasks of one version (the process and those it calls) that share an id but
    not a form: the version keeps one form per task id."""
    problems: list[Problem] = []
    first: dict[str, Element] = {}
    for element in process.elements:
        if element.kind != "user":
            continue
        earlier = first.setdefault(element.bpmn_id, element)
        if earlier.form == element.form or earlier.process_id == element.process_id:
            continue
        key = (process.process_id, "form", element.bpmn_id)
        if key in seen:
            continue
        seen.add(key)
        file = compilation.processes.get(element.process_id, process).file
        problems.append(
            Problem(
                f"user task '{element.bpmn_id}' is also in process '{earlier.process_id}' with "
                "another form; give one of them another id",
                file,
                element.bpmn_id,
                compilation.locate(file, element.bpmn_id),
            )
        )
    return problems


def _unknown_roles(
    compilation: Compilation,
    process: CompiledProcess,
    roles: Roles,
    seen: set[tuple[str, str, str]],
) -> list[Problem]:
    """Lanes and escalations that name a role the roles file does not declare."""
    problems: list[Problem] = []
    for element in process.elements:
        for what, name in (("lane", element.lane), ("escalation", element.escalation)):
            if name is None or name in roles:
                continue
            key = (element.process_id, what, name)
            if key in seen:
                continue
            seen.add(key)
            suggestion = roles.suggest(name)
            hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
            file = compilation.processes.get(element.process_id, process).file
            subject = (
                f"lane '{name}'"
                if what == "lane"
                else f"escalation of '{element.name}' to '{name}'"
            )
            problems.append(
                Problem(
                    f"{subject} names a role {roles.file} does not declare{hint}",
                    file,
                    element.bpmn_id,
                    compilation.locate(file, element.bpmn_id),
                )
            )
    return problems


def validate(
    files: list[SourceFile],
    registry: Registry,
    *,
    deploying: bool,
    roles: Roles | None = None,
    role_problems: Iterable[Problem] = (),
) -> Compilation:
    from engine.spiff import compile_sources

    compilation = compile_sources(files)
    problems = [*role_problems, *check(compilation, registry, roles)]
    if problems:
        hint = (
            "Fix the diagrams and deploy again; nothing was deployed."
            if deploying
            else "Fix the diagrams and validate again."
        )
        raise ProcessValidationError(problems, hint)
    return compilation


@dataclass(frozen=True)
class Deployed:
    process_id: str
    version: int
    name: str
    created: bool
    content_hash: str


def store(
    session: Session, compilation: Compilation, files: list[SourceFile], actor: str, now: datetime
) -> list[Deployed]:
    by_name = {f.name: f for f in files}
    results: list[Deployed] = []
    stored: set[str] = set()
    for process_id in sorted(compilation.processes):
        process = compilation.processes[process_id]
        latest = latest_definition(session, process_id)
        if latest is not None and latest.content_hash == process.content_hash:
            results.append(
                Deployed(process_id, latest.version, latest.name, False, latest.content_hash)
            )
            continue
        version = (latest.version + 1) if latest is not None else 1
        _store_sources(session, [by_name[name] for name in process.files], now, stored)
        session.add(_definition_record(process, version, by_name, actor, now))
        results.append(Deployed(process_id, version, process.name, True, process.content_hash))
    session.flush()
    return results


def _store_sources(
    session: Session, files: list[SourceFile], now: datetime, stored: set[str]
) -> None:
    """Store each file once, however many of the deployed processes come from it."""
    for source in files:
        if source.sha256 in stored:
            continue
        stored.add(source.sha256)
        if session.get(SourceFileRecord, source.sha256) is None:
            session.add(
                SourceFileRecord(
                    sha256=source.sha256,
                    name=source.name,
                    content=source.text(),
                    first_deployed_at=now,
                )
            )


def _definition_record(
    process: CompiledProcess,
    version: int,
    by_name: dict[str, SourceFile],
    actor: str,
    now: datetime,
) -> DefinitionRecord:
    from engine.spiff import SERIALIZER_VERSION

    elements: list[dict[str, Any]] = []
    seen: set[str] = set()
    for element in process.elements:
        if element.bpmn_id in seen:
            continue
        seen.add(element.bpmn_id)
        elements.append(
            {
                "id": element.bpmn_id,
                "name": element.name,
                "kind": element.kind,
                "lane": element.lane,
                "operator": element.operator,
                "process": element.process_id,
            }
        )
        if element.form is not None:
            elements[-1]["form"] = element.form.as_data()
    return DefinitionRecord(
        process_id=process.process_id,
        version=version,
        name=process.name,
        content_hash=process.content_hash,
        spec_json=process.spec_json,
        serializer_version=SERIALIZER_VERSION,
        files=[{"name": name, "sha256": by_name[name].sha256} for name in process.files],
        elements=elements,
        lanes=process.lanes,
        deployed_at=now,
        deployed_by=actor,
    )


def latest_definition(session: Session, process_id: str) -> DefinitionRecord | None:
    return session.scalars(
        select(DefinitionRecord)
        .where(DefinitionRecord.process_id == process_id)
        .order_by(DefinitionRecord.version.desc())
        .limit(1)
    ).first()


def find_definition(
    session: Session, process_id: str, version: int | None = None
) -> DefinitionRecord:
    if version is None:
        record = latest_definition(session, process_id)
    else:
        record = session.scalars(
            select(DefinitionRecord).where(
                DefinitionRecord.process_id == process_id, DefinitionRecord.version == version
            )
        ).first()
    if record is None:
        known = session.scalars(select(DefinitionRecord.process_id).distinct()).all()
        close = difflib.get_close_matches(process_id, list(known), n=1)
        what = f"process '{process_id}'" + (f" version {version}" if version else "")
        hint = (
            f"Did you mean '{close[0]}'?"
            if close
            else "Deploy it first with `artreturns deploy`, or list processes with "
            "`artreturns processes`."
        )
        raise DefinitionNotFoundError(f"no deployed {what}", hint)
    return record


@dataclass(frozen=True)
class DefinitionRow:
    id: int
    process_id: str
    version: int
    content_hash: str


_DEFINITION = cast(Table, DefinitionRecord.__table__)
# Read by every `start`: plain SQL on the driver's cursor (see `persistence.writes`).
_ROW = "SELECT id, process_id, version, content_hash FROM definition WHERE process_id = :b_process"
_LATEST = Write(f"{_ROW} ORDER BY version DESC LIMIT 1")
_VERSION = Write(f"{_ROW} AND version = :b_version")


def find_definition_row(conn: Connection, process_id: str, version: int | None) -> DefinitionRow:
    """The latest (or given) version of a process, without its spec."""
    if version is None:
        row = _LATEST.run(conn, {"b_process": process_id}).first()
    else:
        row = _VERSION.run(conn, {"b_process": process_id, "b_version": version}).first()
    if row is None:
        with Session(bind=conn) as session:
            find_definition(session, process_id, version)  # raises with a suggestion
        raise DefinitionNotFoundError(f"no deployed process '{process_id}'")
    return DefinitionRow(row[0], row[1], row[2], row[3])


_ELEMENTS = select(_DEFINITION.c.elements).where(_DEFINITION.c.id == bindparam("b_id"))


class FormCache:
    """The forms of a definition version's user tasks, by task id, read from its
    `elements` (a version's forms never change). Versions deployed before forms were
    recorded have none: their tasks take any data."""

    def __init__(self) -> None:
        self._forms: dict[int, dict[str, Form]] = {}

    def get(self, conn: Connection, definition_id: int) -> dict[str, Form]:
        forms = self._forms.get(definition_id)
        if forms is None:
            elements = conn.execute(_ELEMENTS, {"b_id": definition_id}).scalar_one_or_none()
            forms = {
                str(e["id"]): Form.from_data(e["form"])
                for e in elements or []
                if isinstance(e, dict) and e.get("form") is not None
            }
            self._forms[definition_id] = forms
        return forms


class SpecCache:
    """Parsed specs per definition version; a version's spec never changes."""

    def __init__(self) -> None:
        self._bundles: dict[int, SpecBundle] = {}

    def cached(self, definition_id: int) -> SpecBundle | None:
        return self._bundles.get(definition_id)

    def put(self, definition_id: int, spec_json: str) -> SpecBundle:
        from engine.spiff import load_specs

        bundle = load_specs(spec_json)
        self._bundles[definition_id] = bundle
        return bundle

    def get(self, record: DefinitionRecord) -> SpecBundle:
        bundle = self._bundles.get(record.id)
        if bundle is None:
            from engine.spiff import load_specs

            bundle = load_specs(record.spec_json)
            self._bundles[record.id] = bundle
        return bundle

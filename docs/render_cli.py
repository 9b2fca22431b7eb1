"""Render the CLI reference and the handler catalogue as Markdown, from the code.

    python docs/render_cli.py            > docs/cli.md        (every command's --help)
    python docs/render_cli.py handlers   > docs/handlers.md   (every handler's docstring)

`make docs` runs both; tests/cli/test_docs.py fails when a checked-in file differs from
what this script renders, so the documents cannot go stale. The output is the same on
every machine: help is wrapped at a fixed width, whatever the terminal.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import click

from engine import Registry

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 88
GENERATED = "Generated from the code by `docs/render_cli.py`; do not edit. Run `make docs`."


def load_cli() -> click.Group:
    """The `artreturns` command group from cli.py in this checkout."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cli import cli

    return cli


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    settings = dict(command.context_settings)
    settings.update(max_content_width=WIDTH, terminal_width=WIDTH)
    return click.Context(command, info_name=name, parent=parent, **settings)


def command_help() -> list[tuple[str, str]]:
    """(full command name, --help text) for the top level, then each command by name."""
    group = load_cli()
    root = _context(group, "artreturns", None)
    pages = [("artreturns", group.get_help(root))]
    for name in sorted(group.list_commands(root)):
        command = group.get_command(root, name)
        assert command is not None
        context = _context(command, name, root)
        pages.append((f"artreturns {name}", command.get_help(context)))
        if isinstance(command, click.Group):  # orders import, notices send, ...
            for sub_name in sorted(command.list_commands(context)):
                sub = command.get_command(context, sub_name)
                assert sub is not None
                sub_help = sub.get_help(_context(sub, sub_name, context))
                pages.append((f"artreturns {name} {sub_name}", sub_help))
    return pages


#: The objects `--json` prints, the commands that print them, and what they add.
JSON_SHAPES = (
    (
        "CommandResult",
        "start, complete, claim, unclaim, delegate, message, comment, "
        "cancel, retry (one target), apply",
        "",
    ),
    (
        "TaskView",
        "incidents; each of `tasks`, which adds `overdue` (true/false), "
        "`age_seconds` and `summary` (an object of the summary fields: artwork, customer)",
        "",
    ),
    (
        "InstanceView",
        "instances; show, which adds `return` (the return's picture, or "
        "null for an instance of another process)",
        "",
    ),
    (
        "EventView",
        "history; across instances (`--actor`, `--since`, `--until`) each adds `rma`",
        "",
    ),
    ("UserView", "users list, users add, users disable", ""),
    ("OperationView", "operations", ""),
    ("FormView", "form", ""),
    ("FormField", "form, as each of `fields`", ""),
    ("DeployView", "deploy", ""),
    ("ProcessView", "processes", ""),
    ("JobView", "jobs", ""),
)


def render_json_shapes() -> list[str]:
    """The keys of each object `--json` prints, in order, from the engine's views."""
    import dataclasses
    import typing

    import engine.forms
    import engine.jobs
    import engine.views

    def find(name: str) -> type:
        for module in (engine.views, engine.forms, engine.jobs):
            if hasattr(module, name):
                found: type = getattr(module, name)
                return found
        raise LookupError(name)

    lines = [
        "## JSON output",
        "",
        textwrap.fill(
            "`--json` prints one of these objects, or a list of them, with the keys in "
            "this order. Times are ISO 8601 in UTC (`2026-11-02T09:00:00+00:00`), amounts "
            "are decimal text with their currency, never numbers. Keys are only ever "
            "added; a key is not renamed or removed without a changelog entry.",
            WIDTH,
        ),
        "",
    ]
    for name, used_by, _ in JSON_SHAPES:
        cls = find(name)
        hints = typing.get_type_hints(cls)
        keys = ", ".join(
            f"`{f.name}` ({_type_name(hints[f.name])})" for f in dataclasses.fields(cls)
        )
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        if doc.startswith(f"{name}("):  # the signature dataclasses write, not a docstring
            doc = ""
        lines += [f"### {name}", ""]
        if doc:
            lines += [textwrap.fill(doc, WIDTH), ""]
        lines += [textwrap.fill(f"Printed by: {used_by}.", WIDTH), ""]
        lines += [textwrap.fill(f"Keys: {keys}.", WIDTH, break_on_hyphens=False), ""]
    return lines


def _type_name(hint: object) -> str:
    text = getattr(hint, "__name__", None) if not getattr(hint, "__args__", None) else None
    if text is None:
        text = str(hint).replace("typing.", "").replace("engine.views.", "")
        text = text.replace("engine.forms.", "").replace("datetime.datetime", "datetime")
    return text.replace("NoneType", "None")


def render_cli() -> str:
    """docs/cli.md: every command's help, as the command line prints it, then the
    objects `--json` prints."""
    lines = ["# Command-line reference", "", GENERATED, ""]
    for title, text in command_help():
        lines += [f"## {title}", "", "```text", text.rstrip(), "```", ""]
    lines += render_json_shapes()
    return "\n".join(lines)


def render_handlers() -> str:
    """docs/handlers.md: every operator a service task can name, with its docstring."""
    registry = builtin_registry()
    lines = [
        "# Handler catalogue",
        "",
        GENERATED,
        "",
        "The operators that a service task can name in a diagram "
        "(`<spiffworkflow:serviceTaskOperator id=...>`), as `artreturns handlers` lists them.",
        "",
        "| operator | what it does |",
        "|---|---|",
    ]
    lines += [f"| `{info.operator}` | {info.summary} |" for info in registry]
    for info in registry:
        doc = inspect.getdoc(info.handler) or ""
        rest = doc.split("\n", 1)[1].strip() if "\n" in doc else ""
        lines += ["", f"## `{info.operator}`", "", info.summary or "(no description)", ""]
        if rest:
            lines += [rest, ""]
        lines.append(f"Provided by `{info.source}`.")
    return "\n".join(lines) + "\n"


def builtin_registry() -> Registry:
    """The handlers shipped in handlers/ (not whatever else is installed here)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from handlers import HANDLERS

    registry = Registry()
    registry.register_mapping(HANDLERS, source="handlers:HANDLERS")
    return registry


RENDERERS = {"cli": render_cli, "handlers": render_handlers}


def main(argv: list[str]) -> int:
    which = argv[0] if argv else "cli"
    renderer = RENDERERS.get(which)
    if renderer is None or len(argv) > 1:
        sys.stderr.write(f"usage: render_cli.py [{'|'.join(RENDERERS)}]\n")
        return 2
    sys.stdout.write(renderer())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

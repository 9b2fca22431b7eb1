"""The layering rules that ruff cannot express per folder."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_handlers_never_touch_the_database() -> None:
    """Handlers get `ctx.services`; only the store behind those services (handlers/store)
    speaks SQL, and nothing in handlers/ reaches into the engine's runner or the CLI."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in _imports(path)
            if name.startswith(("sqlalchemy", "engine.persistence", "engine.runner", "cli"))
            and not (
                "store" in path.relative_to(ROOT).parts
                and name.startswith(("sqlalchemy", "engine.persistence"))
            )
        )
        for path in (ROOT / "handlers").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_engine_spiff_imports_spiffworkflow() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("engine", "handlers")
        for path in (ROOT / folder).rglob("*.py")
        if "spiff" not in path.relative_to(ROOT).parts
        and any(name.startswith("SpiffWorkflow") for name in _imports(path))
    ]
    assert not [p for p in offenders if p != "cli.py"]
    assert not any(name.startswith("SpiffWorkflow") for name in _imports(ROOT / "cli.py"))


def test_the_engine_never_imports_the_cli() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("engine", "handlers")
        for path in (ROOT / folder).rglob("*.py")
        if "cli" in _imports(path) or "click" in _imports(path)
    ]
    assert offenders == []

"""Draw every process diagram as an SVG picture, from the layout its modeler saved.

    python docs/render_diagrams.py            every processes/*.bpmn -> docs/diagrams/<name>.svg
    python docs/render_diagrams.py FILE ...   only these files, into docs/diagrams/

The drawing is engine/diagram.py's (the audit report draws with it too): the pool and its
lanes, tasks with their type marker, events, gateways, sequence flows and every label, as
bpmn.io shows them at 100 %. docs/processes.md shows the pictures; `make docs` runs this
script.

The line after the XML declaration of each SVG records the SHA-256 of the .bpmn it was
drawn from, and tests/cli/test_docs.py fails when a diagram changed and its picture was
not drawn again. Every element drawn is a `<g data-element="its id">`.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.diagram import DiagramError, text_width, to_svg  # noqa: E402
from engine.errors import EngineError  # noqa: E402  (once the repository is on the path)

PROCESSES = ROOT / "processes"
OUT = ROOT / "docs" / "diagrams"

# -- files -------------------------------------------------------------------------------


def source_name(path: Path) -> str:
    """The file as an SVG names it: relative to the repository when it is inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def render(data: bytes, filename: str) -> str:
    """The SVG of a .bpmn file's contents; its second line records the file's SHA-256."""
    header = (
        f"<!-- Drawn from {filename} (sha256 {hashlib.sha256(data).hexdigest()})"
        " by docs/render_diagrams.py; do not edit: run `make docs`. -->"
    )
    body = to_svg(data, filename)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{header}\n{body}\n'


def render_file(path: Path) -> str:
    return render(path.read_bytes(), source_name(path))


def recorded_sha256(svg_text: str) -> str | None:
    """The SHA-256 of the .bpmn an SVG says, on its second line, it was drawn from."""
    lines = svg_text.splitlines()
    if len(lines) < 2 or "(sha256 " not in lines[1]:
        return None
    return lines[1].split("(sha256 ", 1)[1].split(")", 1)[0]


def main(argv: list[str]) -> int:
    if any(arg.startswith("-") for arg in argv):
        sys.stderr.write("usage: render_diagrams.py [FILE.bpmn ...]\n")
        return 2
    sources = [Path(arg) for arg in argv] or sorted(PROCESSES.glob("*.bpmn"))
    OUT.mkdir(parents=True, exist_ok=True)
    for source in sources:
        try:
            text = render_file(source)
        except (DiagramError, EngineError, OSError) as exc:  # unreadable, unsafe, no layout
            sys.stderr.write(f"render_diagrams.py: {exc}\n")
            return 1
        target = OUT / f"{source.stem}.svg"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            sys.stdout.write(f"drew {target.relative_to(ROOT)}\n")
    if not argv:  # a diagram that is gone takes its picture with it
        for old in sorted(OUT.glob("*.svg")):
            if old.stem not in {source.stem for source in sources}:
                old.unlink()
                sys.stdout.write(f"removed {old.relative_to(ROOT)}\n")
    return 0


#: What tests/cli/test_docs.py uses of the drawing, through this script.
__all__ = ["DiagramError", "main", "recorded_sha256", "render", "render_file", "text_width"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

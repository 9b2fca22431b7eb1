"""Mutations of diagram files, drawn by hypothesis and applied to a file's bytes.

A mutant is a file name, a few XML edits and a few byte edits. Indices are plain
integers taken modulo whatever they index when the mutant is applied, so every drawn
mutant applies to every file, shrinks well, and reads back in a failure report (or an
`@example`) as plain data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from lxml import etree

#: Namespaces of the diagram's drawing (shapes, edges, bounds): edits there reach no check.
_DRAWING = (
    "http://www.omg.org/spec/BPMN/20100524/DI",
    "http://www.omg.org/spec/DD/20100524/DC",
    "http://www.omg.org/spec/DD/20100524/DI",
    "https://www.omg.org/spec/DMN/20191111/DMNDI/",
    "http://www.omg.org/spec/DMN/20180521/DMNDI/",
)

#: Values an edit writes where a diagram keeps an id, a reference, an expression, a
#: timer or a decision cell: the hostile, the malformed and the merely unexpected.
SPECIMENS = (
    "",
    " ",
    "None",
    "True",
    "x ==",
    "(",
    "amount > ",
    "__import__('os').system('true')",
    "().__class__.__base__.__subclasses__()",
    "open('/etc/passwd').read()",
    "9**9**9",
    "[i for i in range(10**12)]",
    "lambda: 1",
    "P1D",
    "PT-5M",
    "R/P1D",
    "R3/PT1H",
    "R-1/PT1H",
    "P99999999999999D",
    "2026-13-45T99:00:00Z",
    "9999-12-31T23:59:59Z",
    '"approve"',
    "> 1000000000000000000000",
    "[1..]",
    "not(",
    "-",
    "1e309",
    "名前の検査",
    "\u202etxt.exe",
    "a" * 300,
    "'",
    '"',
    "<",
    "&",
)

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
#: ("lit", text) writes the text; ("id", n) writes the n-th id found in the document.
VALUES = st.one_of(
    st.tuples(st.just("lit"), st.sampled_from(SPECIMENS)),
    st.tuples(st.just("lit"), _TEXT),
    st.tuples(st.just("id"), st.integers(min_value=0)),
)
_AT = st.integers(min_value=0, max_value=10**6)

XML_EDITS = st.one_of(
    st.tuples(st.just("drop"), _AT),
    st.tuples(st.just("duplicate"), _AT),
    st.tuples(st.just("move"), _AT, _AT),
    st.tuples(st.just("unset"), _AT, _AT),
    st.tuples(st.just("set"), _AT, _AT, VALUES),
    st.tuples(st.just("text"), _AT, VALUES),
    st.tuples(st.just("rewire"), _AT, VALUES),
)
BYTE_EDITS = st.one_of(
    st.tuples(st.just("flip"), _AT, st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("insert"), _AT, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _AT, st.integers(min_value=1, max_value=64)),
    st.tuples(st.just("truncate"), _AT),
    st.tuples(st.just("splice"), _AT, _AT, st.integers(min_value=1, max_value=400)),
)


@dataclass(frozen=True)
class Mutant:
    file: str
    xml: tuple[tuple[Any, ...], ...] = ()
    raw: tuple[tuple[Any, ...], ...] = ()

    def apply(self, original: bytes) -> bytes:
        data = _edit_tree(original, self.xml) if self.xml else original
        for edit in self.raw:
            data = _edit_bytes(data, edit)
        return data


def mutants(names: list[str]) -> st.SearchStrategy[Mutant]:
    """Mutants of the named files: mostly XML edits, some byte edits on top."""
    return st.builds(
        Mutant,
        st.sampled_from(names),
        st.lists(XML_EDITS, min_size=0, max_size=4).map(tuple),
        st.lists(BYTE_EDITS, min_size=0, max_size=2).map(tuple),
    ).filter(lambda m: bool(m.xml or m.raw))


def _is_model(element: etree._Element) -> bool:
    tag = element.tag
    if not isinstance(tag, str):  # comments, processing instructions
        return False
    return not any(tag.startswith("{" + ns + "}") for ns in _DRAWING)


def _edit_tree(original: bytes, edits: tuple[tuple[Any, ...], ...]) -> bytes:
    root = etree.fromstring(original)
    for edit in edits:
        elements = [e for e in root.iter() if _is_model(e) and e is not root]
        if not elements:
            break
        ids = [str(e.get("id")) for e in elements if e.get("id")] or ["nothing"]
        kind, at, *rest = edit
        target = elements[at % len(elements)]
        parent = target.getparent()
        if kind == "drop" and parent is not None:
            parent.remove(target)
        elif kind == "duplicate" and parent is not None:
            target.addnext(copy.deepcopy(target))
        elif kind == "move" and parent is not None:
            destination = elements[rest[0] % len(elements)]
            if destination is not target and target not in destination.iterancestors():
                parent.remove(target)
                destination.append(target)
        elif kind == "unset" and target.attrib:
            names = sorted(target.attrib)
            del target.attrib[names[rest[0] % len(names)]]
        elif kind == "set":
            names = sorted(target.attrib) or ["id"]
            target.set(names[rest[0] % len(names)], _value(rest[1], ids))
        elif kind == "text":
            leaves = [e for e in elements if len(e) == 0 and (e.text or "").strip()]
            leaf = leaves[at % len(leaves)] if leaves else target
            leaf.text = _value(rest[0], ids)
        elif kind == "rewire":
            flows = [e for e in elements if e.get("sourceRef") or e.get("calledElement")]
            flow = flows[at % len(flows)] if flows else target
            name = next(
                (n for n in ("sourceRef", "targetRef", "calledElement") if flow.get(n)), "id"
            )
            if flow.get("targetRef") and at % 2:
                name = "targetRef"
            flow.set(name, _value(rest[0], ids))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _value(value: tuple[str, Any], ids: list[str]) -> str:
    kind, given = value
    return ids[given % len(ids)] if kind == "id" else str(given)


def _edit_bytes(data: bytes, edit: tuple[Any, ...]) -> bytes:
    if not data:
        return data
    kind, at, *rest = edit
    at %= len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ rest[0]]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + rest[0] + data[at:]
    if kind == "delete":
        return data[:at] + data[at + rest[0] :]
    if kind == "truncate":
        return data[:at]
    start = rest[0] % len(data)  # splice: copy a stretch of the file to another place
    return data[:at] + data[start : start + rest[1]] + data[at:]

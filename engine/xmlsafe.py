"""Parse diagrams as untrusted input.

Diagrams come from people and modelers, so they are parsed with entity resolution,
DTD loading and network access switched off, and any document type declaration is
refused outright: BPMN and DMN never need one, and it is how XXE and entity bombs
arrive. libxml2's own limits (nesting depth, text node size) stay switched on
(`huge_tree=False`), files over MAX_DOCUMENT_BYTES are refused before they are parsed,
and elements nested deeper than MAX_DEPTH are refused with the line where it happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import Problem, ProcessValidationError, UnsafeDocumentError

if TYPE_CHECKING:  # lxml is imported when a diagram is parsed, not by every command
    from lxml import etree

#: Larger files are refused before parsing. The largest diagram of the BPMN
#: interchange test suite is under 200 KB.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
#: Deepest nesting of elements accepted. Diagrams of the BPMN interchange test suite
#: reach 11; libxml2 itself stops at 256 (without its "huge" option).
MAX_DEPTH = 100
_LIBXML2_DEPTH = "Excessive depth in document"


def _too_deep(filename: str, line: int | None, depth: int | str) -> UnsafeDocumentError:
    return UnsafeDocumentError(
        [
            Problem(
                f"elements are nested {depth} levels deep; the limit is {MAX_DEPTH}",
                file=filename,
                line=line,
            )
        ],
        hint="Diagrams never nest elements that deeply; check how the file was made.",
    )


def _check_depth(root: etree._Element, filename: str) -> None:
    from lxml import etree

    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep(filename, element.sourceline, f"more than {MAX_DEPTH}")


def _parser() -> etree.XMLParser:
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=True,
    )


def parse_document(data: bytes, filename: str) -> etree._Element:
    """Return the root element of `data`, or raise with the file and line at fault."""
    from lxml import etree

    if len(data) > MAX_DOCUMENT_BYTES:
        raise UnsafeDocumentError(
            [
                Problem(
                    f"file is {len(data):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}",
                    file=filename,
                )
            ]
        )
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        at = min(i for i in (data.find(b"<!DOCTYPE"), data.find(b"<!ENTITY")) if i >= 0)
        line = data[:at].count(b"\n") + 1
        raise UnsafeDocumentError(
            [
                Problem(
                    "document type declarations and entities are not allowed in diagrams",
                    file=filename,
                    line=line,
                )
            ],
            hint="Remove the <!DOCTYPE ...> block; BPMN and DMN files never need one.",
        )
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        if _LIBXML2_DEPTH in (exc.msg or ""):
            raise _too_deep(filename, exc.lineno, "more than 256") from exc
        raise ProcessValidationError(
            [Problem(f"not well-formed XML: {exc.msg}", file=filename, line=exc.lineno)]
        ) from exc
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise UnsafeDocumentError(
            [Problem("document type declarations are not allowed in diagrams", file=filename)]
        )
    _check_depth(root, filename)
    return root

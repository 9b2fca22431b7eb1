"""Parsing diagrams as hostile XML: no DOCTYPE, no entities, no network, no file reads.

Every refusal is a `ProcessValidationError` (DOCTYPEs and entities the subclass
`UnsafeDocumentError`) that names the file and, where known, the line, and never
carries the content of anything the document tried to pull in.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from support import BPMN
from xml_attacks import make_secret, recording_server

from engine.errors import ProcessValidationError, UnsafeDocumentError
from engine.xmlsafe import MAX_DEPTH, MAX_DOCUMENT_BYTES, parse_document

NAME = "incoming.bpmn"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def _diagram(doctype: str, documentation: str = "hello") -> bytes:
    """A small valid BPMN diagram, with `doctype` on line 2."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{doctype}\n"
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="http://x">\n'
        '  <bpmn:process id="p" isExecutable="true">\n'
        f"    <bpmn:documentation>{documentation}</bpmn:documentation>\n"
        '    <bpmn:startEvent id="s"/>\n'
        "  </bpmn:process>\n"
        "</bpmn:definitions>\n"
    ).encode()


def _everything_said(exc: ProcessValidationError) -> str:
    """All text a user could see for the error."""
    return "\n".join([str(exc), exc.hint or "", *(str(p) for p in exc.problems)])


@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    return make_secret(tmp_path)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    with recording_server() as found:
        yield found


# -- controls: the attacks below are real ----------------------------------------


def test_the_file_entity_payload_leaks_through_an_unsafe_parser(secret: tuple[Path, str]) -> None:
    # What the tests below guard against: lxml told to resolve entities reads the file.
    path, token = secret
    data = _diagram(f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{path.as_uri()}">]>', "&xxe;")
    unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False)
    assert token in etree.tostring(etree.fromstring(data, parser=unsafe)).decode()


def test_the_request_recorder_records_requests(server: tuple[str, list[str]]) -> None:
    url, hits = server
    with urllib.request.urlopen(f"{url}/probe", timeout=5) as response:
        assert response.status == 200
    assert hits == ["/probe"]


# -- accepted -------------------------------------------------------------------


def test_a_normal_diagram_is_parsed() -> None:
    root = parse_document((BPMN / "review_call.bpmn").read_bytes(), "review_call.bpmn")
    assert root.tag == f"{{{BPMN_NS}}}definitions"
    [process] = root.iter(f"{{{BPMN_NS}}}process")
    assert process.get("id") == "review_call"
    assert root.sourceline == 2


def test_a_diagram_in_utf16_is_parsed() -> None:
    data = _diagram("").decode().replace("UTF-8", "UTF-16").encode("utf-16")
    root = parse_document(data, NAME)
    assert root.get("id") == "d"


def test_a_document_at_the_size_limit_is_parsed() -> None:
    data = _diagram("")
    padding = MAX_DOCUMENT_BYTES - len(data) - len("<!---->")
    data = data + b"<!--" + b"x" * padding + b"-->"
    assert len(data) == MAX_DOCUMENT_BYTES
    assert parse_document(data, NAME).get("id") == "d"


def test_xinclude_is_not_processed(secret: tuple[Path, str]) -> None:
    path, token = secret
    data = _diagram(
        "",
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{path.as_uri()}" '
        'parse="text"/>',
    )
    root = parse_document(data, NAME)
    assert token not in etree.tostring(root).decode()


def test_processing_instructions_are_dropped() -> None:
    data = _diagram('<?xml-stylesheet href="http://127.0.0.1:9/evil.xsl"?>')
    root = parse_document(data, NAME)
    assert root.getprevious() is None


# -- refused: DOCTYPE and entities ----------------------------------------------


def test_an_external_file_entity_is_refused_without_reading_the_file(
    secret: tuple[Path, str],
) -> None:
    path, token = secret
    data = _diagram(
        f'<!DOCTYPE bpmn:definitions [<!ENTITY xxe SYSTEM "{path.as_uri()}">]>', "&xxe;"
    )
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    problem = raised.value.problems[0]
    assert (problem.file, problem.line) == (NAME, 2)
    assert "document type" in problem.message
    assert token not in _everything_said(raised.value)
    assert "DOCTYPE" in (raised.value.hint or "")


def test_an_entity_on_etc_hostname_leaks_nothing() -> None:
    def refusal(target: str) -> str:
        data = _diagram(f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{target}">]>', "&xxe;")
        with pytest.raises(UnsafeDocumentError) as raised:
            parse_document(data, NAME)
        return _everything_said(raised.value)

    # The refusal reads the same whether or not the file exists: nothing of it is used.
    missing = f"file:///nonexistent/{uuid.uuid4().hex}"
    assert refusal("file:///etc/hostname") == refusal(missing)
    hostname = Path("/etc/hostname")
    if hostname.exists() and len(hostname.read_text().strip()) >= 4:
        assert hostname.read_text().strip() not in refusal("file:///etc/hostname")


def test_a_network_entity_is_refused_without_a_request(server: tuple[str, list[str]]) -> None:
    url, hits = server
    data = _diagram(f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{url}/xxe">]>', "&xxe;")
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    assert raised.value.file == NAME
    assert raised.value.line == 2
    assert hits == []


def test_a_parameter_entity_is_refused_without_a_request(server: tuple[str, list[str]]) -> None:
    url, hits = server
    data = _diagram(f'<!DOCTYPE d [<!ENTITY % remote SYSTEM "{url}/evil.dtd"> %remote;]>')
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    assert raised.value.file == NAME
    assert hits == []


def test_an_external_dtd_is_refused_without_a_request(server: tuple[str, list[str]]) -> None:
    url, hits = server
    data = _diagram(f'<!DOCTYPE bpmn:definitions SYSTEM "{url}/bpmn.dtd">')
    with pytest.raises(UnsafeDocumentError):
        parse_document(data, NAME)
    assert hits == []


def test_billion_laughs_is_refused_at_once() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    data = _diagram(f"<!DOCTYPE d [{''.join(entities)}]>", "&lol9;")
    started = time.monotonic()
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    assert time.monotonic() - started < 1
    assert (raised.value.file, raised.value.line) == (NAME, 2)


def test_quadratic_blowup_is_refused_at_once() -> None:
    big = "x" * 50_000
    data = _diagram(f'<!DOCTYPE d [<!ENTITY big "{big}">]>', "&big;" * 50_000)
    started = time.monotonic()
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    assert time.monotonic() - started < 1
    assert raised.value.file == NAME


@pytest.mark.parametrize(
    "doctype",
    [
        "<!DOCTYPE bpmn:definitions>",
        "<!DOCTYPE bpmn:definitions []>",
        '<!DOCTYPE bpmn:definitions PUBLIC "-//x//EN" "x.dtd">',
        '<!DOCTYPE bpmn:definitions [<!ATTLIST bpmn:process isExecutable CDATA "true">]>',
    ],
)
def test_any_doctype_is_refused(doctype: str) -> None:
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(_diagram(doctype), NAME)
    assert (raised.value.file, raised.value.line) == (NAME, 2)


def test_an_entity_declared_outside_a_doctype_is_refused() -> None:
    with pytest.raises(UnsafeDocumentError):
        parse_document(_diagram('<!ENTITY xxe SYSTEM "file:///etc/hostname">'), NAME)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_doctype_hidden_by_another_encoding_is_still_refused(
    encoding: str, secret: tuple[Path, str], server: tuple[str, list[str]]
) -> None:
    # The byte scan for "<!DOCTYPE" cannot see it here; the parsed tree is checked too.
    path, token = secret
    url, hits = server
    text = _diagram(
        f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{path.as_uri()}"><!ENTITY net SYSTEM "{url}/n">]>',
        "&xxe;&net;",
    ).decode()
    label = encoding.upper().replace("-LE", "LE")
    text = text.replace('encoding="UTF-8"', f'encoding="{label}"')
    data = text.encode(encoding)
    if encoding != "utf-16":
        data = {"utf-16-le": b"\xff\xfe", "utf-32": b""}[encoding] + data
    assert b"<!DOCTYPE" not in data
    with pytest.raises(ProcessValidationError) as raised:
        parse_document(data, NAME)
    assert raised.value.file == NAME
    assert token not in _everything_said(raised.value)
    assert hits == []


def test_a_lowercase_doctype_is_not_xml() -> None:
    with pytest.raises(ProcessValidationError) as raised:
        parse_document(_diagram("<!doctype html>"), NAME)
    assert (raised.value.file, raised.value.line) == (NAME, 2)


def test_the_doctype_line_is_reported_even_after_a_comment() -> None:
    data = _diagram("<!-- made by hand -->\n\n<!DOCTYPE bpmn:definitions>")
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    assert raised.value.line == 4


# -- refused: size, depth, syntax -----------------------------------------------


def test_an_oversized_document_is_refused_before_parsing() -> None:
    data = _diagram("")
    data = data + b"<!--" + b"x" * (MAX_DOCUMENT_BYTES - len(data)) + b"-->"
    assert len(data) > MAX_DOCUMENT_BYTES
    started = time.monotonic()
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    assert time.monotonic() - started < 1
    assert raised.value.file == NAME
    assert f"{MAX_DOCUMENT_BYTES:,}" in raised.value.problems[0].message


def _nested(depth: int) -> bytes:
    """A diagram whose documentation holds `depth - 3` nested elements (so `depth`
    levels in all), one per line from line 6."""
    inner = "<b>\n" * (depth - 3) + "</b>\n" * (depth - 3)
    return _diagram("", inner)


def test_deep_nesting_is_refused_where_libxml2_stops() -> None:
    depth = 10_000
    data = b'<?xml version="1.0"?>\n' + b"<a>\n" * depth + b"</a>\n" * depth
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(data, NAME)
    problem = raised.value.problems[0]
    assert problem.file == NAME
    assert problem.message == (
        f"elements are nested more than 256 levels deep; the limit is {MAX_DEPTH}"
    )
    assert "XML_PARSE_HUGE" not in _everything_said(raised.value)
    assert problem.line is not None
    assert 2 < problem.line < depth  # the line where libxml2 gave up, not the end


def test_nesting_deeper_than_the_limit_is_refused_at_its_line() -> None:
    with pytest.raises(UnsafeDocumentError) as raised:
        parse_document(_nested(MAX_DEPTH + 1), NAME)
    problem = raised.value.problems[0]
    assert problem.message == (
        f"elements are nested more than {MAX_DEPTH} levels deep; the limit is {MAX_DEPTH}"
    )
    assert (problem.file, problem.line) == (NAME, 5 + MAX_DEPTH - 3)
    assert raised.value.hint


def test_nesting_at_the_limit_is_parsed() -> None:
    root = parse_document(_nested(MAX_DEPTH), NAME)
    assert max(len(list(e.iterancestors())) for e in root.iter()) + 1 == MAX_DEPTH


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"<a>\n<b>\n</a>", 3, "mismatch"),
        (b'<?xml version="1.0"?>\n<a>\n  <b x="1" x="2"/>\n</a>', 3, "redefined"),
        (b"<a>&undefined;</a>", 1, "not defined"),
        (b"<a>\n\n<b></a", 3, ""),
        (b"", 1, "empty"),
        (b"not xml at all", 1, ""),
        (b"<a/><b/>", 1, "extra content"),
    ],
)
def test_malformed_xml_is_refused_with_its_line(data: bytes, line: int, words: str) -> None:
    with pytest.raises(ProcessValidationError) as raised:
        parse_document(data, NAME)
    assert not isinstance(raised.value, UnsafeDocumentError) or b"<!" in data
    problem = raised.value.problems[0]
    assert (problem.file, problem.line) == (NAME, line)
    assert problem.message.startswith("not well-formed XML")
    assert words.lower() in problem.message.lower()
    assert str(problem).startswith(f"{NAME}:{line}: ")

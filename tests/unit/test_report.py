"""The audit report's parts without a database: the path read from task paths, the
states drawn on a diagram, names escaped, nothing fetched."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lxml import etree
from support import PROCESSES

from engine.diagram import to_svg
from engine.report import Report, Source, diagrams, path_states, render
from engine.views import EventView, InstanceView

SVG_G = "{http://www.w3.org/2000/svg}g"
HOSTILE = "<script>alert(1)</script>"
T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

# (path of BPMN ids through call activities, SpiffWorkflow state), as Run.canonical has them
TASKS = [
    ("Start/request_registered", 64),
    ("Start/request_registered/prepare_return", 64),
    ("Start/request_registered/prepare_return/open_rma", 64),
    ("Start/request_registered/prepare_return/open_rma/approve", 32),
    ("Start/request_registered/prepare_return/open_rma/approve>Start/approval_requested", 64),
    ("Start/request_registered/prepare_return/open_rma/approve>Start/x/approve_return", 16),
    ("Start/request_registered/prepare_return/open_rma/approve>Start/x/approve_return_due", 8),
    ("Start/request_registered/prepare_return/open_rma/refund", 2),  # only predicted
    ("Start/request_registered/prepare_return/open_rma/decline", 256),  # cancelled
]


def test_the_path_is_read_per_called_process() -> None:
    states = path_states(TASKS)
    assert states[()] == {
        "request_registered": "done",
        "prepare_return": "done",
        "open_rma": "done",
        "approve": "current",
    }
    assert states[("approve",)] == {
        "approval_requested": "done",
        "approve_return": "current",
        "approve_return_due": "current",
    }


def test_a_step_done_and_open_again_is_current() -> None:
    assert path_states([("Start/a", 64), ("Start/a/b/a", 16)])[()]["a"] == "current"


def test_the_diagrams_follow_the_calls_and_mark_flows_between_done_steps() -> None:
    sources = [
        Source(p.name, p.read_text(encoding="utf-8"))
        for p in (PROCESSES / "return_request.bpmn", PROCESSES / "approval.bpmn")
    ]
    drawn = diagrams(sources, "return_request", path_states(TASKS))
    assert [(d.process_id, d.via) for d in drawn] == [
        ("return_request", ""),
        ("approval", "approve"),
    ]
    top = etree.fromstring(str(drawn[0].svg).encode("utf-8"))
    state = {g.get("data-element"): g.get("data-state") for g in top.iter(SVG_G)}
    assert state["open_rma"] == "done"
    assert state["to_open_rma"] == "done"  # prepare_return -> open_rma, both done
    assert state["approve"] == "current"
    assert state["refund"] == "not-taken"
    lanes = [g for g in top.iter(SVG_G) if g.get("data-type") == "lane"]
    assert lanes
    assert all(g.get("data-state") is None for g in lanes)  # pools and lanes: no state


def test_a_called_process_not_deployed_is_named_not_drawn() -> None:
    source = PROCESSES / "return_request.bpmn"
    drawn = diagrams(
        [Source(source.name, source.read_text(encoding="utf-8"))],
        "return_request",
        path_states(TASKS),
    )
    assert drawn[1].svg is None
    assert drawn[1].problem is not None
    assert "not among the files" in drawn[1].problem


def test_names_in_a_diagram_are_escaped_in_its_svg() -> None:
    bpmn = (PROCESSES / "approval.bpmn").read_text(encoding="utf-8")
    hostile = re.sub(r'name="[^"]*"', 'name="&lt;script&gt;alert(1)&lt;/script&gt;"', bpmn, count=1)
    svg = to_svg(hostile, "approval.bpmn", {})
    assert HOSTILE not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg


def test_the_page_escapes_every_value_and_fetches_nothing() -> None:
    source = PROCESSES / "approval.bpmn"
    view = InstanceView(
        id=1,
        uid="u",
        business_key=HOSTILE,
        process_id="approval",
        process_version=1,
        status="running",
        started_at=T,
        started_by="محمد",
        updated_at=T,
        ended_at=None,
        next_timer_at=None,
        incident_count=0,
        event_count=1,
    )
    event = EventView(
        seq=1,
        at=T,
        actor=HOSTILE,
        kind="comment",
        bpmn_id=None,
        task_name=None,
        task_id=None,
        data={"text": HOSTILE, "intent": f"artreturns comment '{HOSTILE}'"},
        process_id="approval",
        process_version=1,
        state_digest="0" * 64,
        hash="a" * 64,
    )
    page = render(
        Report(
            view,
            [event],
            [Source(source.name, source.read_text(encoding="utf-8"))],
            [("Start/approval_requested", 64)],
            None,
            T,
            evidence=[
                {"name": HOSTILE, "kind": "photo", "size": 3, "sha256": "b" * 64, "intact": False}
            ],
            notices=[{"id": 1, "notice": HOSTILE, "to": "ann", "at": "x", "delivered": True}],
        )
    )
    assert HOSTILE not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert "محمد" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "NO: missing or changed" in page  # the evidence file that is not intact

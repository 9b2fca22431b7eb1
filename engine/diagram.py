"""BPMN diagrams drawn as SVG from the layout their modeler saved (BPMN DI).

A diagram's BPMN DI (the bounds of its shapes, the waypoints of its edges, the bounds of
its labels) is drawn the way bpmn.io shows it at 100 %: the pool and its lanes, tasks with
their type marker, events, gateways, sequence flows and every label. Every element drawn
is a `<g data-element="its id" data-type="its BPMN type">`; given `states`, each flow
node and sequence flow also gets `class` and `data-state` (the audit report highlights
the path an instance took with them).

Pure Python and lxml: no browser, no node. Names are wrapped with the character widths of
DejaVu Sans, the widest of the fonts a viewer's machine falls back to, so that a wrapped
name stays inside its task whichever of them draws it. docs/render_diagrams.py draws
docs/diagrams/*.svg with it.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from engine.errors import EngineError
from engine.xmlsafe import parse_document

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
SVG = "http://www.w3.org/2000/svg"

INK = "#22242a"
PAPER = "white"
FONT = "Arial, Helvetica, 'Liberation Sans', 'DejaVu Sans', sans-serif"
NAME_SIZE = 12  # names inside tasks, pools and lanes
LABEL_SIZE = 11  # names beside events, gateways and flows
LINE_HEIGHT = 1.2
LABEL_WIDTH = 90  # bpmn.io wraps every outside label at 90 px
PADDING = 7  # between a task's border and its name
MARGIN = 20
CORNER = 5  # radius of a flow's bends
ARROW = (11.0, 4.0)  # length and half width of an arrowhead

#: DejaVu Sans advance widths of the characters " " to "~", in thousandths of the size.
# fmt: off
_WIDTHS = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,
    636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,
    1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,
    603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,
    500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
)
# fmt: on

SUBPROCESSES = {"callActivity", "subProcess", "transaction", "adHocSubProcess"}
TASKS = {
    "task",
    "userTask",
    "serviceTask",
    "scriptTask",
    "businessRuleTask",
    "receiveTask",
    "sendTask",
    "manualTask",
} | SUBPROCESSES
EVENTS = {
    "startEvent",
    "endEvent",
    "intermediateCatchEvent",
    "intermediateThrowEvent",
    "boundaryEvent",
}
GATEWAYS = {
    "exclusiveGateway",
    "parallelGateway",
    "inclusiveGateway",
    "eventBasedGateway",
    "complexGateway",
}
FLOW_NODES = TASKS | EVENTS | GATEWAYS
#: The state of a flow node or sequence flow the states given do not name.
NOT_TAKEN = "not-taken"


class DiagramError(EngineError):
    """A diagram that cannot be drawn: no layout, or elements the layout leaves out."""


# -- the layout --------------------------------------------------------------------------

Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass(frozen=True)
class Shape:
    id: str
    kind: str  # the local name of the BPMN element: userTask, lane, boundaryEvent, ...
    element: Any  # the BPMN element (lxml)
    box: Box
    label: Box | None
    horizontal: bool
    expanded: bool
    marker_visible: bool


@dataclass(frozen=True)
class Edge:
    id: str
    kind: str
    element: Any
    points: tuple[Point, ...]
    label: Box | None


@dataclass(frozen=True)
class Layout:
    name: str
    shapes: tuple[Shape, ...]
    edges: tuple[Edge, ...]
    by_id: dict[str, Any]


def _local(element: Any) -> str:
    return str(etree.QName(element).localname)


def _bounds(element: Any) -> Box:
    return Box(*(float(element.get(k, "0")) for k in ("x", "y", "width", "height")))


def _label_bounds(di: Any) -> Box | None:
    bounds = di.find(f"{{{BPMNDI}}}BPMNLabel/{{{DC}}}Bounds")
    return None if bounds is None else _bounds(bounds)


def read_layout(data: bytes, filename: str) -> Layout:
    """The first diagram of a BPMN file: its shapes and edges with their BPMN elements."""
    root = parse_document(data, filename)
    by_id = {e.get("id"): e for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    plane = root.find(f"{{{BPMNDI}}}BPMNDiagram/{{{BPMNDI}}}BPMNPlane")
    if plane is None:
        raise DiagramError(f"{filename}: no layout (BPMN DI); open it in a modeler and save it")
    shapes: list[Shape] = []
    edges: list[Edge] = []
    for di in plane:
        element = by_id.get(di.get("bpmnElement")) if isinstance(di.tag, str) else None
        if element is None:
            continue
        if _local(di) == "BPMNShape" and di.find(f"{{{DC}}}Bounds") is not None:
            shapes.append(
                Shape(
                    id=element.get("id"),
                    kind=_local(element),
                    element=element,
                    box=_bounds(di.find(f"{{{DC}}}Bounds")),
                    label=_label_bounds(di),
                    horizontal=di.get("isHorizontal", "true") != "false",
                    expanded=di.get("isExpanded") == "true",
                    marker_visible=di.get("isMarkerVisible") == "true",
                )
            )
        elif _local(di) == "BPMNEdge":
            points = _distinct(
                [
                    (float(p.get("x", "0")), float(p.get("y", "0")))
                    for p in di.iter(f"{{{DI}}}waypoint")
                ]
            )
            if len(points) >= 2:
                edges.append(
                    Edge(element.get("id"), _local(element), element, points, _label_bounds(di))
                )
    laid_out = {s.id for s in shapes} | {e.id for e in edges}
    missing = [
        f"{_local(e)} '{e.get('id')}'"
        for e in root.iter(f"{{{BPMN}}}*")
        if _local(e) in FLOW_NODES | {"sequenceFlow"} and e.get("id") not in laid_out
    ]
    if missing:
        raise DiagramError(
            f"{filename}: the layout leaves out {', '.join(missing)}; "
            "place them in a modeler and save the file"
        )
    process = root.find(f"{{{BPMN}}}process")
    name = (process.get("name") if process is not None else None) or Path(filename).stem
    return Layout(name, tuple(shapes), tuple(edges), by_id)


# -- text --------------------------------------------------------------------------------


def text_width(text: str, size: float) -> float:
    """The width of a line in DejaVu Sans at `size` px (a wide character is one em)."""
    total = 0
    for char in text:
        code = ord(char)
        if not 32 <= code < 127:
            if unicodedata.east_asian_width(char) in ("W", "F"):
                total += 1000
                continue
            code = ord(unicodedata.normalize("NFD", char)[0])  # an accented letter: its base
        total += _WIDTHS[code - 32] if 32 <= code < 127 else 636
    return total * size / 1000


def wrap(text: str, width: float, size: float) -> list[str]:
    """`text` in lines no wider than `width`, broken between words where a word fits."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if line and text_width(candidate, size) > width:
                lines.append(line)
                candidate = word
            line = candidate
            while len(line) > 1 and text_width(line, size) > width:
                cut = _cut(line, width, size)
                lines.append(line[:cut])
                line = line[cut:]
        if line:
            lines.append(line)
    return lines


def _cut(word: str, width: float, size: float) -> int:
    """Where a word too long for a line breaks: after its last _ or - that fits, or else
    after the last character that fits."""
    fits = 1
    while fits < len(word) - 1 and text_width(word[: fits + 1], size) <= width:
        fits += 1
    joints = [n + 1 for n in range(fits) if word[n] in "_-"]
    return joints[-1] if joints else fits


# -- SVG primitives ----------------------------------------------------------------------


def _num(value: float) -> str:
    rounded = round(value, 2)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.2f}".rstrip("0")


def _add(parent: Any, tag: str, **attrs: Any) -> Any:
    """A child element; attribute names take - for _, numbers are written short."""
    element = etree.SubElement(parent, f"{{{SVG}}}{tag}")
    for key, value in attrs.items():
        if value is not None:
            name = key.rstrip("_").replace("_", "-")
            element.set(name, _num(value) if isinstance(value, float | int) else str(value))
    return element


def _d(points: Iterable[Point], close: bool = False) -> str:
    """Path data through `points`."""
    return "M " + " L ".join(f"{_num(x)},{_num(y)}" for x, y in points) + (" Z" if close else "")


def _rect(parent: Any, box: Box, width: float = 1.5, fill: str = PAPER, **more: Any) -> Any:
    return _add(
        parent,
        "rect",
        x=box.x,
        y=box.y,
        width=box.w,
        height=box.h,
        fill=fill,
        stroke=INK,
        stroke_width=width,
        **more,
    )


def _circle(
    parent: Any, cx: float, cy: float, r: float, width: float = 1.5, fill: str = PAPER, **more: Any
) -> Any:
    return _add(
        parent, "circle", cx=cx, cy=cy, r=r, fill=fill, stroke=INK, stroke_width=width, **more
    )


def _line(parent: Any, d: str, width: float = 1.5, fill: str = "none", **more: Any) -> Any:
    more.setdefault("stroke", INK)
    return _add(parent, "path", d=d, fill=fill, stroke_width=width, **more)


def _text(
    parent: Any,
    lines: Sequence[str],
    x: float,
    top: float,
    size: float,
    anchor: str = "middle",
    turn: Point | None = None,
) -> None:
    """Lines from `top` down, centred on `x` (or starting at it); turned a quarter to the
    left around `turn` for a lane's name."""
    step = size * LINE_HEIGHT
    for n, line in enumerate(lines):
        _add(
            parent,
            "text",
            x=x,
            y=top + n * step + step / 2 + size * 0.35,
            font_size=size if size != NAME_SIZE else None,
            text_anchor=anchor if anchor != "middle" else None,
            transform=f"rotate(-90 {_num(turn[0])} {_num(turn[1])})" if turn else None,
        ).text = line


def _name(element: Any) -> str:
    return (element.get("name") or "").strip()


# -- the drawing -------------------------------------------------------------------------


class Drawing:
    """One diagram as SVG: pool and lanes, then shapes, boundary events, then the flows."""

    def __init__(self, layout: Layout, states: Mapping[str, str] | None = None) -> None:
        self.layout = layout
        self.states = states
        self.extent: list[Box] = []  # everything drawn, for the picture's size

    def draw(self) -> Any:
        svg = etree.Element(f"{{{SVG}}}svg", nsmap={None: SVG})
        _add(svg, "title").text = self.layout.name
        background = _add(svg, "rect", fill=PAPER)
        body = _add(svg, "g", stroke_linejoin="round")
        for shape in sorted(self.layout.shapes, key=_layer):
            self.shape(self.group(body, shape.id, shape.kind), shape)
        for edge in self.layout.edges:
            self.edge(self.group(body, edge.id, edge.kind), edge)
        left = math.floor(min(b.x for b in self.extent) - MARGIN)
        top = math.floor(min(b.y for b in self.extent) - MARGIN)
        width = math.ceil(max(b.right for b in self.extent) + MARGIN - left)
        height = math.ceil(max(b.bottom for b in self.extent) + MARGIN - top)
        for key, value in (("width", width), ("height", height)):
            svg.set(key, str(value))
            background.set(key, str(value))
        background.set("x", str(left))
        background.set("y", str(top))
        svg.set("viewBox", f"{left} {top} {width} {height}")
        svg.set("font-family", FONT)
        svg.set("font-size", str(NAME_SIZE))
        svg.set("text-anchor", "middle")
        svg.set("fill", INK)
        return svg

    def group(self, body: Any, element_id: str, kind: str) -> Any:
        """The <g> of one element; with states, a flow node's or a sequence flow's
        state (`not-taken` when it has none) as its class and data-state."""
        state = None
        if self.states is not None and kind in FLOW_NODES | {"sequenceFlow"}:
            state = self.states.get(element_id, NOT_TAKEN)
        return _add(
            body, "g", data_element=element_id, data_type=kind, data_state=state, class_=state
        )

    def shape(self, group: Any, shape: Shape) -> None:
        self.extent.append(shape.box)
        if shape.kind in ("participant", "lane"):
            self.pool_or_lane(group, shape)
        elif shape.kind in TASKS:
            self.task(group, shape)
        elif shape.kind in EVENTS:
            self.event(group, shape)
            self.outside_label(group, shape.element, shape.box, shape.label)
        elif shape.kind in GATEWAYS:
            self.gateway(group, shape)
            self.outside_label(group, shape.element, shape.box, shape.label)
        elif shape.kind == "textAnnotation":
            box = shape.box
            bracket = [
                (box.x + 10, box.y),
                (box.x, box.y),
                (box.x, box.bottom),
                (box.x + 10, box.bottom),
            ]
            _line(group, _d(bracket))
            text = (shape.element.findtext(f"{{{BPMN}}}text") or "").strip()
            lines = wrap(text, box.w - 10, NAME_SIZE)
            _text(group, lines, box.x + 5, box.y + 5, NAME_SIZE, anchor="start")
        else:  # data objects, groups and the like: a plain box with the name
            _rect(group, shape.box)
            self.inside_label(group, _name(shape.element), shape.box)

    def pool_or_lane(self, group: Any, shape: Shape) -> None:
        """The box, and the name in the 30 px band at its start, turned like bpmn.io's
        (or in the middle of a pool whose process is not modelled)."""
        box, name = shape.box, _name(shape.element)
        _rect(group, box)
        if shape.kind == "participant" and not shape.element.get("processRef"):
            # a pool whose process is not modelled: its name in the middle
            lines = wrap(name, box.w - 2 * PADDING, NAME_SIZE)
            height = len(lines) * NAME_SIZE * LINE_HEIGHT
            _text(group, lines, box.cx, box.cy - height / 2, NAME_SIZE)
            return
        if shape.kind == "participant":
            process = self.layout.by_id.get(shape.element.get("processRef"))
            name = name or (_name(process) if process is not None else "")
            band = (
                [(box.x + 30, box.y), (box.x + 30, box.bottom)]
                if shape.horizontal
                else [(box.x, box.y + 30), (box.right, box.y + 30)]
            )
            _line(group, _d(band))
        if not name:
            return
        lines = wrap(name, box.h if shape.horizontal else box.w, NAME_SIZE)
        height = len(lines) * NAME_SIZE * LINE_HEIGHT
        if shape.horizontal:
            cx, cy = box.x + 15, box.cy
            _text(group, lines, cx, cy - height / 2, NAME_SIZE, turn=(cx, cy))
        else:
            _text(group, lines, box.cx, box.y + 15 - height / 2, NAME_SIZE)

    def task(self, group: Any, shape: Shape) -> None:
        box, kind = shape.box, shape.kind
        _rect(
            group,
            box,
            width=5 if kind == "callActivity" else 2,
            rx=10,
            ry=10,
            stroke_dasharray="5,2" if kind == "adHocSubProcess" else None,
        )
        if kind == "transaction":
            inner = Box(box.x + 3, box.y + 3, box.w - 6, box.h - 6)
            _rect(group, inner, fill="none", rx=8, ry=8)
        marker = TASK_MARKERS.get(kind)
        if marker is not None:
            where = f"translate({_num(box.x + 5)} {_num(box.y + 5)}) scale(0.85)"
            marker(_add(group, "g", transform=where))
        expanded = shape.expanded and kind in SUBPROCESSES
        if expanded:  # the name at the top; what it contains is drawn on its own
            lines = wrap(_name(shape.element), box.w - 2 * PADDING, NAME_SIZE)
            _text(group, lines, box.cx, box.y + 5, NAME_SIZE)
        else:
            self.inside_label(group, _name(shape.element), box)
        below = [_collapsed_marker] if kind in SUBPROCESSES and not expanded else []
        loop = next((c for c in shape.element.iterchildren("{*}*") if "Loop" in _local(c)), None)
        if loop is not None:
            if _local(loop) == "standardLoopCharacteristics":
                below.append(_loop_marker)
            else:
                sequential = loop.get("isSequential") == "true"
                below.append(_sequential_marker if sequential else _parallel_marker)
        left = box.cx - (len(below) * 18 - 4) / 2
        for n, draw in enumerate(below):
            draw(
                _add(
                    group,
                    "g",
                    transform=f"translate({_num(left + 18 * n)} {_num(box.bottom - 20)})",
                )
            )

    def inside_label(self, group: Any, name: str, box: Box) -> None:
        lines = wrap(name, box.w - 2 * PADDING, NAME_SIZE)
        height = len(lines) * NAME_SIZE * LINE_HEIGHT
        _text(group, lines, box.cx, box.cy - height / 2, NAME_SIZE)

    def outside_label(self, group: Any, element: Any, near: Box, label: Box | None) -> None:
        """A name at the label bounds the modeler saved or, without them, under `near`."""
        lines = wrap(_name(element), LABEL_WIDTH, LABEL_SIZE)
        if not lines:
            return
        cx, top = (label.cx, label.y) if label is not None else (near.cx, near.bottom + 5)
        _text(group, lines, cx, top, LABEL_SIZE)
        width = max(text_width(line, LABEL_SIZE) for line in lines)
        self.extent.append(Box(cx - width / 2, top, width, len(lines) * LABEL_SIZE * LINE_HEIGHT))

    def event(self, group: Any, shape: Shape) -> None:
        """Start: thin; end: thick; intermediate and boundary: double; dashed when the
        event does not interrupt."""
        box, kind, element = shape.box, shape.kind, shape.element
        r, cx, cy = min(box.w, box.h) / 2, box.cx, box.cy
        dashed = "6,3" if element.get("cancelActivity") == "false" else None
        if kind == "startEvent":
            dashed = "6,3" if element.get("isInterrupting") == "false" else None
            _circle(group, cx, cy, r, width=2, stroke_dasharray=dashed)
        elif kind == "endEvent":
            _circle(group, cx, cy, r, width=4)
        else:
            _circle(group, cx, cy, r, stroke_dasharray=dashed)
            _circle(group, cx, cy, r - 3, stroke_dasharray=dashed)
        definitions = [_local(c) for c in element.iterchildren("{*}*")]
        marker = next((EVENT_MARKERS[d] for d in definitions if d in EVENT_MARKERS), None)
        if marker is not None:
            marker(group, cx, cy, r / 18, kind in ("endEvent", "intermediateThrowEvent"))

    def gateway(self, group: Any, shape: Shape) -> None:
        """A diamond; X when exclusive (and its marker is shown), + when parallel, a
        circle when inclusive, a pentagon in a double circle when event-based."""
        box, kind = shape.box, shape.kind
        cx, cy, size = box.cx, box.cy, min(box.w, box.h)
        diamond = [(cx, box.y), (box.right, cy), (cx, box.bottom), (box.x, cy)]
        _line(group, _d(diamond, close=True), width=2, fill=PAPER)
        bold = size * 0.09
        if kind == "exclusiveGateway" and shape.marker_visible:
            d = size * 0.19
            _line(group, _d([(cx - d, cy - d), (cx + d, cy + d)]), width=bold)
            _line(group, _d([(cx - d, cy + d), (cx + d, cy - d)]), width=bold)
        elif kind in ("parallelGateway", "complexGateway"):
            d = size * 0.27
            _line(group, _d([(cx, cy - d), (cx, cy + d)]), width=bold)
            _line(group, _d([(cx - d, cy), (cx + d, cy)]), width=bold)
            if kind == "complexGateway":
                d *= 0.72
                _line(group, _d([(cx - d, cy - d), (cx + d, cy + d)]), width=bold)
                _line(group, _d([(cx - d, cy + d), (cx + d, cy - d)]), width=bold)
        elif kind == "inclusiveGateway":
            _circle(group, cx, cy, size * 0.24, width=size * 0.05, fill="none")
        elif kind == "eventBasedGateway":
            _circle(group, cx, cy, size * 0.26, width=1, fill="none")
            if shape.element.get("instantiate") != "true":
                _circle(group, cx, cy, size * 0.21, width=1, fill="none")
            pentagon = [
                (cx + size * 0.12 * math.sin(a), cy - size * 0.12 * math.cos(a))
                for a in (2 * math.pi * n / 5 for n in range(5))
            ]
            _line(group, _d(pentagon, close=True))

    def edge(self, group: Any, edge: Edge) -> None:
        points = list(edge.points)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        self.extent.append(Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
        if edge.kind == "sequenceFlow":
            self.sequence_flow(group, edge, points)
        elif edge.kind == "messageFlow":  # dashed, from a small circle to an open arrow
            _line(group, _rounded(_shorten(points)), stroke_dasharray="10,6")
            _circle(group, *points[0], 4)
            _line(group, _d(_arrowhead(points), close=True), fill=PAPER)
        else:  # associations and the like: dotted
            _line(group, _d(points), stroke_dasharray="0.5,5", stroke_linecap="round")
        mid = _midpoint(points)
        self.outside_label(group, edge.element, Box(mid[0], mid[1] - 15, 0, 0), edge.label)

    def sequence_flow(self, group: Any, edge: Edge, points: list[Point]) -> None:
        """A line with rounded bends and a filled arrowhead; a slash at the start of a
        default flow, a diamond at the start of a conditional flow out of a task."""
        source = self.layout.by_id.get(edge.element.get("sourceRef"))
        (x0, y0), (x1, y1) = points[0], points[1]
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        nx, ny = -uy, ux
        conditional = (
            edge.element.find(f"{{{BPMN}}}conditionExpression") is not None
            and source is not None
            and _local(source) in TASKS
            and length > 20
        )
        line = points
        if conditional:
            diamond = [
                (x0, y0),
                (x0 + 8 * ux + 4 * nx, y0 + 8 * uy + 4 * ny),
                (x0 + 16 * ux, y0 + 16 * uy),
                (x0 + 8 * ux - 4 * nx, y0 + 8 * uy - 4 * ny),
            ]
            _line(group, _d(diamond, close=True), fill=PAPER)
            line = [(x0 + 16 * ux, y0 + 16 * uy), *points[1:]]
        _line(group, _rounded(_shorten(line)), width=2)
        _line(group, _d(_arrowhead(points), close=True), width=1, fill=INK)
        if source is not None and source.get("default") == edge.id and length > 16:
            at = 22 if conditional else 12
            cx, cy = x0 + at * ux, y0 + at * uy
            slash = [
                (cx - 3 * ux - 6 * nx, cy - 3 * uy - 6 * ny),
                (cx + 3 * ux + 6 * nx, cy + 3 * uy + 6 * ny),
            ]
            _line(group, _d(slash), width=2)


def _layer(shape: Shape) -> int:
    """Back to front: pools, lanes, expanded sub-processes, the rest, boundary events."""
    if shape.kind in ("participant", "lane"):
        return 0 if shape.kind == "participant" else 1
    if shape.kind in SUBPROCESSES and shape.expanded:
        return 2
    return 4 if shape.kind == "boundaryEvent" else 3


# -- geometry ----------------------------------------------------------------------------


def _distinct(points: Sequence[Point]) -> tuple[Point, ...]:
    """The waypoints without repeats (a zero-length segment has no direction)."""
    kept: list[Point] = []
    for point in points:
        if not kept or math.dist(kept[-1], point) > 0.01:
            kept.append(point)
    return tuple(kept)


def _towards(origin: Point, target: Point, distance: float) -> Point:
    length = math.dist(origin, target)
    if length == 0:
        return origin
    t = distance / length
    return (origin[0] + (target[0] - origin[0]) * t, origin[1] + (target[1] - origin[1]) * t)


def _shorten(points: Sequence[Point]) -> list[Point]:
    """The line without the tip of its last segment, so that its end hides in the arrow."""
    length = math.dist(points[-2], points[-1])
    keep = max(length - ARROW[0] * 0.6, length / 2)
    return [*points[:-1], _towards(points[-2], points[-1], keep)]


def _arrowhead(points: Sequence[Point]) -> list[Point]:
    (x0, y0), (x1, y1) = points[-2], points[-1]
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    long, half = ARROW
    bx, by = x1 - ux * long, y1 - uy * long
    return [(x1, y1), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]


def _rounded(points: Sequence[Point]) -> str:
    """Path data through `points` with the bends rounded off, as bpmn.io draws them."""
    parts = [f"M {_num(points[0][0])},{_num(points[0][1])}"]
    for before, corner, after in zip(points, points[1:], points[2:], strict=False):
        radius = min(CORNER, math.dist(before, corner) / 2, math.dist(corner, after) / 2)
        (ax, ay), (bx, by) = _towards(corner, before, radius), _towards(corner, after, radius)
        parts.append(f"L {_num(ax)},{_num(ay)}")
        parts.append(f"Q {_num(corner[0])},{_num(corner[1])} {_num(bx)},{_num(by)}")
    parts.append(f"L {_num(points[-1][0])},{_num(points[-1][1])}")
    return " ".join(parts)


def _midpoint(points: Sequence[Point]) -> Point:
    """Half way along a flow: where a name without label bounds goes."""
    pairs = list(itertools.pairwise(points))
    half = sum(math.dist(a, b) for a, b in pairs) / 2
    for a, b in pairs:
        if half <= math.dist(a, b):
            return _towards(a, b, half)
        half -= math.dist(a, b)
    return points[-1]


# -- markers of tasks: drawn in a 16 px square, placed at the top left ------------------


def _user(g: Any) -> None:
    _line(g, "M 1.5,16 C 1.5,10.8 4.3,9.2 8,9.2 C 11.7,9.2 14.5,10.8 14.5,16 Z", 1, PAPER)
    _circle(g, 8, 5, 3.4, width=1)


def _service(g: Any) -> None:
    teeth = []
    for n in range(8):
        a = 2 * math.pi * n / 8
        for turn, radius in ((-0.3, 5.8), (-0.17, 8), (0.17, 8), (0.3, 5.8)):
            teeth.append((8 + radius * math.sin(a + turn), 8 - radius * math.cos(a + turn)))
    _line(g, _d(teeth, close=True), 1, PAPER)
    _circle(g, 8, 8, 2.6, width=1)


def _script(g: Any) -> None:
    scroll = "M 4,1 H 15 C 12,4 12,6.5 14,8.5 C 16,10.5 16,13 13,16 H 2 C 5,13 5,10.5 3,8.5 "
    _line(g, scroll + "C 1,6.5 1,4 4,1 Z", 1, PAPER)
    _line(g, "M 5,4.5 H 11 M 5.5,8.5 H 11.5 M 6,12.5 H 12", 1)


def _business_rule(g: Any) -> None:
    _rect(g, Box(0.5, 2, 16, 13), width=1)
    _rect(g, Box(0.5, 2, 16, 3.5), width=1, fill=INK)
    _line(g, "M 0.5,10 H 16.5 M 5.5,5.5 V 15", 1)


def _envelope(g: Any, cx: float, cy: float, scale: float, filled: bool) -> None:
    """Filled when the message is sent, white when it is received."""
    w, h = 19 * scale, 13 * scale
    x, y = cx - w / 2, cy - h / 2
    _rect(g, Box(x, y, w, h), width=1, fill=INK if filled else PAPER)
    _line(g, _d([(x, y), (cx, y + h * 0.55), (x + w, y)]), 1, stroke=PAPER if filled else INK)


def _manual(g: Any) -> None:
    hand = (
        "M 1,8 C 1,5 3,4 5,4 H 14 C 15.5,4 15.5,6 14,6 H 9 M 9,6 H 15 C 16.5,6 16.5,8.5 15,8.5"
        " H 9 M 9,8.5 H 14.5 C 16,8.5 16,11 14.5,11 H 9 M 9,11 H 13 C 14.5,11 14.5,13.5 13,13.5"
        " H 5 C 2.5,13.5 1,12 1,10 Z"
    )
    _line(g, hand, 1, PAPER)


TASK_MARKERS: dict[str, Callable[[Any], None]] = {
    "userTask": _user,
    "serviceTask": _service,
    "scriptTask": _script,
    "businessRuleTask": _business_rule,
    "receiveTask": lambda g: _envelope(g, 9.5, 7, 1, filled=False),
    "sendTask": lambda g: _envelope(g, 9.5, 7, 1, filled=True),
    "manualTask": _manual,
}


# markers at the bottom of an activity: drawn in a 14 px square


def _collapsed_marker(g: Any) -> None:
    _rect(g, Box(0, 0, 14, 14))
    _line(g, "M 7,3 V 11 M 3,7 H 11")


def _parallel_marker(g: Any) -> None:
    _line(g, "M 3,1 V 13 M 7,1 V 13 M 11,1 V 13", 2)


def _sequential_marker(g: Any) -> None:
    _line(g, "M 1,3 H 13 M 1,7 H 13 M 1,11 H 13", 2)


def _loop_marker(g: Any) -> None:
    _line(g, "M 3.5,11 A 5,5 0 1 1 10.5,11")
    _line(g, "M 3.5,11 L 0.5,9.5 M 3.5,11 L 3.5,7.5")


# -- markers of events: drawn for a 36 px event, centred, scaled by s ------------------

EventMarker = Callable[[Any, float, float, float, bool], None]


def _timer(g: Any, cx: float, cy: float, s: float, filled: bool) -> None:
    r = 10.5 * s
    _circle(g, cx, cy, r, width=2 * s)
    ticks = []
    for n in range(12):
        dx, dy = math.sin(2 * math.pi * n / 12), -math.cos(2 * math.pi * n / 12)
        ticks.append(
            _d([(cx + 0.72 * r * dx, cy + 0.72 * r * dy), (cx + 0.9 * r * dx, cy + 0.9 * r * dy)])
        )
    _line(g, " ".join(ticks), s)
    _line(g, _d([(cx + 0.45 * r, cy - 0.35 * r), (cx, cy), (cx + 0.1 * r, cy - 0.7 * r)]), 1.5 * s)


def _message(g: Any, cx: float, cy: float, s: float, filled: bool) -> None:
    _envelope(g, cx, cy, s * 1.05, filled)


def _outline(points: Sequence[Point]) -> EventMarker:
    """A marker that is a polygon: filled when the event throws, hollow when it catches."""

    def draw(g: Any, cx: float, cy: float, s: float, filled: bool) -> None:
        shape = [(cx + x * s, cy + y * s) for x, y in points]
        fill = INK if filled else "none"
        _line(g, _d(shape, close=True), 1.5 * s, fill, stroke_linejoin="miter")

    return draw


def _terminate(g: Any, cx: float, cy: float, s: float, filled: bool) -> None:
    _circle(g, cx, cy, 10 * s, width=1, fill=INK)


def _conditional(g: Any, cx: float, cy: float, s: float, filled: bool) -> None:
    _rect(g, Box(cx - 7 * s, cy - 9 * s, 14 * s, 18 * s), width=1.5 * s)
    rows = [_d([(cx - 4 * s, cy + y * s), (cx + 4 * s, cy + y * s)]) for y in (-5, -1.5, 2, 5.5)]
    _line(g, " ".join(rows), s)


EVENT_MARKERS: dict[str, EventMarker] = {
    "timerEventDefinition": _timer,
    "messageEventDefinition": _message,
    "errorEventDefinition": _outline(
        [(-7.5, 8.5), (-3, -7), (2, 1.5), (7.5, -8.5), (3, 7), (-2, -1)]
    ),
    "escalationEventDefinition": _outline([(0, -9.5), (7, 8.5), (0, 2), (-7, 8.5)]),
    "signalEventDefinition": _outline([(0, -9), (8, 6), (-8, 6)]),
    "compensateEventDefinition": _outline(
        [(-8, 0), (0, -6), (0, 0), (8, -6), (8, 6), (0, 0), (0, 6)]
    ),
    "linkEventDefinition": _outline(
        [(-8, -3), (1, -3), (1, -7.5), (8, 0), (1, 7.5), (1, 3), (-8, 3)]
    ),
    "terminateEventDefinition": _terminate,
    "conditionalEventDefinition": _conditional,
}


# -- the picture -------------------------------------------------------------------------


def svg_element(
    data: bytes | str, filename: str = "diagram.bpmn", states: Mapping[str, str] | None = None
) -> Any:
    """The first diagram of a BPMN file's contents as an SVG element (lxml), indented.

    `states` maps BPMN ids to a state (`done`, `current`, ...): each flow node and
    sequence flow drawn gets its state as class and data-state, `not-taken` when the
    mapping does not name it. Raises DiagramError when the file has no layout or its
    layout leaves out an element, and the errors of `parse_document` when the file is
    not a safe, well-formed document."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    svg = Drawing(read_layout(raw, filename), states).draw()
    etree.indent(svg, space="  ")
    return svg


def to_svg(
    data: bytes | str, filename: str = "diagram.bpmn", states: Mapping[str, str] | None = None
) -> str:
    """The first diagram of a BPMN file's contents as SVG text (no XML declaration: it
    can be written into an HTML page as it is). See `svg_element`."""
    return str(etree.tostring(svg_element(data, filename, states), encoding="unicode"))


def process_ids(data: bytes | str, filename: str = "diagram.bpmn") -> list[str]:
    """The ids of the processes a BPMN file's contents define."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    root = parse_document(raw, filename)
    return [str(p.get("id")) for p in root.iter(f"{{{BPMN}}}process") if p.get("id")]


__all__ = [
    "FLOW_NODES",
    "NOT_TAKEN",
    "DiagramError",
    "process_ids",
    "svg_element",
    "text_width",
    "to_svg",
    "wrap",
]

"""`engine.diff`: pairs of small diagrams and the changes a process owner is told about.

Each test edits one thing in a small process (with a called process and a decision
table) and checks the changes found: what, added/removed/changed, the element, before
and after, and the sentence. Layout, white space and element order are no change.
"""

from __future__ import annotations

import pytest

from engine.diff import ADDED, CHANGED, REMOVED, Change, Comparison, compare
from engine.errors import InputError, UnsafeDocumentError

MAIN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="main_definitions" targetNamespace="https://example.org/tests">
  <bpmn:escalation id="esc_boss" name="Boss" escalationCode="boss"/>
  <bpmn:process id="main" name="Main" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_clerk" name="clerk">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>tier</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>review_due</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>decided</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_boss" name="boss">
        <bpmn:flowNodeRef>escalated</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>pay</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>ship</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>done</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>refused</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Return asked for"/>
    <bpmn:businessRuleTask id="tier" name="Decide the tier">
      <bpmn:extensionElements>
        <spiffworkflow:calledDecisionId>tiers</spiffworkflow:calledDecisionId>
      </bpmn:extensionElements>
    </bpmn:businessRuleTask>
    <bpmn:userTask id="review" name="Review the return">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="decision" label="Decision" type="enum">
            <camunda:validation><camunda:constraint name="required"/></camunda:validation>
            <camunda:value id="approve" name="Approve"/>
            <camunda:value id="reject" name="Reject"/>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="review_due" name="Due in 2 days" cancelActivity="false"
        attachedToRef="review">
      <bpmn:timerEventDefinition id="review_due_timer">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P2D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:endEvent id="escalated" name="Escalated to the boss">
      <bpmn:escalationEventDefinition id="escalated_def" escalationRef="esc_boss"/>
    </bpmn:endEvent>
    <bpmn:exclusiveGateway id="decided" name="Approved?" default="no"/>
    <bpmn:serviceTask id="pay" name="Pay the refund">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="payments.refund">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="amount" type="any" value="amount"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:callActivity id="ship" name="Ship it back" calledElement="shipping"/>
    <bpmn:endEvent id="done" name="Refunded"/>
    <bpmn:endEvent id="refused" name="Refused"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="tier"/>
    <bpmn:sequenceFlow id="f2" sourceRef="tier" targetRef="review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="decided"/>
    <bpmn:sequenceFlow id="yes" name="yes" sourceRef="decided" targetRef="pay">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">decision == "approve"
        and amount &lt; 1000</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" name="no" sourceRef="decided" targetRef="refused"/>
    <bpmn:sequenceFlow id="f4" sourceRef="pay" targetRef="ship"/>
    <bpmn:sequenceFlow id="f5" sourceRef="ship" targetRef="done"/>
    <bpmn:sequenceFlow id="f6" sourceRef="review_due" targetRef="escalated"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram">
    <bpmndi:BPMNPlane id="plane" bpmnElement="main">
      <bpmndi:BPMNShape id="review_di" bpmnElement="review">
        <dc:Bounds x="100" y="80" width="100" height="80"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""

SHIPPING = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    id="shipping_definitions" targetNamespace="https://example.org/tests">
  <bpmn:process id="shipping" name="Shipping" isExecutable="true">
    <bpmn:startEvent id="ship_start"/>
    <bpmn:manualTask id="pack" name="Pack the work"/>
    <bpmn:endEvent id="ship_end"/>
    <bpmn:sequenceFlow id="s1" sourceRef="ship_start" targetRef="pack"/>
    <bpmn:sequenceFlow id="s2" sourceRef="pack" targetRef="ship_end"/>
  </bpmn:process>
</bpmn:definitions>
"""

TIERS = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="tiers_definitions"
    name="Tiers" namespace="http://example.org/tests">
  <decision id="tiers" name="Tiers">
    <decisionTable id="tiers_table" hitPolicy="UNIQUE">
      <input id="in_currency" label="Currency">
        <inputExpression id="in_currency_expr" typeRef="string">
          <text>currency</text>
        </inputExpression>
      </input>
      <input id="in_amount" label="Amount (price of the works)">
        <inputExpression id="in_amount_expr" typeRef="number">
          <text>amount</text>
        </inputExpression>
      </input>
      <output id="out_tier" label="Tier" name="tier" typeRef="string"/>
      <rule id="t_finance_cny">
        <description>CNY 10,000 and up: finance (T2).</description>
        <inputEntry id="c1"><text>"CNY"</text></inputEntry>
        <inputEntry id="a1"><text>&gt;= 10000</text></inputEntry>
        <outputEntry id="o1"><text>"T2"</text></outputEntry>
      </rule>
      <rule id="t_any">
        <inputEntry id="c2"><text>-</text></inputEntry>
        <inputEntry id="a2"><text>-</text></inputEntry>
        <outputEntry id="o2"><text>"T1"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
"""


def files(main: str = MAIN, shipping: str = SHIPPING, tiers: str = TIERS) -> dict[str, bytes]:
    return {
        "main.bpmn": main.encode(),
        "shipping.bpmn": shipping.encode(),
        "tiers.dmn": tiers.encode(),
    }


def edited(old: str, new: str, *, in_: str = MAIN) -> str:
    assert in_.count(old) == 1, f"{old!r} is not once in the diagram"
    return in_.replace(old, new)


def only(changes: list[Change]) -> Change:
    assert len(changes) == 1, "\n".join(c.line for c in changes)
    return changes[0]


def test_the_same_files_are_no_change() -> None:
    assert compare("main", files(), files()) == []


def test_layout_white_space_and_order_are_no_change() -> None:
    main = edited('<dc:Bounds x="100" y="80"', '<dc:Bounds x="400" y="300"')
    main = edited('name="Review the return"', 'name="Review  the\n  return"', in_=main)
    main = edited('decision == "approve"\n', 'decision   ==  "approve"  ', in_=main)
    flows = '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="tier"/>\n'
    main = edited(flows, "", in_=main)
    main = edited("  </bpmn:process>", flows + "  </bpmn:process>", in_=main)
    assert compare("main", files(), files(main)) == []


def test_a_renamed_step() -> None:
    main = edited('name="Review the return"', 'name="Check the return"')
    change = only(compare("main", files(), files(main)))
    assert (change.what, change.change, change.id, change.where) == (
        "name",
        CHANGED,
        "review",
        "main",
    )
    assert (change.before, change.after) == ("Review the return", "Check the return")
    assert change.line == "step [review]: renamed 'Review the return' → 'Check the return'"


def test_a_changed_condition_quotes_both_expressions() -> None:
    main = edited("amount &lt; 1000", "amount &lt; 5000")
    change = only(compare("main", files(), files(main)))
    assert (change.what, change.change, change.id) == ("condition", CHANGED, "yes")
    assert change.before == 'decision == "approve" and amount < 1000'
    assert change.after == 'decision == "approve" and amount < 5000'
    assert change.line == (
        "flow 'yes' [yes] from 'Approved?': condition "
        '`decision == "approve" and amount < 1000` → `decision == "approve" and amount < 5000`'
    )


def test_a_step_moved_to_another_lane_is_a_new_role() -> None:
    main = edited("        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>\n", "")
    main = edited(
        "<bpmn:flowNodeRef>pay</bpmn:flowNodeRef>",
        "<bpmn:flowNodeRef>pay</bpmn:flowNodeRef><bpmn:flowNodeRef>review</bpmn:flowNodeRef>",
        in_=main,
    )
    change = only(compare("main", files(), files(main)))
    assert (change.what, change.id, change.before, change.after) == (
        "role",
        "review",
        "clerk",
        "boss",
    )
    assert change.line == "step 'Review the return' [review]: role clerk → boss"


def test_a_boundary_timer_is_the_deadline_of_its_task() -> None:
    main = edited(">P2D<", ">P3D<")
    change = only(compare("main", files(), files(main)))
    assert (change.what, change.change, change.id) == ("deadline", CHANGED, "review")
    assert (change.before, change.after) == ("P2D", "P3D")
    assert change.line == "step 'Review the return' [review]: deadline P2D → P3D"


def test_a_timer_quoted_the_python_way_is_the_same_timer() -> None:
    assert compare("main", files(), files(edited(">P2D<", ">'P2D'<"))) == []


def test_a_form_field_added() -> None:
    field = '<camunda:formField id="note" label="Note" type="string"/>\n'
    main = edited("        </camunda:formData>", field + "        </camunda:formData>")
    change = only(compare("main", files(), files(main)))
    assert (change.what, change.change, change.id) == ("form field", ADDED, "review")
    assert change.after == {"label": "Note", "type": "string", "required": "no"}
    assert change.line == "+ step 'Review the return' [review]: form field 'Note' [note] (string)"


def test_a_form_field_changed_says_each_attribute() -> None:
    main = edited('<camunda:value id="reject" name="Reject"/>', "")
    change = only(compare("main", files(), files(main)))
    assert change.line == (
        "step 'Review the return' [review]: form field 'Decision' [decision]: "
        "choices approve, reject → approve"
    )


def test_steps_added_and_removed_with_their_flows() -> None:
    main = edited(
        '<bpmn:endEvent id="refused" name="Refused"/>',
        '<bpmn:userTask id="call" name="Call the customer"/>',
    )
    main = edited("<bpmn:flowNodeRef>refused<", "<bpmn:flowNodeRef>call<", in_=main)
    main = edited('targetRef="refused"', 'targetRef="call"', in_=main)
    lines = [c.line for c in compare("main", files(), files(main))]
    assert lines == [
        "+ step 'Call the customer' [call] (boss): user task",
        "- step 'Refused' [refused] (boss): end event",
        "flow 'no' [no]: now 'Approved?' → 'Call the customer', was 'Approved?' → 'Refused'",
    ]


def test_an_added_flow_and_a_removed_condition() -> None:
    main = edited(
        '<bpmn:sequenceFlow id="f6"',
        '<bpmn:sequenceFlow id="f7" sourceRef="pay" targetRef="done"/>\n'
        '    <bpmn:sequenceFlow id="f6"',
    )
    main = edited(
        '      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
        'decision == "approve"\n        and amount &lt; 1000</bpmn:conditionExpression>\n',
        "",
        in_=main,
    )
    changes = compare("main", files(), files(main))
    assert [(c.what, c.change, c.id) for c in changes] == [
        ("condition", REMOVED, "yes"),
        ("flow", ADDED, "f7"),
    ]
    assert changes[1].line == "+ flow [f7]: 'Pay the refund' → 'Refunded'"
    assert changes[1].after == "pay → done"


def test_an_operator_and_a_parameter_changed() -> None:
    main = edited('id="payments.refund"', 'id="payments.refund_later"')
    main = edited('value="amount"', 'value="amount * 2"', in_=main)
    lines = [c.line for c in compare("main", files(), files(main))]
    assert lines == [
        "step 'Pay the refund' [pay]: operator payments.refund → payments.refund_later",
        'step \'Pay the refund\' [pay]: parameter amount "amount" → "amount * 2"',
    ]


def test_a_changed_kind_and_escalation() -> None:
    main = edited(
        '<bpmn:manualTask id="pack" name="Pack the work"/>',
        '<bpmn:userTask id="pack" name="Pack the work"/>',
        in_=SHIPPING,
    )
    change = only(compare("main", files(), files(shipping=main)))
    assert change.where == "shipping"
    assert (
        change.line == "process shipping, step 'Pack the work' [pack]: kind manual task → user task"
    )


def test_a_decision_row_changed_names_its_column() -> None:
    tiers = edited("&gt;= 10000", "&gt;= 1000", in_=TIERS)
    change = only(compare("main", files(), files(tiers=tiers)))
    assert (change.what, change.change, change.id, change.where) == (
        "decision row",
        CHANGED,
        "t_finance_cny",
        "tiers",
    )
    assert (change.before, change.after) == ({"Amount": ">= 10000"}, {"Amount": ">= 1000"})
    assert change.line == 'decision tiers, row t_finance_cny (#1): Amount ">= 10000" → ">= 1000"'


def test_decision_rows_added_removed_moved_and_the_hit_policy() -> None:
    tiers = edited('hitPolicy="UNIQUE"', 'hitPolicy="FIRST"', in_=TIERS)
    row = """      <rule id="t_eur">
        <inputEntry id="c3"><text>"EUR"</text></inputEntry>
        <inputEntry id="a3"><text>-</text></inputEntry>
        <outputEntry id="o3"><text>"T3"</text></outputEntry>
      </rule>
"""
    tiers = edited(
        '      <rule id="t_finance_cny">', row + '      <rule id="t_finance_cny">', in_=tiers
    )
    changes = compare("main", files(), files(tiers=tiers))
    assert [c.line for c in changes] == [
        "decision tiers: hit policy UNIQUE → FIRST",
        '+ decision tiers, row t_eur (#1): when Currency "EUR", Amount "-" then Tier "T3"',
    ]
    assert changes[1].after == {"Currency": '"EUR"', "Amount": "-", "Tier": '"T3"'}
    first, second = TIERS.index('<rule id="t_finance_cny">'), TIERS.index('<rule id="t_any">')
    end = TIERS.index("    </decisionTable>")
    swapped = TIERS[:first] + TIERS[second:end] + TIERS[first:second] + TIERS[end:]
    moved = compare("main", files(), files(tiers=swapped))
    assert [c.what for c in moved] == ["row order"]
    assert moved[0].line == "decision tiers, row t_any (#1): moved from #2 to #1"


def test_decision_columns_added() -> None:
    column = '<output id="out_note" label="Note" name="note" typeRef="string"/>\n'
    tiers = edited(
        '      <rule id="t_finance_cny">', column + '      <rule id="t_finance_cny">', in_=TIERS
    )
    change = only(compare("main", files(), files(tiers=tiers)))
    assert (change.what, change.change, change.id) == ("decision output", ADDED, "out_note")
    assert change.line == "+ decision tiers: output 'Note (note)' [out_note]"


def test_a_decision_no_longer_used_and_a_called_process_added() -> None:
    main = edited(
        "<spiffworkflow:calledDecisionId>tiers<", "<spiffworkflow:calledDecisionId>other<"
    )
    main = edited('calledElement="shipping"', 'calledElement="courier"', in_=main)
    courier = SHIPPING.replace('id="shipping" name="Shipping"', 'id="courier" name="Courier"')
    after = {**files(main), "courier.bpmn": courier.encode()}
    changes = compare("main", files(), after)
    assert [c.line for c in changes] == [
        "step 'Decide the tier' [tier]: decision tiers → other",
        "step 'Ship it back' [ship]: calls shipping → courier",
        "+ process 'Courier' [courier] (now called)",
        "- process 'Shipping' [shipping] (no longer called)",
        "- decision 'Tiers' [tiers] (2 rows)",
    ]


def test_a_process_in_none_of_the_files_is_an_input_error() -> None:
    with pytest.raises(InputError, match="process 'nowhere' is in none of the files"):
        compare("nowhere", files(), files())


def test_files_are_read_by_the_hardened_parser() -> None:
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "a">]>\n<x>&a;</x>'
    with pytest.raises(UnsafeDocumentError):
        compare("main", files(), {**files(), "bomb.bpmn": bomb.encode()})


def test_a_comparison_as_json() -> None:
    changes = compare("main", files(), files(edited(">P2D<", ">P3D<")))
    assert Comparison("main", "v1", "v2", changes).to_dict() == {
        "process": "main",
        "from": "v1",
        "to": "v2",
        "changes": [
            {
                "what": "deadline",
                "change": "changed",
                "id": "review",
                "where": "main",
                "before": "P2D",
                "after": "P3D",
                "text": "step 'Review the return' [review]: deadline P2D → P3D",
            }
        ],
    }


def test_a_called_process_in_none_of_the_files_is_passed_over() -> None:
    after = files(edited(">P2D<", ">P3D<"))
    del after["shipping.bpmn"]  # still called, only not among the files compared
    assert [c.what for c in compare("main", files(), after)] == ["deadline"]

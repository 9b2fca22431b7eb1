"""The operating manual in docs/manual/ is generated from the diagrams (`artreturns docs`,
run by `make docs`): a page per process with its steps, roles, deadlines and escalations,
its decision tables row by row and its diagram. These tests fail when the committed
manual is stale, and check that the pages say what the diagrams say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from cli import cli
from engine.diagram import process_ids
from engine.manual import manual_from_files, render_manual

ROOT = Path(__file__).resolve().parents[2]
MANUAL = ROOT / "docs" / "manual"
PROCESSES = ROOT / "processes"
STALE = "docs/manual is stale: run `make docs` (artreturns docs) and commit the result"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """The manual as `make docs` makes it: from processes/, run in the repository."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        return render_manual(manual_from_files(["processes"]))


def test_the_committed_manual_is_up_to_date(pages: dict[str, str]) -> None:
    committed = {p.name for p in MANUAL.iterdir() if p.is_file()}
    assert committed == set(pages), STALE
    for name, text in pages.items():
        assert (MANUAL / name).read_text(encoding="utf-8") == text, f"{name}: {STALE}"


def test_every_process_has_a_page_with_its_diagram(pages: dict[str, str]) -> None:
    expected = {pid for f in PROCESSES.glob("*.bpmn") for pid in process_ids(f.read_bytes())}
    assert expected == {name[:-3] for name in pages if name.endswith(".md")} - {"index"}
    for process_id in expected:
        assert f"]({process_id}.md)" in pages["index.md"]
        assert f"[![{process_id}]({process_id}.svg)]" in pages[f"{process_id}.md"]
        svg = etree.fromstring(pages[f"{process_id}.svg"].encode("utf-8"))
        assert svg.tag == "{http://www.w3.org/2000/svg}svg"
        assert "Generated from the diagrams in `processes/`" in pages[f"{process_id}.md"]


def test_decision_tables_are_rendered_row_by_row(pages: dict[str, str]) -> None:
    page = pages["return_request.md"]
    assert "## Approval tiers" in page
    header = next(line for line in page.splitlines() if line.startswith("| rule | Currency"))
    assert header.startswith("| rule | Currency | Amount (price of the returned works) |")
    assert "→ Finance confirms the amount" in header
    assert header.endswith("note |")
    row = next(line for line in page.splitlines() if line.startswith("| t_finance_cny |"))
    assert row.startswith('| t_finance_cny | "CNY" | >= 10000 | - | - | True | False | False |')
    assert "CNY 10,000 and up (below 100,000)" in row
    dmn = (PROCESSES / "approval_tiers.dmn").read_text(encoding="utf-8")
    rules = re.findall(r'<rule id="([^"]+)"', dmn)
    table = page.split("## Approval tiers", 1)[1]
    assert [r for r in rules if f"\n| {r} |" in table] == rules


def test_steps_name_their_role_deadline_and_escalation(pages: dict[str, str]) -> None:
    page = pages["approval.md"]
    assert (
        "| Approve the return | person | customer_service | 2 days | escalated to "
        "customer_service_supervisor; the task stays open |"
    ) in page
    assert (
        "| Appraise the work | person | expert | 5 days | escalated to expert_supervisor; "
        "the task stays open |"
    ) in page
    assert '- **Deadline:** 3 days (`P3D`, "Due in 3 days")' in page
    assert "- **Records:** " in page
    assert "(`decision`, required)" in page
    shipping = pages["return_shipping.md"]
    # A reminder, not an escalation: what the timer leads to.
    assert (
        "| Work shipped | waits for a message | customer_service | 5 days, 14 days | after "
        "5 days: Remind the customer to ship; the task stays open; after 14 days: the task "
        "is left: Tell the customer the request lapsed |"
    ) in shipping
    steps = [line.split(" | ")[1] for line in page.splitlines() if re.match(r"\| \d+ \|", line)]
    assert steps[0] == "Prepare the approval"
    assert steps.index("Approve the return") < steps.index("Confirm the refund amount")
    assert "- approve → Finance to confirm the amount?" in page


def test_docs_writes_checks_and_removes_stale_pages(tmp_path: Path) -> None:
    out = tmp_path / "manual"
    out.mkdir()
    (out / "gone.md").write_text("an old page\n", encoding="utf-8")
    runner = CliRunner()
    db = tmp_path / "never.db"
    base = ["--db", str(db), "docs", "--out", str(out), str(PROCESSES)]
    result = runner.invoke(cli, base)
    assert result.exit_code == 0, result.output
    assert f"removed {out / 'gone.md'}" in result.output
    assert (out / "refund.md").is_file()
    assert not (out / "gone.md").exists()
    assert runner.invoke(cli, [*base, "--check"]).exit_code == 0
    (out / "refund.md").write_text("edited by hand\n", encoding="utf-8")
    stale = runner.invoke(cli, [*base, "--check"])
    assert stale.exit_code == 2
    assert "not up to date: refund.md" in stale.output
    assert not db.exists()


def test_docs_from_the_deployed_versions(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "prod.db"
    base = ["--db", str(db), "--now", "2026-11-05T09:00:00Z"]
    assert runner.invoke(cli, [*base, "init"]).exit_code == 0
    assert runner.invoke(cli, [*base, "deploy", str(PROCESSES)]).exit_code == 0
    out = tmp_path / "deployed"
    result = runner.invoke(cli, [*base, "docs", "--deployed", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "return_request.md").read_text(encoding="utf-8")
    assert "Generated from the versions deployed to " in page
    assert "Process `return_request`, version 1," in page
    assert "| t_finance_cny |" in page
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "| `return_request` v1 |" in index
    assert "| `finance` | Finance |" in index

"""`artreturns notices list|show|send` through click's CliRunner, against a real SMTP
server (aiosmtpd on a local port) and the outbox folder."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from support import T0

import cli as cli_module
from engine import Database
from handlers.store.outbox import Outbox

RMA = "RMA-2026-000001"
OTHER = "RMA-2026-000002"
SENDER = "returns@lumen-gallery.example"
ENV_VARS = (
    "ARTRETURNS_DB",
    "ARTRETURNS_NOW",
    "ARTRETURNS_USER",
    "ARTRETURNS_DATA",
    "ARTRETURNS_SMTP",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
)
LATER = "2026-11-02T09:30:00Z"
# Full-width brackets, as the zh-Hant template writes them.
ZH_SUBJECT = "我們已收到您的換貨申請\uff08RMA-2026-000002\uff09"


def context(rma: str) -> dict[str, Any]:
    return {
        "customer": {"name": "Ann Lee"},
        "rma": rma,
        "order_number": "WS-2026-88412",
        "artwork": {"title": "Twin Swallows", "artist": "吳冠中 Wu Guanzhong"},
        "house": {"name": "Lumen Gallery 光影畫廊", "email": SENDER, "phone": "+86 21 5555 0123"},
        "type": "exchange",
        "reason": "not_as_described",
    }


@dataclass
class Mailbox:
    received: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.original_content, policy=default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 2.0.0 queued"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    mailbox: Mailbox
    url: str


@pytest.fixture
def server() -> Iterator[Server]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield Server(mailbox, f"smtp://127.0.0.1:{controller.port}?from={SENDER}")
    controller.stop()


class Cli:
    """Runs `artreturns` in-process on one database at a fixed time, with a given env."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {}

    def __call__(self, *args: str, code: int = 0, now: str = T0.isoformat()) -> Result:
        result = self.runner.invoke(
            cli_module.cli,
            ["--db", self.db, "--now", now, "--as", "tester", *args],
            env=self.env,
            prog_name="artreturns",
            catch_exceptions=False,
        )
        assert result.exit_code == code, (
            f"artreturns {' '.join(args)}: exit {result.exit_code}, expected {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self(*args, "--json", **kwargs).stdout)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
def run(db_file: Path, tmp_path: Path) -> Cli:
    """An initialised database, its files in tmp_path/data, and three pending notices
    (two for RMA, one in Traditional Chinese for OTHER), as a process stores them with
    SMTP on."""
    cli = Cli(f"sqlite:///{db_file}")
    cli.env["ARTRETURNS_DATA"] = str(tmp_path / "data")
    cli("init")
    database = Database(f"sqlite:///{db_file}")
    try:
        with database.connect() as conn:
            outbox = Outbox(conn, T0, None, smtp=True)
            for key, rma, notice, locale, to in [
                ("i-1:t-1", RMA, "received", "en", "ann@example.com"),
                ("i-2:t-1", OTHER, "received", "zh-Hant", "chen@example.com"),
                ("i-1:t-2", RMA, "lapsed", "en", "ann@example.com"),
            ]:
                outbox.send(
                    key=key,
                    rma=rma,
                    notice=notice,
                    locale=locale,
                    recipient=to,
                    context=context(rma),
                )
    finally:
        database.dispose()
    return cli


def test_list_shows_every_notice_with_its_delivery(run: Cli) -> None:
    out = run("notices", "list").stdout
    lines = [line for line in out.splitlines() if RMA in line or OTHER in line]
    assert len(lines) == 3
    assert "received" in lines[0]
    assert "ann@example.com" in lines[0]
    assert "We have received your exchange request RMA-2026-000001" in lines[0]
    assert "2026-11-02 09:00" in lines[0]
    assert "我們已收到您的換貨申請" in lines[1]
    assert "zh-Hant" in lines[1]
    assert all(line.rstrip(" │").endswith("pending") for line in lines)
    for column in ("id", "time", "rma", "notice", "locale", "to", "subject", "delivery"):
        assert f" {column} " in out


def test_list_of_one_rma_and_as_json(run: Cli) -> None:
    found = run.json("notices", "list", RMA)
    assert [(n["id"], n["rma"], n["notice"]) for n in found] == [
        (1, RMA, "received"),
        (3, RMA, "lapsed"),
    ]
    first = found[0]
    assert first["status"] == "pending"
    assert (first["attempts"], first["delivered_at"], first["last_error"]) == (0, None, None)
    assert first["created_at"] == "2026-11-02T09:00:00+00:00"
    assert first["recipient"] == "ann@example.com"
    assert "body" not in first  # `show` prints the body
    assert run("notices", "list", "RMA-1999-000009").stdout == "No notices for RMA-1999-000009.\n"


def test_show_prints_one_notice_whole(run: Cli) -> None:
    out = run("notices", "show", "2").stdout
    assert out.startswith(f"Notice #2: received (zh-Hant) for {OTHER}\n")
    assert "  to:         chen@example.com\n" in out
    assert "  delivery:   pending\n" in out
    assert f"\nSubject: {ZH_SUBJECT}\n" in out
    assert "Ann Lee 您好" in out
    assert "退換貨單號\uff1aRMA-2026-000002" in out
    data = run.json("notices", "show", "2")
    assert data["subject"] == ZH_SUBJECT
    assert data["body"].rstrip("\n") in out


def test_show_of_an_unknown_notice(run: Cli) -> None:
    missing = run("notices", "show", "99", code=1)
    assert missing.stderr == (
        "Error: no notice #99\nHint: List the notices with `artreturns notices list`.\n"
    )
    assert "is not a valid integer" in run("notices", "show", "two", code=2).stderr


def test_send_mails_the_pending_notices_once(run: Cli, server: Server) -> None:
    run.env["ARTRETURNS_SMTP"] = server.url
    out = run("notices", "send", now=LATER).stdout
    assert out.splitlines() == [
        f"#1 {RMA} received to ann@example.com: delivered",
        f"#2 {OTHER} received to chen@example.com: delivered",
        f"#3 {RMA} lapsed to ann@example.com: delivered",
        f"Delivered 3 notice(s) through {server.url.split('?')[0]}; 0 pending.",
    ]
    subjects = [m["Subject"] for m in server.mailbox.received]
    assert subjects == [
        "We have received your exchange request RMA-2026-000001",
        ZH_SUBJECT,
        run.json("notices", "show", "3")["subject"],
    ]
    assert [m["To"] for m in server.mailbox.received] == [
        "ann@example.com",
        "chen@example.com",
        "ann@example.com",
    ]
    listed = run("notices", "list").stdout
    assert listed.count("delivered 2026-11-02 09:30") == 3
    assert run("notices", "list", "--pending").stdout == "No pending notices.\n"
    assert run("notices", "send").stdout == "No notices pending.\n"
    assert len(server.mailbox.received) == 3  # nothing twice
    assert run.json("notices", "show", "1")["delivered_at"] == "2026-11-02T09:30:00+00:00"


def test_send_with_a_limit_and_as_json(run: Cli, server: Server) -> None:
    run.env["ARTRETURNS_SMTP"] = server.url
    report = run.json("notices", "send", "--limit", "2")
    assert report["delivered"] == 2
    assert (report["failed"], report["pending"], report["stopped"]) == (0, 1, None)
    assert report["transport"] == server.url.split("?")[0]
    assert [(a["id"], a["delivered"], a["attempts"]) for a in report["attempts"]] == [
        (1, True, 1),
        (2, True, 1),
    ]
    assert [n["id"] for n in run.json("notices", "list", "--pending")] == [3]
    assert "Invalid value for '--limit'" in run("notices", "send", "--limit", "0", code=2).stderr


def test_a_refused_recipient_is_a_warning_and_stays_pending(run: Cli, server: Server) -> None:
    run.env["ARTRETURNS_SMTP"] = server.url
    server.mailbox.refuse = {"chen@example.com"}
    result = run("notices", "send")
    assert "#2 RMA-2026-000002 received to chen@example.com" not in result.stdout
    assert result.stdout.endswith("; 1 pending.\n")
    assert (
        f"Warning: #2 {OTHER} received to chen@example.com: attempt 1 failed: the server "
        "refused the recipient chen@example.com: 550 5.1.1 <chen@example.com>: mailbox "
        "unavailable\n"
    ) in result.stderr
    assert "Hint: failed notices stay pending" in result.stderr
    assert "pending, 1 attempt(s)" in run("notices", "list", "--pending").stdout
    shown = run("notices", "show", "2").stdout
    assert "  last error: the server refused the recipient chen@example.com: 550" in shown

    server.mailbox.refuse = set()
    again = run("notices", "send", now=LATER)
    assert again.stdout.splitlines()[0] == f"#2 {OTHER} received to chen@example.com: delivered"
    assert "delivered 2026-11-02 09:30 (attempt 2)" in run("notices", "show", "2").stdout


def test_a_server_that_is_down_fails_the_command_and_keeps_the_notices(run: Cli) -> None:
    port = free_port()
    run.env["ARTRETURNS_SMTP"] = f"smtp://127.0.0.1:{port}?from={SENDER}"
    result = run("notices", "send", "--json", code=1)
    report = json.loads(result.stdout)  # the report is still whole JSON on stdout
    assert report["pending"] == 3
    assert report["stopped"].startswith(f"cannot reach the mail server 127.0.0.1:{port}")
    assert result.stderr.startswith(f"Error: cannot reach the mail server 127.0.0.1:{port}")
    assert "Hint: The notices stay pending. Check ARTRETURNS_SMTP" in result.stderr
    text_run = run("notices", "send", code=1)
    assert text_run.stdout == f"Delivered 0 notice(s) through smtp://127.0.0.1:{port}; 3 pending.\n"
    attempts = [n["attempts"] for n in run.json("notices", "list")]
    assert attempts == [2, 0, 0]


def test_a_malformed_setting_is_an_error_with_a_hint(run: Cli) -> None:
    run.env["ARTRETURNS_SMTP"] = "smtp://mail.example.com?form=returns@example.com"
    result = run("notices", "send", code=1)
    assert result.stderr == (
        "Error: ARTRETURNS_SMTP: unknown parameter 'form'\n"
        "Hint: The parameters are: from, starttls, timeout.\n"
    )
    assert all(n["attempts"] == 0 for n in run.json("notices", "list"))


def test_without_smtp_send_writes_the_pending_notices_to_the_folder(
    run: Cli, tmp_path: Path
) -> None:
    out = run("notices", "send").stdout
    folder = tmp_path / "data" / "outbox"
    first = folder / RMA / "001-received.en.txt"
    assert out.splitlines()[0] == f"#1 {RMA} received to ann@example.com: delivered ({first})"
    assert (
        out.splitlines()[-1]
        == f"Delivered 3 notice(s) through the outbox folder {folder}; 0 pending."
    )
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.txt")) == [
        f"{RMA}/001-received.en.txt",
        f"{RMA}/002-lapsed.en.txt",
        f"{OTHER}/001-received.zh-Hant.txt",
    ]
    assert f"  file:       {first}" in run("notices", "show", "1").stdout


def test_the_group_lists_its_commands_and_documents_the_setting(run: Cli) -> None:
    out = run("notices", "--help").stdout
    for name in ("list", "send", "show"):
        assert f"  {name} " in out
    for part in ("ARTRETURNS_SMTP=smtp://", "smtps://", "starttls=", "from=", "timeout="):
        assert part in out

"""Delivering the outbox by SMTP to a real server (aiosmtpd on a local port), and to the
outbox folder: what the server receives, how notices are marked, failures, retries, and
senders that run at the same time. SQLite and PostgreSQL unless said otherwise."""

from __future__ import annotations

import email
import hashlib
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from support import T0

from engine import ConfigurationError, Database, FixedClock, TaskContext
from handlers import notify
from handlers.common import HOUSE
from handlers.mail import (
    LEASE,
    FolderTransport,
    Notice,
    SmtpTransport,
    Transport,
    message_id,
    parse_smtp_url,
    send_pending,
)
from handlers.store import Folders, Services
from handlers.store.outbox import SMTP_ENV, Outbox
from handlers.store.tables import outbox

RMA = "RMA-2026-000001"
SENDER = "returns@lumen-gallery.example"
CONTEXT: dict[str, Any] = {
    "customer": {"name": "陳美玲"},
    "rma": RMA,
    "order_number": "WS-2026-88412",
    "artwork": {"title": "雙燕", "artist": "吳冠中 Wu Guanzhong"},
    "house": {
        "name": "Lumen Gallery 光影畫廊",
        "email": SENDER,
        "phone": "+86 21 5555 0123",
    },
    "type": "return",
    "reason": "transit_damage",
}


# -- a real SMTP server -------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """What the test server was sent; set `refuse` to refuse some recipients."""

    received: list[Received] = field(default_factory=list)
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
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 queued"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    mailbox: Mailbox
    port: int

    def url(self, extra: str = "") -> str:
        return f"smtp://127.0.0.1:{self.port}?from={SENDER}{extra}"

    def transport(self, extra: str = "") -> SmtpTransport:
        return SmtpTransport(parse_smtp_url(self.url(extra)))


def start_server(mailbox: Mailbox, port: int | None = None, **options: Any) -> Controller:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port or free_port(), **options)
    controller.start()
    return controller


@pytest.fixture
def server() -> Iterator[Server]:
    mailbox = Mailbox()
    controller = start_server(mailbox)
    yield Server(mailbox, controller.port)
    controller.stop()


# -- the database -------------------------------------------------------------------


@pytest.fixture
def db(db_url: str | URL) -> Iterator[Database]:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


def store(
    db: Database, key: str, recipient: str = "chen@example.com", locale: str = "zh-TW"
) -> int:
    """Store a pending `received` notice, as a process does with SMTP on."""
    with db.connect() as conn:
        Outbox(conn, T0, None, smtp=True).send(
            key=key, rma=RMA, notice="received", locale=locale, recipient=recipient, context=CONTEXT
        )
        found = conn.execute(select(outbox.c.id).where(outbox.c.idempotency_key == key))
        return int(found.scalar_one())


def all_notices(db: Database) -> list[Notice]:
    with db.connect() as conn:
        return Outbox(conn, T0, None).notices()


def row(db: Database, notice_id: int) -> Notice:
    with db.connect() as conn:
        found = Outbox(conn, T0, None).get(notice_id)
    assert found is not None
    return found


# -- delivery by SMTP ---------------------------------------------------------------


def test_a_notice_is_mailed_in_utf8_under_a_message_id_from_its_key(
    db: Database, server: Server, clock: FixedClock
) -> None:
    first = store(db, "instance-1:task-1")
    notice = row(db, first)
    assert notice.subject.startswith("我們已收到您的退貨申請")

    clock.set(T0 + timedelta(minutes=5))
    run = send_pending(db, server.transport(), clock)

    assert [(a.notice.id, a.delivered) for a in run.attempts] == [(first, True)]
    assert (run.stopped, run.pending, run.transport) == (None, 0, f"smtp://127.0.0.1:{server.port}")
    [mail] = server.mailbox.received
    assert mail.sender == SENDER
    assert mail.recipients == ["chen@example.com"]
    message = mail.message
    assert message["To"] == "chen@example.com"
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["From"].addresses[0].display_name == HOUSE["name"]
    assert message["Subject"] == notice.subject  # RFC 2047 on the wire, decoded here
    assert message.get_content().replace("\r\n", "\n") == notice.body
    assert "吳冠中 Wu Guanzhong《雙燕》" in message.get_content()
    assert message.get_content_charset() == "utf-8"
    digest = hashlib.sha256(b"instance-1:task-1").hexdigest()[:20]
    assert message["Message-ID"] == f"<{RMA}.{digest}@lumen-gallery.example>"
    assert parsedate_to_datetime(message["Date"]) == T0  # dated when it was written
    assert message["Content-Language"] == "zh-Hant"
    assert message["Auto-Submitted"] == "auto-generated"
    delivered = row(db, first)
    assert delivered.delivered_at == T0 + timedelta(minutes=5)
    assert (delivered.attempts, delivered.last_error, delivered.claimed_until) == (1, None, None)


def test_the_same_key_gives_the_same_message_id_and_another_key_another(db: Database) -> None:
    notices = [row(db, store(db, key)) for key in ("a:1", "a:2")]
    ids = {message_id(n, "x.example") for n in notices}
    assert len(ids) == 2
    assert message_id(notices[0], "x.example") == message_id(row(db, notices[0].id), "x.example")


def test_running_twice_delivers_nothing_twice(
    db: Database, server: Server, clock: FixedClock
) -> None:
    for n in range(3):
        store(db, f"k:{n}", recipient=f"c{n}@example.com")
    first = send_pending(db, server.transport(), clock)
    second = send_pending(db, server.transport(), clock)
    assert [a.delivered for a in first.attempts] == [True, True, True]
    assert (second.attempts, second.pending) == ([], 0)
    assert [m.recipients for m in server.mailbox.received] == [
        ["c0@example.com"],
        ["c1@example.com"],
        ["c2@example.com"],
    ]  # oldest first, each once


def test_limit_delivers_the_oldest_first(db: Database, server: Server, clock: FixedClock) -> None:
    ids = [store(db, f"k:{n}", recipient=f"c{n}@example.com") for n in range(3)]
    seen: list[tuple[int, int]] = []
    run = send_pending(
        db, server.transport(), clock, limit=2, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 2), (2, 2)]  # the progress of the run, out of what it may send
    assert [a.notice.id for a in run.attempts] == ids[:2]
    assert run.pending == 1
    assert row(db, ids[2]).delivered_at is None


def test_a_refused_recipient_stays_pending_with_its_error_and_goes_on_the_next_run(
    db: Database, server: Server, clock: FixedClock
) -> None:
    ids = [store(db, f"k:{n}", recipient=f"c{n}@example.com") for n in range(3)]
    server.mailbox.refuse = {"c1@example.com"}

    run = send_pending(db, server.transport(), clock)

    assert [(a.notice.id, a.delivered) for a in run.attempts] == [
        (ids[0], True),
        (ids[1], False),
        (ids[2], True),
    ]  # one refusal does not stop the run
    assert run.stopped is None
    assert run.pending == 1
    refused = row(db, ids[1])
    assert refused.delivered_at is None
    assert refused.attempts == 1
    assert refused.last_error is not None
    assert "refused the recipient c1@example.com: 550 5.1.1" in refused.last_error
    assert len(server.mailbox.received) == 2

    server.mailbox.refuse = set()
    clock.set(T0 + timedelta(hours=1))
    again = send_pending(db, server.transport(), clock)
    assert [(a.notice.id, a.delivered) for a in again.attempts] == [(ids[1], True)]
    done = row(db, ids[1])
    assert (done.attempts, done.delivered_at) == (2, T0 + timedelta(hours=1))
    assert [m.recipients for m in server.mailbox.received][-1] == ["c1@example.com"]


def test_a_server_that_is_down_loses_nothing_and_the_next_run_delivers(
    db: Database, clock: FixedClock
) -> None:
    ids = [store(db, f"k:{n}") for n in range(3)]
    port = free_port()  # nothing listens there
    transport = SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?from={SENDER}"))

    run = send_pending(db, transport, clock)

    assert run.stopped is not None
    assert f"cannot reach the mail server 127.0.0.1:{port}" in run.stopped
    assert [(a.notice.id, a.delivered) for a in run.attempts] == [(ids[0], False)]
    assert run.pending == 3
    assert [(row(db, i).attempts, row(db, i).delivered_at) for i in ids] == [
        (1, None),
        (0, None),  # the run stopped before trying these
        (0, None),
    ]
    assert row(db, ids[0]).last_error == run.stopped

    mailbox = Mailbox()
    controller = start_server(mailbox, port)
    try:
        again = send_pending(db, transport, clock)
    finally:
        controller.stop()
    assert [a.delivered for a in again.attempts] == [True, True, True]
    assert len(mailbox.received) == 3
    assert [row(db, i).attempts for i in ids] == [2, 1, 1]


def test_a_server_that_refuses_the_login_stops_the_run(db: Database, clock: FixedClock) -> None:
    store(db, "k:1")
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"p@ss:w/rd", handled=False)

    mailbox = Mailbox()
    controller = start_server(mailbox, authenticator=authenticator, auth_require_tls=False)
    try:
        base = f"127.0.0.1:{controller.port}?from={SENDER}"
        wrong = SmtpTransport(parse_smtp_url(f"smtp://clerk:nope@{base}"))
        refused = send_pending(db, wrong, clock)
        assert refused.stopped is not None
        assert "refused the login of clerk: 535" in refused.stopped
        # The password is percent-encoded in the URL.
        right = SmtpTransport(parse_smtp_url(f"smtp://clerk:p%40ss%3Aw%2Frd@{base}"))
        assert [a.delivered for a in send_pending(db, right, clock).attempts] == [True]
    finally:
        controller.stop()
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN) before giving up.
    assert set(logins[:-1]) == {(b"clerk", b"nope")}
    assert logins[-1] == (b"clerk", b"p@ss:w/rd")
    assert len(mailbox.received) == 1


# -- TLS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "smtps"])
def test_tls_verifies_the_server_certificate(
    db: Database, clock: FixedClock, certificate: tuple[Path, Path], security: str
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    if security == "smtps":
        controller = start_server(mailbox, ssl_context=server_context)
        url = f"smtps://127.0.0.1:{controller.port}?from={SENDER}"
    else:
        controller = start_server(mailbox, tls_context=server_context, require_starttls=True)
        url = f"smtp://127.0.0.1:{controller.port}?from={SENDER}&starttls=true"
    store(db, "k:1")
    try:
        # The system's trust store does not know the test certificate: refused.
        untrusted = send_pending(db, SmtpTransport(parse_smtp_url(url)), clock)
        assert untrusted.stopped is not None
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stopped
        trusting = ssl.create_default_context(cafile=str(cert))
        trusted = send_pending(db, SmtpTransport(parse_smtp_url(url), trusting), clock)
    finally:
        controller.stop()
    assert [a.delivered for a in trusted.attempts] == [True]
    assert len(mailbox.received) == 1


# -- transactions and senders at the same time ----------------------------------------


def test_the_engine_command_only_stores_and_a_rollback_leaves_nothing_to_send(
    db: Database, server: Server, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SMTP_ENV, server.url())
    folders = Folders(tmp_path / "data")

    def run_handler(key: str, then_fail: bool) -> None:
        with db.connect() as conn:
            ctx = TaskContext(
                instance_id=1,
                instance_uid="instance-1",
                business_key=RMA,
                process_id="return_request",
                process_version=1,
                task_id=key,
                bpmn_id="notify_received",
                operator="notify.customer",
                idempotency_key=key,
                attempt=1,
                now=T0,
                actor="tester",
                logger=logging.getLogger("test"),
                services=Services(conn, folders, T0),
            )
            params = {
                "notice": "received",
                "customer": {"name": "Ann Lee", "email": "ann@example.com", "locale": "en"},
                "request": {"order_number": "WS-2026-88412"},
                "artwork": CONTEXT["artwork"],
                "details": {"type": "return", "reason": "defective"},
            }
            assert notify.customer(params, ctx)["locale"] == "en"
            if then_fail:
                raise RuntimeError("a later step of the same command failed")

    with pytest.raises(RuntimeError):
        run_handler("instance-1:rolled-back", then_fail=True)
    run_handler("instance-1:kept", then_fail=False)
    assert server.mailbox.received == []  # the command sent nothing itself
    assert not (tmp_path / "data").exists()  # and wrote no file: SMTP is the delivery

    run = send_pending(db, server.transport(), clock)
    assert [a.notice.idempotency_key for a in run.attempts] == ["instance-1:kept"]
    assert [m.recipients for m in server.mailbox.received] == [["ann@example.com"]]


class Interleaving:
    """A transport that, while delivering its first notice, lets another sender run."""

    def __init__(self, inner: Transport, meanwhile: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.meanwhile = meanwhile
        self.delivered: list[int] = []

    def deliver(self, notice: Notice) -> str | None:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        self.delivered.append(notice.id)
        return self.inner.deliver(notice)

    def close(self) -> None:
        self.inner.close()


def test_a_second_sender_passes_over_a_notice_being_sent(
    db: Database, server: Server, clock: FixedClock
) -> None:
    ids = [store(db, f"k:{n}", recipient=f"c{n}@example.com") for n in range(3)]
    second: list[Any] = []

    def other_sender() -> None:
        other = Interleaving(server.transport(), None)
        second.append(send_pending(db, other, clock))

    first = Interleaving(server.transport(), other_sender)
    run = send_pending(db, first, clock)

    assert [a.notice.id for a in run.attempts] == [ids[0]]
    assert [a.notice.id for a in second[0].attempts] == ids[1:]
    assert sorted(m.recipients[0] for m in server.mailbox.received) == [
        "c0@example.com",
        "c1@example.com",
        "c2@example.com",
    ]  # each exactly once
    assert all(row(db, i).attempts == 1 for i in ids)


def test_the_claim_of_a_sender_that_died_lapses_and_the_notice_is_sent_again(
    db: Database, server: Server, clock: FixedClock
) -> None:
    first = store(db, "k:1")
    with db.connect() as conn:  # a sender claims it, then dies before marking it
        claimed = Outbox(conn, T0, None).claim(after=0, until=T0 + LEASE)
    assert claimed is not None
    assert claimed.id == first

    assert send_pending(db, server.transport(), clock).attempts == []  # still claimed
    clock.set(T0 + LEASE)
    run = send_pending(db, server.transport(), clock)
    assert [a.delivered for a in run.attempts] == [True]
    assert row(db, first).attempts == 2


@pytest.mark.postgres
def test_two_postgresql_connections_claim_different_notices(pg_url: URL) -> None:
    """SELECT ... FOR UPDATE SKIP LOCKED: a claim in progress is passed over, not waited
    for, and no notice is claimed twice."""
    db = Database(pg_url)
    db.upgrade()
    try:
        ids = [store(db, f"k:{n}") for n in range(3)]
        with db.engine.connect() as one, db.engine.connect() as two:
            one.execute(text("SET lock_timeout = '2s'"))
            two.execute(text("SET lock_timeout = '2s'"))
            first = Outbox(one, T0, None).claim(after=0, until=T0 + LEASE)  # not committed
            second = Outbox(two, T0, None).claim(after=0, until=T0 + LEASE)
            assert first is not None
            assert second is not None
            assert (first.id, second.id) == (ids[0], ids[1])
            two.commit()
            one.rollback()  # the first sender died: its claim is undone with it
        with db.connect() as conn:
            again = Outbox(conn, T0, None).claim(after=0, until=T0 + LEASE)
        assert again is not None
        assert again.id == ids[0]
    finally:
        db.dispose()


@pytest.mark.postgres
def test_senders_in_threads_on_postgresql_deliver_each_notice_once(
    pg_url: URL, server: Server
) -> None:
    db = Database(pg_url)
    db.upgrade()
    try:
        ids = [store(db, f"k:{n}", recipient=f"c{n}@example.com") for n in range(24)]
        runs: list[Any] = []
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                runs.append(send_pending(db, server.transport(), FixedClock(T0)))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        delivered = sorted(a.notice.id for run in runs for a in run.attempts)
        assert delivered == ids
        received = sorted(m.recipients[0] for m in server.mailbox.received)
        assert received == sorted(f"c{n}@example.com" for n in range(24))
        with db.connect() as conn:
            attempts = conn.execute(select(outbox.c.attempts)).scalars().all()
        assert set(attempts) == {1}
    finally:
        db.dispose()


# -- delivery to the folder (the default) ---------------------------------------------


def test_without_smtp_a_notice_is_written_to_the_folder_as_it_is_stored(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SMTP_ENV, raising=False)
    folder = tmp_path / "outbox"
    with db.connect() as conn:
        sent = Outbox(conn, T0, folder).send(
            key="k:1", rma=RMA, notice="received", locale="en", recipient="a@b.c", context=CONTEXT
        )
    assert sent.file == str(folder / RMA / "001-received.en.txt")
    [notice] = all_notices(db)
    assert (notice.delivered_at, notice.attempts, notice.file) == (T0, 1, sent.file)
    assert Path(sent.file).read_text(encoding="utf-8") == f"{notice.subject}\n\n{notice.body}"


def test_pending_notices_go_to_the_folder_when_smtp_is_off(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    ids = [store(db, f"k:{n}", locale=locale) for n, locale in enumerate(("en", "zh-Hant"))]
    run = send_pending(db, FolderTransport(tmp_path / "outbox"), clock)
    files = [a.file for a in run.attempts]
    assert files == [
        str(tmp_path / "outbox" / RMA / "001-received.en.txt"),
        str(tmp_path / "outbox" / RMA / "002-received.zh-Hant.txt"),
    ]
    assert [row(db, i).file for i in ids] == files
    assert "我們已收到您的退貨申請" in Path(files[1] or "").read_text(encoding="utf-8")


def test_a_folder_that_cannot_be_written_stops_the_run(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    store(db, "k:1")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    run = send_pending(db, FolderTransport(blocked), clock)
    assert run.stopped is not None
    assert run.stopped.startswith(f"cannot write to {blocked}")
    assert run.pending == 1


# -- the migration ------------------------------------------------------------------


def test_r0002_marks_the_notices_already_written_as_delivered(tmp_path: Path) -> None:
    from alembic import command

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with db.engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "r0001")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO outbox_message (idempotency_key, rma, notice, locale, recipient,"
                    " subject, body, created_at, file) VALUES ('old:1', :rma, 'received', 'en',"
                    " 'a@b.c', 'Subject', 'Body', '2026-10-01 08:00:00.000000', '/x/001.txt')"
                ),
                {"rma": RMA},
            )
        db.upgrade()
        [old] = all_notices(db)
        assert old.delivered_at is not None
        assert old.delivered_at == old.created_at
        assert old.attempts == 1
        with db.engine.begin() as conn:
            command.downgrade(db._alembic_config(conn), "r0001")
            columns = [c[1] for c in conn.exec_driver_sql("PRAGMA table_info(outbox_message)")]
            assert "delivered_at" not in columns
        db.upgrade()  # and up again: the old notice is still there, still delivered
        assert [n.delivered_at for n in all_notices(db)] == [old.created_at]
    finally:
        db.dispose()


# -- the setting --------------------------------------------------------------------


def test_a_full_url() -> None:
    settings = parse_smtp_url(
        "smtp://clerk:s%40cret@mail.example.com:2525?from=Lumen%20Gallery%20%3Creturns%40"
        "lumen.example%3E&starttls=true&timeout=5"
    )
    assert (settings.host, settings.port, settings.security) == (
        "mail.example.com",
        2525,
        "starttls",
    )
    assert (settings.username, settings.password, settings.timeout) == ("clerk", "s@cret", 5.0)
    assert str(settings.sender) == "Lumen Gallery <returns@lumen.example>"
    assert settings.display == "smtp://clerk@mail.example.com:2525?starttls=true"
    assert "s@cret" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "port", "security"),
    [
        ("smtp://mail.example.com", 25, "plain"),
        ("smtp://mail.example.com?starttls=true", 587, "starttls"),
        ("SMTPS://mail.example.com/", 465, "tls"),
        ("smtps://mail.example.com:1465?starttls=false", 1465, "tls"),
    ],
)
def test_ports_default_by_security(url: str, port: int, security: str) -> None:
    settings = parse_smtp_url(url)
    assert (settings.port, settings.security) == (port, security)
    assert settings.sender.addr_spec == HOUSE["email"]  # no from=: the house's address
    assert settings.username is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "the scheme must be smtp:// or smtps://"),
        ("mail.example.com:25", "the scheme must be smtp:// or smtps://"),
        ("smtp://", "names no mail server host"),
        ("smtp://mail.example.com:99999", "the port is not a number"),
        ("smtp://mail.example.com/relay", "has a path or fragment"),
        ("smtp://mail.example.com?form=a@b.c", "unknown parameter 'form'"),
        ("smtp://mail.example.com?starttls=maybe", "starttls='maybe' is not true or false"),
        ("smtps://mail.example.com?starttls=true", "smtps:// is TLS from the start"),
        ("smtp://mail.example.com?timeout=soon", "timeout='soon' is not a number"),
        ("smtp://mail.example.com?timeout=0", "must be more than 0"),
        ("smtp://mail.example.com?from=returns", "from='returns' is not an e-mail address"),
        ("smtp://mail.example.com?from=a@b.c&from=d@e.f", "'from' is given more than once"),
    ],
)
def test_a_bad_url_says_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match="ARTRETURNS_SMTP: ") as raised:
        parse_smtp_url(url)
    assert problem in raised.value.message
    assert raised.value.hint

"""Delivering the outbox: by SMTP when ARTRETURNS_SMTP is set, else to the outbox folder.

The command that writes a notice only stores it (handlers/store/outbox.py); delivery
happens here, in `artreturns notices send`, never inside that command's transaction. For
each notice, oldest first, three short transactions and a delivery between them:

1. claim it: count an attempt, and keep other senders off it for `LEASE`;
2. deliver it (SMTP or file), outside any transaction;
3. mark it delivered, or record the error and leave it pending for the next run.

A rollback in the engine therefore never follows a sent mail, and a mail server that
is down loses nothing. Delivery is at least once: a sender that dies between 2 and 3
leaves a claim that lapses after `LEASE`, and the notice is sent again, under the same
Message-ID (derived from its idempotency key), so the copy is recognisable.

ARTRETURNS_SMTP is a URL:

    smtp://USER:PASSWORD@HOST:PORT?from=ADDRESS&starttls=true&timeout=SECONDS

- `smtp://` a plain connection, upgraded with STARTTLS when `starttls=true`;
  `smtps://` TLS from the first byte (implicit TLS). Certificates are verified.
- USER:PASSWORD (optional, percent-encoded): log in with them (SMTP AUTH).
- PORT (optional): 465 for smtps, 587 for smtp with starttls=true, else 25.
- `from`: the sender, `returns@example.com` or `Gallery <returns@example.com>`
  (percent-encode the spaces and brackets); default ARTRETURNS_HOUSE_EMAIL, with
  ARTRETURNS_HOUSE_NAME as the name shown.
- `starttls`: true or false (default false); `timeout`: seconds to wait for the server
  (default 30).
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from engine import Clock, ConfigurationError, Database, Engine, NotFoundError
from handlers.common import HOUSE
from handlers.store import Folders
from handlers.store.outbox import SMTP_ENV, Notice, Outbox, smtp_configured, write_file

#: How long a claimed notice is kept from other senders: far longer than one delivery.
LEASE = timedelta(minutes=10)
DEFAULT_TIMEOUT = 30.0
_PARAMETERS = ("from", "starttls", "timeout")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
# Bodies in Traditional Chinese are not 7-bit: let the library choose base64 or
# quoted-printable (whichever is shorter) instead of relying on the server's 8BITMIME.
POLICY = SMTP.clone(cte_type="7bit")


# -- the setting --------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """ARTRETURNS_SMTP, parsed."""

    host: str
    port: int
    security: Literal["plain", "starttls", "tls"]
    sender: Address
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def display(self) -> str:
        """The URL without the password, for messages."""
        scheme = "smtps" if self.security == "tls" else "smtp"
        user = f"{self.username}@" if self.username else ""
        tls = "?starttls=true" if self.security == "starttls" else ""
        return f"{scheme}://{user}{self.host}:{self.port}{tls}"


def parse_smtp_url(text: str) -> SmtpSettings:
    """Parse ARTRETURNS_SMTP; ConfigurationError says what is wrong with it."""
    hint = (
        "Set it to a URL such as smtp://user:password@mail.example.com:587"
        "?from=returns@example.com&starttls=true, or smtps://... for implicit TLS."
    )

    def bad(problem: str, more: str | None = None) -> ConfigurationError:
        return ConfigurationError(f"{SMTP_ENV}: {problem}", more or hint)

    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise bad(f"the scheme must be smtp:// or smtps://, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise bad("the URL names no mail server host")
    if parts.path not in ("", "/") or parts.fragment:
        raise bad("the URL has a path or fragment; give only the server and the parameters")
    try:
        port = parts.port
    except ValueError as exc:
        raise bad(f"the port is not a number from 1 to 65535 ({exc})") from exc
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise bad(f"the parameters after '?' are malformed: {exc}") from exc
    unknown = sorted(set(query) - set(_PARAMETERS))
    if unknown:
        raise bad(
            f"unknown parameter {unknown[0]!r}",
            f"The parameters are: {', '.join(_PARAMETERS)}.",
        )
    repeated = [name for name, values in query.items() if len(values) > 1]
    if repeated:
        raise bad(f"the parameter {repeated[0]!r} is given more than once")
    values = {name: found[0] for name, found in query.items()}

    starttls_text = values.get("starttls", "false").strip().lower()
    if starttls_text not in _TRUE + _FALSE:
        raise bad(f"starttls={values['starttls']!r} is not true or false")
    starttls = starttls_text in _TRUE
    if scheme == "smtps" and starttls:
        raise bad(
            "smtps:// is TLS from the start; starttls=true applies to smtp:// only",
            "Use smtps://host (implicit TLS, port 465) or smtp://host:587?starttls=true.",
        )
    security: Literal["plain", "starttls", "tls"] = (
        "tls" if scheme == "smtps" else "starttls" if starttls else "plain"
    )
    try:
        timeout = float(values.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise bad(f"timeout={values['timeout']!r} is not a number of seconds") from exc
    if not 0 < timeout <= 600:
        raise bad(f"timeout={values['timeout']!r} must be more than 0 and at most 600 seconds")

    sender = _sender(values.get("from"))
    if sender is None:
        raise bad(
            f"from={values.get('from')!r} is not an e-mail address",
            "Give from=returns@example.com (or 'Name <returns@example.com>', percent-encoded).",
        )
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if security == "tls" else 587 if security == "starttls" else 25),
        security=security,
        sender=sender,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
    )


def _sender(given: str | None) -> Address | None:
    name, address = parseaddr(given if given is not None else HOUSE["email"])
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        return None
    try:
        return Address(display_name=name or HOUSE["name"], username=local, domain=domain)
    except ValueError:
        return None


def smtp_settings() -> SmtpSettings | None:
    """ARTRETURNS_SMTP parsed, or None when notices go to the folder."""
    return parse_smtp_url(os.environ[SMTP_ENV]) if smtp_configured() else None


# -- the message --------------------------------------------------------------------


def message_id(notice: Notice, domain: str) -> str:
    """The same for every copy of a notice: from its idempotency key, with its RMA.

    Short enough that the header is not folded (some mail software mishandles that)."""
    digest = hashlib.sha256(notice.idempotency_key.encode("utf-8")).hexdigest()[:20]
    rma = re.sub(r"[^A-Za-z0-9-]", "", notice.rma) or "notice"
    return f"<{rma}.{digest}@{domain}>"


def build_message(notice: Notice, sender: Address) -> EmailMessage:
    """The notice as a plain-text UTF-8 e-mail, dated when the notice was written."""
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    message["To"] = notice.recipient
    message["Subject"] = notice.subject
    message["Date"] = format_datetime(notice.created_at)
    message["Message-ID"] = message_id(notice, sender.domain)
    # RFC 3834: an automatic message; vacation responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(notice.body, charset="utf-8")
    message["Content-Language"] = notice.locale  # after set_content, which clears Content-*
    return message


# -- transports ---------------------------------------------------------------------


class DeliveryError(Exception):
    """A notice was not delivered. `fatal`: the transport itself failed (the server is
    unreachable, refuses to log us in or refuses the sender), so the run stops there."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


class Transport(Protocol):
    #: What the notices are delivered through, for messages.
    name: str

    def deliver(self, notice: Notice) -> str | None:
        """Deliver one notice; return the file written, if any. Raise DeliveryError."""
        ...

    def close(self) -> None: ...


class SmtpTransport:
    """One SMTP connection for a run, opened at the first notice."""

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.name = settings.display
        self._context = context
        self._client: smtplib.SMTP | None = None

    def deliver(self, notice: Notice) -> str | None:
        try:
            message = build_message(notice, self.settings.sender)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(f"cannot write the e-mail: {exc}", fatal=False) from exc
        client = self._connect()
        try:
            client.send_message(
                message, from_addr=self.settings.sender.addr_spec, to_addrs=[notice.recipient]
            )
        except smtplib.SMTPRecipientsRefused as exc:
            answers = "; ".join(_answer(code, text) for code, text in exc.recipients.values())
            raise DeliveryError(
                f"the server refused the recipient {notice.recipient}: {answers}", fatal=False
            ) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise DeliveryError(
                f"the server refused the sender {self.settings.sender.addr_spec}: "
                + _answer(exc.smtp_code, exc.smtp_error),
                fatal=True,
            ) from exc
        except (smtplib.SMTPDataError, smtplib.SMTPNotSupportedError) as exc:
            raise DeliveryError(
                f"the server refused the message: {_error(exc)}", fatal=False
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise DeliveryError(
                f"lost the connection to the mail server {self._where}: {_error(exc)}", fatal=True
            ) from exc
        return None

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _connect(self) -> smtplib.SMTP:
        if self._client is not None:
            return self._client
        settings = self.settings
        context = self._context or ssl.create_default_context()
        client: smtplib.SMTP | None = None
        try:
            if settings.security == "tls":
                client = smtplib.SMTP_SSL(
                    settings.host, settings.port, timeout=settings.timeout, context=context
                )
            else:
                client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            client.ehlo()
            if settings.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if settings.username is not None:
                client.login(settings.username, settings.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _quit(client)
            raise DeliveryError(
                f"the mail server {self._where} refused the login of {settings.username}: "
                + _answer(exc.smtp_code, exc.smtp_error),
                fatal=True,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            _quit(client)
            raise DeliveryError(
                f"cannot reach the mail server {self._where}: {_error(exc)}", fatal=True
            ) from exc
        self._client = client
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        client, self._client = self._client, None
        _quit(client)


def _quit(client: smtplib.SMTP | None) -> None:
    if client is None:
        return
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _answer(code: int, text: bytes | str) -> str:
    decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(decoded.split())}"


def _error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return _answer(exc.smtp_code, exc.smtp_error)
    return " ".join(str(exc).split()) or type(exc).__name__


class FolderTransport:
    """The default: each notice as a text file under the outbox folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = f"the outbox folder {folder}"

    def deliver(self, notice: Notice) -> str | None:
        try:
            return write_file(
                self.folder,
                notice.rma,
                notice.number,
                notice.notice,
                notice.locale,
                notice.subject,
                notice.body,
            )
        except OSError as exc:
            raise DeliveryError(f"cannot write to {self.folder}: {exc}", fatal=True) from exc

    def close(self) -> None:
        return None


def configured_transport(folders: Folders) -> Transport:
    """SMTP when ARTRETURNS_SMTP is set, else the outbox folder."""
    settings = smtp_settings()
    return SmtpTransport(settings) if settings is not None else FolderTransport(folders.outbox)


# -- a run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    notice: Notice
    error: str | None = None
    file: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None

    def as_data(self) -> dict[str, Any]:
        return {
            "id": self.notice.id,
            "rma": self.notice.rma,
            "notice": self.notice.notice,
            "recipient": self.notice.recipient,
            "delivered": self.delivered,
            "attempts": self.notice.attempts,
            "error": self.error,
            "file": self.file,
        }


@dataclass(frozen=True)
class Run:
    """What one `notices send` did."""

    transport: str
    attempts: list[Attempt]
    #: Why the run stopped before the pending notices ran out (the transport failed).
    stopped: str | None
    #: Notices still pending afterwards (failed ones, and any left by a stop or a limit).
    pending: int

    def as_data(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "delivered": sum(1 for a in self.attempts if a.delivered),
            "failed": sum(1 for a in self.attempts if not a.delivered),
            "pending": self.pending,
            "stopped": self.stopped,
            "attempts": [a.as_data() for a in self.attempts],
        }


def send_pending(
    db: Database,
    transport: Transport,
    clock: Clock,
    *,
    limit: int | None = None,
    lease: timedelta = LEASE,
    progress: Callable[[int, int], None] | None = None,
) -> Run:
    """Deliver pending notices, oldest first, each at most once per run; stop early
    when the transport fails (the rest stay pending, untouched). `progress` is told
    (notices tried, notices pending at the start, at most `limit`) after each."""
    attempts: list[Attempt] = []
    stopped: str | None = None
    last = 0
    total = 0
    if progress is not None:
        with db.connect() as conn:
            total = Outbox(conn, clock.now(), None).pending_count()
        total = min(total, limit) if limit is not None else total
    try:
        while limit is None or len(attempts) < limit:
            with db.connect() as conn:
                now = clock.now()
                notice = Outbox(conn, now, None).claim(after=last, until=now + lease)
            if notice is None:
                break
            last = notice.id
            try:
                file = transport.deliver(notice)
            except DeliveryError as exc:
                with db.connect() as conn:
                    Outbox(conn, clock.now(), None).mark_failed(notice.id, str(exc))
                attempts.append(Attempt(notice, error=str(exc)))
                if progress is not None:
                    progress(len(attempts), max(total, len(attempts)))
                if exc.fatal:
                    stopped = str(exc)
                    break
                continue
            with db.connect() as conn:
                Outbox(conn, clock.now(), None).mark_delivered(notice.id, file)
            attempts.append(Attempt(notice, file=file))
            if progress is not None:
                progress(len(attempts), max(total, len(attempts)))
    finally:
        transport.close()
    with db.connect() as conn:
        pending = Outbox(conn, clock.now(), None).pending_count()
    return Run(transport.name, attempts, stopped, pending)


# -- what the command line calls ----------------------------------------------------


def list_notices(engine: Engine, rma: str | None = None, *, pending: bool = False) -> list[Notice]:
    with engine.db.connect() as conn:
        return Outbox(conn, engine.clock.now(), None).notices(rma, pending=pending)


def show_notice(engine: Engine, notice_id: int) -> Notice:
    with engine.db.connect() as conn:
        found = Outbox(conn, engine.clock.now(), None).get(notice_id)
    if found is None:
        raise NotFoundError(
            f"no notice #{notice_id}", "List the notices with `artreturns notices list`."
        )
    return found


def send_notices(
    engine: Engine,
    folders: Folders,
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Run:
    """Deliver the pending notices through the configured transport."""
    transport = configured_transport(folders)
    return send_pending(engine.db, transport, engine.clock, limit=limit, progress=progress)


__all__ = [
    "LEASE",
    "Attempt",
    "DeliveryError",
    "FolderTransport",
    "Notice",
    "Run",
    "SmtpSettings",
    "SmtpTransport",
    "Transport",
    "build_message",
    "configured_transport",
    "list_notices",
    "message_id",
    "parse_smtp_url",
    "send_notices",
    "send_pending",
    "show_notice",
    "smtp_settings",
]

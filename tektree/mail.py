"""Outgoing email behind one small protocol: SMTP when configured, ``.eml`` files by default.

```python
mailer = open_mailer(node.config)          # [mail] of supervisor.toml
await mailer.send(Email(id="verify:usr_1:job_9", to="ann@example.com",
                        subject="Confirm your email", text="..."))
```

Every email has a stable ``id`` chosen by its sender (the job or event it comes from): it
becomes the ``Message-ID`` header, and the ``.eml`` file's name, so that sending the same email
again (a retried job) rewrites the same file, and mail clients can recognise a duplicate that
an SMTP retry let through. Blocking I/O (``smtplib``, file writes) runs in worker threads
under a capacity limiter, never on the trio thread.
"""

from __future__ import annotations

import email.message
import email.policy
import email.utils
import hashlib
import os
import re
import smtplib
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs
import trio

if TYPE_CHECKING:
    from tektree.config import Config, MailConfig

__all__ = [
    "Email",
    "FileMailer",
    "MailError",
    "Mailer",
    "SmtpMailer",
    "build_message",
    "open_mailer",
]

_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class MailError(Exception):
    """An email could not be built or sent; ``email_id`` names it."""

    def __init__(self, email_id: str, detail: str) -> None:
        super().__init__(f"email {email_id!r}: {detail}")
        self.email_id = email_id
        self.detail = detail


def _address(instance: Email, attribute: attrs.Attribute[str], value: str) -> None:
    _, addr = email.utils.parseaddr(value)
    if not isinstance(value, str) or not _ADDRESS.fullmatch(addr or ""):
        raise ValueError(f"Email.{attribute.name} = {value!r} is not an email address")


def _not_empty(instance: Email, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Email.{attribute.name} must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class Email:
    """One email: plain ``text``, optionally an ``html`` alternative."""

    id: str = attrs.field(validator=_not_empty)
    to: str = attrs.field(validator=_address)
    subject: str = attrs.field(validator=_not_empty)
    text: str
    html: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


def message_id(email_id: str, domain: str) -> str:
    digest = hashlib.sha256(email_id.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_message(mail: Email, from_address: str) -> email.message.EmailMessage:
    """The RFC 5322 message of ``mail`` (``Message-ID`` derived from its id)."""
    _, sender = email.utils.parseaddr(from_address)
    domain = sender.rpartition("@")[2] or "tektree.localhost"
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = from_address
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = message_id(mail.id, domain)
    for name, value in mail.headers.items():
        msg[name] = value
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    return msg


@runtime_checkable
class Mailer(Protocol):
    async def send(self, mail: Email) -> str:
        """Send ``mail``; returns where it went (a file path, or the SMTP server)."""
        ...


class FileMailer:
    """Writes each email as ``<outbox>/<id>.eml`` (atomically: a temporary file renamed)."""

    def __init__(self, outbox: Path, *, from_address: str) -> None:
        self.outbox = Path(outbox)
        self.from_address = from_address
        self._limiter = trio.CapacityLimiter(2)

    def path_of(self, email_id: str) -> Path:
        safe = _SAFE.sub("_", email_id)[:100]
        digest = hashlib.sha256(email_id.encode()).hexdigest()[:10]
        return self.outbox / f"{safe}-{digest}.eml"

    def _write(self, mail: Email) -> str:
        data = bytes(build_message(mail, self.from_address))
        self.outbox.mkdir(parents=True, exist_ok=True)
        path = self.path_of(mail.id)
        temp = path.with_suffix(f".tmp{os.getpid()}")
        temp.write_bytes(data)
        os.replace(temp, path)
        return str(path)

    async def send(self, mail: Email) -> str:
        try:
            return await trio.to_thread.run_sync(self._write, mail, limiter=self._limiter)
        except OSError as exc:
            raise MailError(mail.id, f"cannot write to {self.outbox}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileMailer({str(self.outbox)!r})"


class SmtpMailer:
    """Sends through an SMTP server (``starttls``, implicit ``ssl`` or ``none``), one
    connection per email, in worker threads (at most ``max_connections`` at once)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        from_address: str,
        username: str = "",
        password: str = "",
        security: str = "starttls",
        timeout_seconds: float = 10.0,
        max_connections: int = 4,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"security must be starttls, ssl or none, got {security!r}")
        self.host = host
        self.port = port
        self.from_address = from_address
        self.username = username
        self._password = password
        self.security = security
        self.timeout_seconds = timeout_seconds
        self._ssl = ssl_context
        self._limiter = trio.CapacityLimiter(max_connections)

    def _deliver(self, mail: Email) -> str:
        msg = build_message(mail, self.from_address)
        context = self._ssl or ssl.create_default_context()
        client: smtplib.SMTP
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_seconds,
                                      context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
        with client:
            client.ehlo()
            if self.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if self.username:
                client.login(self.username, self._password)
            client.send_message(msg)
        return f"smtp://{self.host}:{self.port}"

    async def send(self, mail: Email) -> str:
        try:
            return await trio.to_thread.run_sync(self._deliver, mail, limiter=self._limiter)
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(mail.id, f"SMTP {self.host}:{self.port} failed: "
                                     f"{type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SmtpMailer({self.host!r}, {self.port}, security={self.security!r})"


def mailer_from(mail: MailConfig, data_dir: Path) -> Mailer:
    if mail.smtp_host:
        return SmtpMailer(mail.smtp_host, mail.smtp_port, from_address=mail.from_address,
                          username=mail.smtp_username, password=mail.smtp_password,
                          security=mail.smtp_security, timeout_seconds=mail.timeout_seconds)
    return FileMailer(mail.outbox_path(data_dir), from_address=mail.from_address)


def open_mailer(config: Config) -> Mailer:
    """The mailer of a node's ``[mail]`` (``.eml`` files under the data directory unless
    ``smtp_host`` is set)."""
    return mailer_from(config.mail, config.node.resolved_data_dir())

"""tektree.mail: .eml files by default, SMTP when configured (against a minimal SMTP server
on loopback, speaking the real protocol to smtplib)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
import trio

from tektree.config import parse_config
from tektree.mail import Email, FileMailer, MailError, SmtpMailer, open_mailer
from tektree.testing.redis import free_port

MAIL = Email(id="verify:usr_1:job_7", to="Ann <ann@example.com>", subject="Confirm your email",
             text="Hello Ann,\nconfirm here.\n", html="<p>Hello Ann</p>")


async def test_the_default_mailer_writes_eml_files_under_the_data_dir(tmp_path: Path) -> None:
    config = parse_config({"node": {"data_dir": str(tmp_path)}}, env={})
    mailer = open_mailer(config)
    assert isinstance(mailer, FileMailer) and mailer.outbox == tmp_path / "mail"

    where = await mailer.send(MAIL)
    again = await mailer.send(MAIL)  # a retried job: the same file, not a second email
    assert where == again
    files = list((tmp_path / "mail").iterdir())
    assert [str(f) for f in files] == [where]
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "Ann <ann@example.com>"
    assert parsed["Subject"] == "Confirm your email"
    assert parsed["From"] == "TekTree <no-reply@tektree.localhost>"
    assert parsed["Message-ID"].endswith("@tektree.localhost>")
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None and "confirm here" in body.get_content()


def test_bad_emails_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"Email\.to = 'nobody' is not an email address"):
        Email(id="x", to="nobody", subject="s", text="t")
    with pytest.raises(ValueError, match=r"Email\.subject must be a non-empty string"):
        Email(id="x", to="a@b.io", subject=" ", text="t")


class SmtpSink:
    """A minimal SMTP server: accepts every message and keeps it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, list[str], bytes]] = []
        self.got = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""

        async def line() -> bytes:
            nonlocal buffer
            while b"\r\n" not in buffer:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    raise EOFError
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n")
            return head

        await stream.send_all(b"220 sink ready\r\n")
        sender, rcpts = "", []
        try:
            while True:
                command = (await line()).decode()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    await stream.send_all(b"250-sink\r\n250 8BITMIME\r\n")
                elif verb == "MAIL":
                    sender = command.split(":", 1)[1].strip()
                    await stream.send_all(b"250 ok\r\n")
                elif verb == "RCPT":
                    rcpts.append(command.split(":", 1)[1].strip())
                    await stream.send_all(b"250 ok\r\n")
                elif verb == "DATA":
                    await stream.send_all(b"354 go on\r\n")
                    lines = []
                    while (data := await line()) != b".":
                        lines.append(data[1:] if data.startswith(b"..") else data)
                    self.received.append((sender, rcpts, b"\r\n".join(lines)))
                    self.got.set()
                    await stream.send_all(b"250 queued\r\n")
                elif verb == "QUIT":
                    await stream.send_all(b"221 bye\r\n")
                    return
                else:
                    await stream.send_all(b"250 ok\r\n")
        except EOFError:
            return


async def test_smtp_mailer_speaks_smtp(tmp_path: Path) -> None:
    sink = SmtpSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_tcp, sink.handle, sink.port)
        config = parse_config({"mail": {"smtp_host": "127.0.0.1", "smtp_port": sink.port,
                                        "smtp_security": "none",
                                        "from_address": "TekTree <hello@tektree.test>"}},
                              env={})
        mailer = open_mailer(config)
        assert isinstance(mailer, SmtpMailer)
        assert await mailer.send(MAIL) == f"smtp://127.0.0.1:{sink.port}"
        with trio.fail_after(5):
            await sink.got.wait()
        nursery.cancel_scope.cancel()
    [(sender, rcpts, data)] = sink.received
    assert sender == "<hello@tektree.test>" and rcpts == ["<ann@example.com>"]
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == "Confirm your email"
    assert parsed["Message-ID"].endswith("@tektree.test>")


async def test_an_unreachable_smtp_server_is_a_mail_error() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), from_address="a@b.io", security="none",
                        timeout_seconds=2)
    with pytest.raises(MailError, match=r"email 'verify:usr_1:job_7': SMTP 127\.0\.0\.1:"):
        await mailer.send(MAIL)


def test_smtp_settings_come_from_the_environment() -> None:
    config = parse_config({}, env={"TEKTREE_SMTP_HOST": "smtp.example.com",
                                   "TEKTREE_SMTP_PORT": "2525",
                                   "TEKTREE_SMTP_PASSWORD": "s3cret"})
    assert (config.mail.smtp_host, config.mail.smtp_port) == ("smtp.example.com", 2525)
    mailer = open_mailer(config)
    assert isinstance(mailer, SmtpMailer)
    assert "s3cret" not in repr(mailer)

"""The README's run command: ``tektree run`` in the repository serves the real product.

A real process on the shipped ``supervisor.toml`` (embedded defaults: SQLite, no Redis, the
production password hashing), spoken to over HTTP: register, ask, answer, accept, and the XP
arrives through the relay; then SIGTERM stops it gracefully.
"""

from __future__ import annotations

import email
import email.policy
import re
import signal
from pathlib import Path

import httpx
import pytest
import trio
from gwkit import API, register_http
from test_cli import REPO, tektree

BODY = "Some detailed body text that is long enough to pass."


@pytest.mark.slow
async def test_tektree_run_serves_the_api(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with tektree("run", "--port", "0", "--data-dir", str(data), cwd=REPO) as node:
        loaded = await node.wait_for("config loaded")
        assert loaded["source"] == "supervisor.toml"
        started = await node.wait_for("node started")
        assert started["kinds"] == ["leaderboard", "room", "schedule", "subscription", "user"]
        base = (await node.wait_for("http listening"))["binds"][0]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            ann, ann_h = await register_http(client, "ann")
            _, bob_h = await register_http(client, "bob")
            question = (await client.post(f"{API}/questions", headers=bob_h, json={
                "title": "What does tektree run start?", "body": BODY})).json()
            answer = (await client.post(f"{API}/questions/{question['id']}/answers",
                                        headers=ann_h, json={"body": BODY})).json()
            accepted = await client.post(f"{API}/answers/{answer['id']}/accept", headers=bob_h)
            assert accepted.status_code == 200
            # welcome 50 + daily quest 10 + answer 20 + accepted 50; the relay of the other
            # process delivers in the background, and its HTTP answers are all there is to
            # wait on from here
            with trio.fail_after(15):
                while (await client.get(f"{API}/users/{ann}/gamification")).json()[  # noqa: ASYNC110
                        "total_xp"] != 130:
                    await trio.sleep(0.05)
            board = (await client.get(f"{API}/leaderboards/global")).json()
            assert board["items"][0]["handle"] == "ann"
            # the verification email went out through the jobs and the .eml mailer
            with trio.fail_after(15):
                while not (mails := sorted((data / "mail").glob("*.eml"))):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            parsed = [email.message_from_bytes(m.read_bytes(), policy=email.policy.default)
                      for m in mails]
            ann_mail = next(m for m in parsed if m["To"] == "ann@example.com")
            text = ann_mail.get_body(preferencelist=("plain",))
            assert text is not None
            token = re.search(r"verify-email\?token=(\S+)", text.get_content())
            assert token is not None
            verified = await client.post(f"{API}/auth/verify-email",
                                         json={"token": token.group(1)})
            assert verified.status_code == 200, verified.text
            me = (await client.get(f"{API}/users/me", headers=ann_h)).json()
            assert me["email_verified"] is True
            assert (await client.get("/readyz")).json()["status"] == "ready"
            assert (await client.get("/openapi.json")).json()["openapi"] == "3.1.0"
            assert (await client.get("/docs")).status_code == 200
            assert (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert (data / "jwt-rs256.pem").stat().st_mode & 0o777 == 0o600
        node.process.send_signal(signal.SIGTERM)
        assert await node.finish() == 0

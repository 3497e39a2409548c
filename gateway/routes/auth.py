"""``/auth``: register, login, refresh (rotation), logout, verify-email."""

from __future__ import annotations

import structlog

from actors.accounts import User
from actors.jobs import request_email_verification
from gateway.api import Call, Reply, RouteTable
from gateway.problems import Problem
from gateway.routes.views import private_user
from gateway.sessions import SessionError
from tektree.jobs import JobsNotRunning, queue_of

__all__ = ["routes"]

routes = RouteTable("auth", "Accounts and tokens: RS256 access tokens (15 min) and rotating "
                            "refresh tokens (7 days)")
_log = structlog.get_logger("tektree.gateway.auth")


async def _send_verification(call: Call, user: User) -> None:
    """Hand the verification email to the configured delivery.

    ``mail``: the ``email.verification`` job (the mailer of ``[mail]``: SMTP, or ``.eml`` files
    in the data directory) issues the token and sends the link, once per user (the job id is
    the one the verification sweep uses); a node that runs no jobs logs the link instead.
    """
    gateway = call.gateway
    delivery = gateway.options.email_delivery
    if delivery == "none":
        return
    if delivery == "mail":
        try:
            queue = queue_of(gateway.node.system.extensions)
        except JobsNotRunning:
            _log.warning("no job queue on this node: the verification link goes to the log",
                         user_id=user.uid)
        else:
            await request_email_verification(queue, user.uid)
            return
    # Development delivery (no mail service): the token goes to the log.
    token = await gateway.accounts.issue_email_token(user.uid)
    _log.info("verification email", user_id=user.uid, email=user.email,
              route="POST /api/v1/auth/verify-email", token=token)


@routes.post("/auth/register", summary="Create an account", auth="none", rate="auth",
             body="RegisterRequest", responses={201: "Registered"}, problems=(409, 422))
async def register(call: Call) -> Reply:
    """Creates the account (email and handle unique, case-insensitively), opens a session and
    returns the user with its first token pair; a verification email goes out."""
    body = call.body
    user = await call.gateway.accounts.register(
        email=body["email"], password=body["password"], handle=body["handle"],
        first_name=body.get("first_name", ""), last_name=body.get("last_name", ""),
        correlation_id=call.correlation_id)
    pair = await call.gateway.sessions.open(user_id=user.uid, role=user.role, via="register")
    await _send_verification(call, user)
    return Reply({"user": private_user(user), "tokens": pair.to_json()}, status=201,
                 headers={"Location": f"/api/v1/users/{user.uid}"})


@routes.post("/auth/login", summary="Log in", auth="none", rate="auth",
             body="LoginRequest", responses={200: "TokenPair"}, problems=(401,))
async def login(call: Call) -> Reply:
    """A new session and its token pair for a correct email and password (401
    ``invalid-credentials`` otherwise, without saying which was wrong)."""
    user = await call.gateway.accounts.authenticate(email=call.body["email"],
                                                    password=call.body["password"])
    pair = await call.gateway.sessions.open(user_id=user.uid, role=user.role, via="login")
    return Reply(pair.to_json())


@routes.post("/auth/refresh", summary="Rotate a refresh token", auth="none", rate="auth",
             body="RefreshRequest", responses={200: "TokenPair"}, problems=(401,))
async def refresh(call: Call) -> Reply:
    """Spends the refresh token for a new pair. Presenting a spent token again revokes its
    whole session (``refresh-token-reused``): a stolen copy dies with the original."""
    accounts = call.gateway.accounts

    async def role_of(user_id: str) -> str | None:
        user = await accounts.get(user_id)
        return None if user is None else user.role

    try:
        pair = await call.gateway.sessions.refresh(call.body["refresh_token"], role_of=role_of)
    except SessionError as exc:
        raise Problem(exc.slug, exc.detail, field="refresh_token", reason=exc.reason) from None
    return Reply(pair.to_json())


@routes.post("/auth/logout", summary="Log out", auth="user", rate="write",
             responses={204: None}, problems=(401,))
async def logout(call: Call) -> Reply:
    """Revokes the session of the access token: its refresh token is refused from now on
    (the access token itself expires within 15 minutes)."""
    await call.gateway.sessions.revoke(call.user.session_id, reason="logout")
    return Reply(status=204)


@routes.post("/auth/verify-email", summary="Verify an email address", auth="none",
             rate="auth", body="VerifyEmailRequest", responses={200: "User"},
             problems=(422,))
async def verify_email(call: Call) -> Reply:
    """Spends the single-use token of the verification email (valid 24 hours)."""
    user = await call.gateway.accounts.verify_email(call.body["token"])
    return Reply(private_user(user))

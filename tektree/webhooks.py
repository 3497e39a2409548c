"""Standard Webhooks signatures (https://www.standardwebhooks.com): verify and sign. Pure, no I/O.

A delivery carries three headers: ``webhook-id`` (unique per message; the receiver's dedupe
key), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``, a space-separated list of
``v1,<base64>`` entries (several while a sender rotates its secret). Each ``v1`` signature is
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"`` keyed with the secret's bytes.

Secrets: ``whsec_<base64>`` (the spec's form) is base64-decoded to its key bytes; any other
string is used as its UTF-8 bytes (what Polar's own SDK does with the secret its dashboard
shows: it base64-encodes it into a ``Webhook`` secret, which comes back to the same bytes).

:func:`verify` checks in the order that tells a sender most: headers present and well formed,
timestamp within ``tolerance_seconds`` of now *both ways* (a replay of an old delivery and a
message stamped in the future are refused alike), then the signatures, compared in constant time
(``hmac.compare_digest``). Every refusal is a :class:`WebhookVerificationError` whose ``reason``
is a stable slug and whose message says what was wrong. Deduplication on ``webhook-id`` is the
receiver's job (it must persist the ids it accepted: a replay inside the tolerance window passes
this check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "VerifiedWebhook",
    "WebhookVerificationError",
    "secret_key",
    "sign",
    "signed_headers",
    "verify",
]

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300.0
_PREFIX: Final = "whsec_"
_MAX_ID: Final = 256


class WebhookVerificationError(ValueError):
    """A delivery that does not verify; ``reason`` is one of ``missing_header``,
    ``bad_header``, ``stale``, ``future``, ``no_signature``, ``bad_signature``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@attrs.frozen(kw_only=True)
class VerifiedWebhook:
    """What :func:`verify` accepted: the delivery id, its timestamp and the body."""

    webhook_id: str
    timestamp: int
    body: bytes


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``secret`` (``whsec_<base64>`` decoded; anything else as UTF-8)."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("a webhook secret must be a non-empty string")
    if secret.startswith(_PREFIX):
        try:
            key = base64.b64decode(secret[len(_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a 'whsec_' webhook secret must be followed by base64") from None
        if not key:
            raise ValueError("the 'whsec_' webhook secret is empty")
        return key
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    content = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender puts on a delivery (for senders and tests)."""
    return {HEADER_ID: webhook_id, HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: sign(secret, webhook_id, timestamp, body)}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts: look case-insensitively
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if value is None or not value.strip():
        raise WebhookVerificationError("missing_header", f"the {name} header is missing")
    return value.strip()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> VerifiedWebhook:
    """Check one delivery (``body`` as received, byte for byte) at Unix time ``now``."""
    key = secret_key(secret)
    webhook_id = _header(headers, HEADER_ID)
    if len(webhook_id) > _MAX_ID or any(c in webhook_id for c in " \t\r\n"):
        raise WebhookVerificationError(
            "bad_header", f"the {HEADER_ID} header must be at most {_MAX_ID} characters "
                          f"without spaces, got {webhook_id[:40]!r}")
    raw_stamp = _header(headers, HEADER_TIMESTAMP)
    if not raw_stamp.isdigit() or len(raw_stamp) > 12:
        raise WebhookVerificationError(
            "bad_header", f"the {HEADER_TIMESTAMP} header must be Unix seconds, "
                          f"got {raw_stamp[:40]!r}")
    timestamp = int(raw_stamp)
    if timestamp < now - tolerance_seconds:
        raise WebhookVerificationError(
            "stale", f"the delivery is {now - timestamp:.0f} s old; at most "
                     f"{tolerance_seconds:.0f} s are accepted (a replay, or a clock off)")
    if timestamp > now + tolerance_seconds:
        raise WebhookVerificationError(
            "future", f"the delivery is stamped {timestamp - now:.0f} s in the future; at most "
                      f"{tolerance_seconds:.0f} s are accepted (a clock off)")
    content = f"{webhook_id}.{timestamp}.".encode() + body
    expected = hmac.new(key, content, hashlib.sha256).digest()
    found_v1 = False
    for entry in _header(headers, HEADER_SIGNATURE).split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        found_v1 = True
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return VerifiedWebhook(webhook_id=webhook_id, timestamp=timestamp, body=body)
    if not found_v1:
        raise WebhookVerificationError(
            "no_signature", f"the {HEADER_SIGNATURE} header holds no 'v1,<base64>' signature")
    raise WebhookVerificationError(
        "bad_signature", f"no signature in {HEADER_SIGNATURE} matches the body: wrong secret, "
                         "or the body or headers were changed")

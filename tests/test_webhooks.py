"""Standard Webhooks verification (``tektree.webhooks``): the spec's vector, forgeries, replays
outside the window, clocks off both ways, rotation, malformed headers."""

from __future__ import annotations

import base64

import pytest

from tektree.webhooks import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WebhookVerificationError,
    secret_key,
    sign,
    signed_headers,
    verify,
)

# The example of the Standard Webhooks specification (and of svix's libraries).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(b"a test secret of some length").decode()
NOW = 1_767_225_600
BODY = b'{"type":"subscription.active","data":{}}'


def _refused(headers: dict[str, str], body: bytes = BODY, *, now: float = NOW,
             secret: str = SECRET) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as info:
        verify(secret, headers, body, now=now)
    return info.value


def test_the_specifications_example_signs_and_verifies() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = {HEADER_ID: SPEC_ID, HEADER_TIMESTAMP: str(SPEC_TIMESTAMP),
               HEADER_SIGNATURE: SPEC_SIGNATURE}
    verified = verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP + 10)
    assert (verified.webhook_id, verified.timestamp, verified.body) == (
        SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_a_changed_body_id_or_timestamp_or_another_secret_is_refused() -> None:
    headers = signed_headers(SECRET, "msg_1", NOW, BODY)
    assert verify(SECRET, headers, BODY, now=NOW).webhook_id == "msg_1"
    assert _refused(headers, BODY + b" ").reason == "bad_signature"
    assert _refused({**headers, HEADER_ID: "msg_2"}).reason == "bad_signature"
    assert _refused({**headers, HEADER_TIMESTAMP: str(NOW + 1)}).reason == "bad_signature"
    other = "whsec_" + base64.b64encode(b"another secret").decode()
    error = _refused(headers, secret=other)
    assert error.reason == "bad_signature" and "wrong secret" in str(error)


def test_five_minutes_either_way_and_not_a_second_more() -> None:
    for skew in (-300, 300):
        stamp = NOW + skew
        verify(SECRET, signed_headers(SECRET, "m", stamp, BODY), BODY, now=NOW)
    stale = _refused(signed_headers(SECRET, "m", NOW - 301, BODY))
    assert stale.reason == "stale" and "301 s old" in str(stale)
    future = _refused(signed_headers(SECRET, "m", NOW + 301, BODY))
    assert future.reason == "future" and "in the future" in str(future)
    # a narrower window, configured
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, signed_headers(SECRET, "m", NOW - 61, BODY), BODY, now=NOW,
               tolerance_seconds=60)


def test_any_v1_signature_of_the_list_may_match_during_a_rotation() -> None:
    old = "whsec_" + base64.b64encode(b"the old secret").decode()
    headers = signed_headers(SECRET, "m", NOW, BODY)
    rotating = f"v2,abc {sign(old, 'm', NOW, BODY)} {headers[HEADER_SIGNATURE]}"
    assert verify(SECRET, {**headers, HEADER_SIGNATURE: rotating}, BODY, now=NOW)
    assert _refused({**headers, HEADER_SIGNATURE: "v2,abc v1a,zzz"}).reason == "no_signature"
    assert _refused({**headers, HEADER_SIGNATURE: "v1,not-base64!!"}).reason == "bad_signature"


def test_missing_and_malformed_headers_are_named() -> None:
    headers = signed_headers(SECRET, "m", NOW, BODY)
    for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE):
        error = _refused({k: v for k, v in headers.items() if k != name})
        assert error.reason == "missing_header" and name in str(error)
    assert _refused({**headers, HEADER_TIMESTAMP: "yesterday"}).reason == "bad_header"
    assert _refused({**headers, HEADER_ID: "has space"}).reason == "bad_header"
    # header names are case-insensitive
    upper = {k.title(): v for k, v in headers.items()}
    assert verify(SECRET, upper, BODY, now=NOW).webhook_id == "m"


def test_secrets_whsec_base64_or_raw_as_polar_shows_them() -> None:
    assert secret_key("whsec_" + base64.b64encode(b"k3y").decode()) == b"k3y"
    assert secret_key("polar_whs_raw") == b"polar_whs_raw"
    # Polar's SDK base64-encodes its raw secret into a Webhook secret: the same key
    raw = "polar_whs_raw"
    wrapped = "whsec_" + base64.b64encode(raw.encode()).decode()
    assert sign(raw, "m", NOW, BODY) == sign(wrapped, "m", NOW, BODY)
    for bad in ("", "whsec_!!!", "whsec_"):
        with pytest.raises(ValueError):
            secret_key(bad)

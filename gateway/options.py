"""The gateway's settings: the ``options`` table of its service in ``supervisor.toml``.

```toml
[[supervisor.children]]
type = "service"
name = "gateway"
service = "gateway.service:serve"
options = { cors_allowed_origins = ["https://app.tektree.dev"], max_body_bytes = 1048576 }
```

Every key is checked by name (a misspelt key is an error naming it and the allowed keys), with
its type and bounds; see :class:`GatewayOptions` for each key's meaning and default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from tektree.config import ConfigError, Pattern, parse_options, rules

__all__ = ["BillingOptions", "GatewayOptions", "gateway_options"]

_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_LIMIT = Pattern(regex=re.compile(r"unlimited|[1-9][0-9]*"),
                 hint="a whole number of requests a minute > 0, or 'unlimited'")


@attrs.frozen(kw_only=True)
class BillingOptions:
    """The ``billing`` table of the gateway's options: the Polar webhook."""

    webhook_secret: str = attrs.field(
        default="", metadata=rules("the Polar webhook's signing secret ('whsec_<base64>' or "
                                   "the secret as Polar shows it); '' = "
                                   "$TEKTREE_POLAR_WEBHOOK_SECRET, and with neither the "
                                   "webhook answers 503"))
    webhook_tolerance_seconds: float = attrs.field(
        default=300.0, metadata=rules("how far a delivery's webhook-timestamp may be from now, "
                                      "either way", gt=0))
    products: Mapping[str, Any] = attrs.field(
        factory=dict, metadata=rules("Polar product id -> tier ('pro', 'team', 'enterprise')"))
    quotas: bool = attrs.field(
        default=True, metadata=rules("enforce the tiers' monthly quotas (questions, insights, "
                                     "resource uploads)"))


@attrs.frozen(kw_only=True)
class GatewayOptions:
    """What the gateway service's ``options`` may say (all optional)."""

    cors_allowed_origins: tuple[str, ...] = attrs.field(
        default=(), metadata=rules("origins allowed to call the API from a browser, "
                                   "e.g. 'https://app.example.com' (no wildcard)"))
    max_body_bytes: int = attrs.field(
        default=1_048_576, metadata=rules("largest request body accepted (413 above)", ge=1))
    jwt_private_key_file: str = attrs.field(
        default="", metadata=rules("PEM RSA key signing tokens; '' = jwt-rs256.pem in "
                                   "node.data_dir, generated on first start. Every node of a "
                                   "cluster must use the same key"))
    jwt_previous_public_key_files: tuple[str, ...] = attrs.field(
        default=(), metadata=rules("PEM public keys still accepted after a key rotation"))
    jwt_issuer: str = attrs.field(default="tektree", metadata=rules("the tokens' iss claim"))
    jwt_audience: str = attrs.field(default="tektree-api",
                                    metadata=rules("the tokens' aud claim"))
    access_token_ttl_seconds: float = attrs.field(
        default=900.0, metadata=rules("lifetime of an access token", gt=0))
    refresh_token_ttl_seconds: float = attrs.field(
        default=604_800.0, metadata=rules("lifetime of a refresh token", gt=0))
    rate_limits: bool = attrs.field(
        default=True, metadata=rules("enforce the tiers' rate limits (429 past them)"))
    tiers_file: str = attrs.field(
        default="", metadata=rules("TOML tiers overrides (actors.rules.tiers); '' = defaults"))
    anonymous_requests_per_minute: str = attrs.field(
        default="100", metadata=rules("rate of requests without a token, per client IP "
                                      "(burst 2x for 10 s like the tiers)", pattern=_LIMIT))
    trusted_proxy_hops: int = attrs.field(
        default=0, metadata=rules("reverse proxies in front whose X-Forwarded-For entries "
                                  "are trusted for the client IP (0 = use the peer address)",
                                  ge=0))
    argon2_time_cost: int = attrs.field(
        default=3, metadata=rules("argon2id passes over memory (password hashing)", ge=1))
    argon2_memory_kib: int = attrs.field(
        default=65_536, metadata=rules("argon2id memory in KiB", ge=8))
    argon2_parallelism: int = attrs.field(
        default=4, metadata=rules("argon2id lanes", ge=1))
    hash_threads: int = attrs.field(
        default=2, metadata=rules("worker threads hashing passwords at once", ge=1))
    email_delivery: Literal["mail", "log", "none"] = attrs.field(
        default="mail", metadata=rules("how verification emails go out: 'mail' through the "
                                       "email.verification job and the [mail] mailer, 'log' "
                                       "writes the link to the log (development), 'none' "
                                       "drops it"))
    access_log: bool = attrs.field(
        default=False, metadata=rules("one log line per request (method, path, status, ms)"))
    billing: BillingOptions = attrs.field(
        factory=BillingOptions, metadata=rules("the Polar webhook and the quotas (a table)"))
    ws_max_queue: int = attrs.field(
        default=256, metadata=rules("frames a socket's topic may hold unsent before the socket "
                                    "is dropped as too slow (close 4408)", ge=1))
    ws_max_frame_bytes: int = attrs.field(
        default=65_536, metadata=rules("largest client frame handled (an error frame above; "
                                       "16x this closes the socket with 1009)", ge=256))
    ws_close_timeout_seconds: float = attrs.field(
        default=2.0, metadata=rules("how long a close frame may wait to go out before the "
                                    "connection is cut", gt=0))
    ws_heartbeat_interval_seconds: float = attrs.field(
        default=5.0, metadata=rules("at most one room heartbeat per socket this often, "
                                    "however often its client pings", gt=0))

    def anonymous_rpm(self) -> int | None:
        value = self.anonymous_requests_per_minute
        return None if value == "unlimited" else int(value)

    def key_file(self, data_dir: Path) -> Path:
        from gateway.tokens import KEY_FILE

        path = Path(self.jwt_private_key_file).expanduser() if self.jwt_private_key_file \
            else Path(KEY_FILE)
        return path if path.is_absolute() else data_dir / path


def gateway_options(table: Mapping[str, Any], path: str = "gateway.options") -> GatewayOptions:
    """The checked options (``path`` prefixes every error, e.g. ``gateway.options.max_body``)."""
    data = dict(table)
    rpm = data.get("anonymous_requests_per_minute")
    if isinstance(rpm, int) and not isinstance(rpm, bool):
        data["anonymous_requests_per_minute"] = str(rpm)
    options = parse_options(GatewayOptions, data, path)
    for index, origin in enumerate(options.cors_allowed_origins):
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"{path}.cors_allowed_origins[{index}]",
                              f"{origin!r} is not an origin like 'https://app.example.com' "
                              "(scheme and host, optional port, no path, no wildcard)")
    return options

"""The gateway's options table: checked by name, type and bound; errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.options import GatewayOptions, gateway_options
from tektree import ConfigError


def test_defaults() -> None:
    options = gateway_options({})
    assert options == GatewayOptions()
    assert (options.max_body_bytes, options.access_token_ttl_seconds) == (1_048_576, 900.0)
    assert options.anonymous_rpm() == 100
    assert options.key_file(Path("/data")) == Path("/data/jwt-rs256.pem")


@pytest.mark.parametrize(("table", "path", "detail"), [
    ({"max_body": 1}, "gateway.options.max_body", "did you mean 'max_body_bytes'?"),
    ({"max_body_bytes": 0}, "gateway.options.max_body_bytes", "must be >= 1"),
    ({"cors_allowed_origins": ["*"]}, "gateway.options.cors_allowed_origins[0]", "no wildcard"),
    ({"cors_allowed_origins": ["https://a.example/path"]},
     "gateway.options.cors_allowed_origins[0]", "no path"),
    ({"anonymous_requests_per_minute": 0}, "gateway.options.anonymous_requests_per_minute",
     "or 'unlimited'"),
    ({"email_delivery": "smtp"}, "gateway.options.email_delivery", "'mail', 'log', 'none'"),
    ({"rate_limits": "yes"}, "gateway.options.rate_limits", "boolean"),
    ({"access_token_ttl_seconds": -1}, "gateway.options.access_token_ttl_seconds", "> 0"),
])
def test_errors_name_the_key(table: dict[str, object], path: str, detail: str) -> None:
    with pytest.raises(ConfigError) as info:
        gateway_options(table)
    assert info.value.path == path and detail in info.value.detail


def test_relative_key_files_live_in_the_data_dir() -> None:
    options = gateway_options({"jwt_private_key_file": "keys/signing.pem",
                               "anonymous_requests_per_minute": "unlimited"})
    assert options.key_file(Path("/data")) == Path("/data/keys/signing.pem")
    assert options.anonymous_rpm() is None
    absolute = gateway_options({"jwt_private_key_file": "/etc/tektree/key.pem"})
    assert absolute.key_file(Path("/data")) == Path("/etc/tektree/key.pem")

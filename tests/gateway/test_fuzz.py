"""The OpenAPI document fuzzed with schemathesis against a live node: no 5xx, and every
response conforms to the documented status codes, content types, headers and schemas.

Schemathesis runs in its own process (its HTTP client is synchronous ``requests``; nothing of
it loads into this trio process) against the node this test serves on a free loopback port.
Examples per operation are bounded so the run stays within seconds.
"""

from __future__ import annotations

import base64
import re
import shutil
import sys
from pathlib import Path

import httpx
import pytest
import trio
from gwkit import API, PASSWORD, open_http

from actors.accounts import USERS
from gateway.routes import ROUTES

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(tmp_path: Path) -> None:
    # a webhook secret, so the Polar webhook answers its 400/401 to the fuzzer's unsigned calls
    options = {"rate_limits": False, "email_delivery": "none",
               "billing": {"webhook_secret": "whsec_" + base64.b64encode(b"f" * 24).decode()}}
    async with open_http(tmp_path / "node", options=options, timeout=240) as (node, base):
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.post(f"{API}/auth/register", json={
                "email": "fuzz@example.com", "password": PASSWORD, "handle": "fuzzer"})
            body = response.json()
        assert node.store is not None  # an admin reaches the admin routes too
        await node.store.update(USERS, body["user"]["uid"], {"$set": {"role": "admin"}})
        token = body["tokens"]["access_token"]
        result = await trio.run_process(
            [_schemathesis(), "run", f"{base}/openapi.json", "--checks", CHECKS,
             "--max-examples", "4", "--phases", "coverage,fuzzing", "--seed", "7",
             "--workers", "1", "--generation-database", "none", "--no-color",
             "--suppress-health-check", "all", "--request-timeout", "10",
             # the fuzzing admin would demote itself through PUT /users/me/role and leave the
             # moderator and admin routes tested only up to their 403 (test_api_routes covers
             # the role route)
             "--exclude-operation-id", "put_role",
             "-H", f"Authorization: Bearer {token}"],
            cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False)
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output[-8000:] + result.stderr.decode(errors="replace")
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    assert summary is not None, output[-3000:]
    assert summary[1] == summary[2] and int(summary[1]) > 300, summary[0]
    tested = re.search(r"Tested: (\d+)", output)
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    assert tested is not None and selected is not None, output[-3000:]
    excluded = [r for r in ROUTES if r.operation_id == "put_role"]
    # every documented operation but the excluded ones was selected, and each was tested
    assert int(selected[2]) - int(selected[1]) == len(excluded), selected[0]
    assert int(tested[1]) == int(selected[1]), (tested[0], selected[0])

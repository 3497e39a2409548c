"""The correlation id of a request: ``X-Correlation-ID`` in, on every response, in every message.

A client may send its own id (so its logs and ours join up); it must match
:data:`CORRELATION_ID_PATTERN` (1 to 128 of ``A-Z a-z 0-9 . _ : -``, so it is safe in a log line
and a header). Absent, the gateway makes one (``req_`` + 24 hex digits). The id is put in
``tektree.correlation_id`` for the request's task: every actor message sent while serving it
carries it in its envelope (and every message those actors send in turn), and every log line
shows it.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

__all__ = ["CORRELATION_HEADER", "CORRELATION_ID_PATTERN", "check_correlation_id", "new_id"]

CORRELATION_HEADER: Final = "X-Correlation-ID"
CORRELATION_ID_PATTERN: Final = r"[A-Za-z0-9._:-]{1,128}"
_VALID: Final = re.compile(CORRELATION_ID_PATTERN)


def new_id() -> str:
    """A fresh correlation id."""
    return f"req_{secrets.token_hex(12)}"


def check_correlation_id(value: str | None) -> tuple[str, str | None]:
    """``(the id to use, an error or None)``: a valid given id, else a fresh one.

    With an error the caller refuses the request (400) and answers under the fresh id.
    """
    if value is None or value == "":
        return new_id(), None
    if _VALID.fullmatch(value):
        return value, None
    shown = value if len(value) <= 40 else value[:40] + "..."
    return new_id(), (f"{CORRELATION_HEADER} {shown!r} must be 1 to 128 characters of "
                      "A-Z, a-z, 0-9, '.', '_', ':' or '-'")

"""Actor identities: every actor is addressed by ``(kind, key)``, never by a Python object."""

from __future__ import annotations

from typing import NamedTuple


class ActorId(NamedTuple):
    """The address of a virtual actor: its kind (``"user"``) and its key (``"usr_abc"``).

    A ``NamedTuple`` rather than an attrs class: it is hashed and compared on every message,
    and a tuple's C-level hash is several times cheaper than a Python ``__hash__``.
    """

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"

    @classmethod
    def parse(cls, text: str) -> ActorId:
        """Parse ``"kind/key"`` (the key may itself contain ``/``)."""
        kind, sep, key = text.partition("/")
        if not sep or not kind:
            raise ValueError(f"actor id {text!r} is not of the form 'kind/key'")
        return cls(kind, key)

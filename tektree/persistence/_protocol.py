"""The ``DocumentStore`` protocol and the value types every store speaks.

Documents are JSON objects (``dict`` of str to JSON values) with a ``str`` ``_id``. Filters and
updates use a small, MongoDB-shaped subset (see ``_query``); anything outside it is rejected by
name, never run as a silent full scan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import attrs

if TYPE_CHECKING:
    from tektree.persistence._metrics import StoreStatistics
    from tektree.persistence._text import SearchPage, TextIndexSpec
    from tektree.persistence._unit import CommitNotifier, Unit

Document = dict[str, Any]
Filter = Mapping[str, Any]
Update = Mapping[str, Mapping[str, Any]]
SortSpec = Sequence[tuple[str, Literal[1, -1]]]


def _to_fields(value: Iterable[tuple[str, int]]) -> tuple[tuple[str, Literal[1, -1]], ...]:
    return cast("tuple[tuple[str, Literal[1, -1]], ...]", tuple(value))


def _check_fields(instance: IndexSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise ValueError(f"IndexSpec.fields must name at least one field, got {value!r}")
    for item in value:
        if (
            not isinstance(item, tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or item[1] not in (1, -1)
        ):
            raise ValueError(f"IndexSpec.fields items must be (field, 1 | -1) tuples, got {item!r}")


@attrs.frozen(kw_only=True)
class IndexSpec:
    """An index declared in code: ``fields`` in order with their direction, and a stable name."""

    fields: tuple[tuple[str, Literal[1, -1]], ...] = attrs.field(
        converter=_to_fields, validator=_check_fields
    )
    unique: bool = False
    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[A-Za-z_][A-Za-z0-9_]*$"))

    @name.default
    def _default_name(self) -> str:
        return "_".join(f"{f.replace('.', '_')}_{d}".replace("-", "m") for f, d in self.fields)


@attrs.frozen(kw_only=True)
class Page:
    """One page of a ``find``: its documents, and the cursor of the next page (``None`` at the
    end)."""

    items: list[Document]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class Health:
    """The outcome of one round trip to the store."""

    ok: bool
    latency_seconds: float
    backend: str
    error: str | None = None


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a store guarantees beyond the protocol's minimum.

    ``atomic_units``: a ``unit()`` is all-or-nothing (SQLite always; MongoDB on a replica set).
    Without it the unit's operations run as an ordered bulk that stops at the first error, leaving
    the operations before it applied.
    """

    backend: str
    atomic_units: bool


class DocumentStore(Protocol):
    """An async (trio) document store. Every method is a checkpoint."""

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def commit_notifier(self) -> CommitNotifier: ...

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str: ...

    async def insert_many(
        self, collection: str, docs: Sequence[Mapping[str, Any]]
    ) -> list[str]: ...

    async def get(self, collection: str, doc_id: str) -> Document | None: ...

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: SortSpec = (),
        limit: int | None = None,
        after: str | None = None,
    ) -> Page: ...

    async def update(
        self,
        collection: str,
        filter_or_id: Filter | str,
        update: Update,
        *,
        upsert: bool = False,
    ) -> int: ...

    async def delete(self, collection: str, filter_or_id: Filter | str) -> int: ...

    async def count(self, collection: str, filter: Filter | None = None) -> int: ...

    async def ensure_index(self, collection: str, spec: IndexSpec) -> None: ...

    async def ensure_text_index(self, collection: str, spec: TextIndexSpec) -> None:
        """Declare the collection's text index (one per collection), filled from the
        documents already there and kept in step with every write after."""
        ...

    async def search(
        self,
        collection: str,
        text: str,
        *,
        filter: Filter | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> SearchPage:
        """Documents matching ``text`` (see ``_text`` for the query language) and ``filter``
        (whose equalities also match array items, as in MongoDB), best first."""
        ...

    def unit(self) -> AbstractAsyncContextManager[Unit]: ...

    async def health(self) -> Health: ...

    def statistics(self) -> StoreStatistics: ...

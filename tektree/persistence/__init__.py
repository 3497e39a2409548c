"""Persistence for the TekTree runtime: document stores, the journal, the outbox.

Domain-free: the kernel's own collections (``journal``, ``snapshots``, ``events``) are declared
here; domain code declares its collections' indexes with ``store.ensure_index``.
"""

from tektree.persistence._errors import (
    DuplicateEvent,
    DuplicateKeyError,
    InvalidCursor,
    InvalidDocument,
    InvalidQuery,
    JournalConflict,
    StaleFencingToken,
    StoreClosed,
    StoreError,
    StoreNotRunning,
    StoreUnavailable,
    UnsupportedOperator,
)
from tektree.persistence._event_sourced import EventSourcedActor, event_ids
from tektree.persistence._events import DomainEvent, format_timestamp, utc_now
from tektree.persistence._journal import (
    FENCES,
    JOURNAL,
    SNAPSHOTS,
    Journal,
    JournalEvent,
    Recovery,
    Snapshot,
    StoredEvent,
)
from tektree.persistence._metrics import (
    OperationStats,
    StoreCollector,
    StoreStatistics,
)
from tektree.persistence._mongo import MongoStore, mask_url
from tektree.persistence._open import (
    KERNEL_INDEXES,
    StoreSettings,
    ensure_kernel_indexes,
    open_store,
)
from tektree.persistence._outbox import (
    EVENTS,
    Deduplicator,
    DurableDeduplicator,
    OutboxRelay,
    replay,
)
from tektree.persistence._protocol import (
    Capabilities,
    Document,
    DocumentStore,
    Filter,
    Health,
    IndexSpec,
    Page,
    SortSpec,
    Update,
)
from tektree.persistence._query import FILTER_OPERATORS, UPDATE_OPERATORS
from tektree.persistence._service import STORE_EXTENSION, store_service, store_settings
from tektree.persistence._sqlite import SqliteStore
from tektree.persistence._text import (
    MAX_SEARCH_DEPTH,
    SearchHit,
    SearchPage,
    TextIndexSpec,
    TextQuery,
    decode_search_cursor,
    encode_search_cursor,
    parse_text_query,
)
from tektree.persistence._unit import CommitNotifier, Unit

__all__ = [
    "EVENTS",
    "FENCES",
    "FILTER_OPERATORS",
    "JOURNAL",
    "KERNEL_INDEXES",
    "MAX_SEARCH_DEPTH",
    "SNAPSHOTS",
    "STORE_EXTENSION",
    "UPDATE_OPERATORS",
    "Capabilities",
    "CommitNotifier",
    "Deduplicator",
    "Document",
    "DocumentStore",
    "DomainEvent",
    "DuplicateEvent",
    "DuplicateKeyError",
    "DurableDeduplicator",
    "EventSourcedActor",
    "Filter",
    "Health",
    "IndexSpec",
    "InvalidCursor",
    "InvalidDocument",
    "InvalidQuery",
    "Journal",
    "JournalConflict",
    "JournalEvent",
    "MongoStore",
    "OperationStats",
    "OutboxRelay",
    "Page",
    "Recovery",
    "SearchHit",
    "SearchPage",
    "Snapshot",
    "SortSpec",
    "SqliteStore",
    "StaleFencingToken",
    "StoreClosed",
    "StoreCollector",
    "StoreError",
    "StoreNotRunning",
    "StoreSettings",
    "StoreStatistics",
    "StoreUnavailable",
    "StoredEvent",
    "TextIndexSpec",
    "TextQuery",
    "Unit",
    "UnsupportedOperator",
    "Update",
    "decode_search_cursor",
    "encode_search_cursor",
    "ensure_kernel_indexes",
    "event_ids",
    "format_timestamp",
    "mask_url",
    "open_store",
    "parse_text_query",
    "replay",
    "store_service",
    "store_settings",
    "utc_now",
]

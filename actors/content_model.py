"""The content beyond questions, as stored: insights, discussions and their replies, resources,
comments, likes; their collections, indexes, records and validators (pure).

Field names follow the seed (``created_by``, ``areas``, ``co_authors``, ``published_at``,
``view_count``, ``like_count``, ``comment_count``, ``estimated_read_time_minutes``,
``featured``). Beyond it: ``status`` (insights: ``draft`` then ``published``; discussions:
``open`` or ``closed``), ``listed`` (True while anybody may see it: see
:mod:`actors.content_core`), ``hidden`` (by a moderator) and the revision counters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from actors.knowledge import KnowledgeError
from tektree.persistence import IndexSpec

INSIGHTS: Final = "insights"
DISCUSSIONS: Final = "discussions"
REPLIES: Final = "discussion_replies"
RESOURCES: Final = "resources"
COMMENTS: Final = "comments"
LIKES: Final = "likes"

INSIGHT_TYPES: Final[tuple[str, ...]] = ("article", "tutorial", "case_study", "tool_review")
RESOURCE_TYPES: Final[tuple[str, ...]] = ("link", "file")
TITLE_MIN, TITLE_MAX = 10, 200
INSIGHT_BODY_MIN, INSIGHT_BODY_MAX = 20, 100_000
BODY_MIN, BODY_MAX = 20, 20_000
DESCRIPTION_MAX: Final = 5000
COMMENT_MIN, COMMENT_MAX = 1, 2000
#: Replies nest at most this deep (0: a reply to the discussion itself).
MAX_REPLY_DEPTH: Final = 8
MAX_FILE_BYTES: Final = 100 * 1024 * 1024
FILE_NAME_MAX: Final = 255
_CONTENT_TYPE = re.compile(r"[a-z]+/[a-z0-9][a-z0-9.+-]{0,126}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STORAGE_KEY = re.compile(r"[A-Za-z0-9/_.-]{1,512}")
_BAD_FILE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")

INDEXES: Final = (
    (INSIGHTS, IndexSpec(fields=(("created_by", 1), ("published_at", -1)),
                         name="insights_author_published")),
    (INSIGHTS, IndexSpec(fields=(("areas", 1), ("published_at", -1)),
                         name="insights_areas_published")),
    (INSIGHTS, IndexSpec(fields=(("tags", 1),), name="insights_tags")),
    (INSIGHTS, IndexSpec(fields=(("featured", 1), ("published_at", -1)),
                         name="insights_featured_published")),
    (INSIGHTS, IndexSpec(fields=(("listed", 1), ("published_at", -1)),
                         name="insights_listed_published")),
    (INSIGHTS, IndexSpec(fields=(("created_by", 1), ("status", 1), ("updated_at", -1)),
                         name="insights_author_status")),
    (DISCUSSIONS, IndexSpec(fields=(("created_by", 1), ("created_at", -1)),
                            name="discussions_author_time")),
    (DISCUSSIONS, IndexSpec(fields=(("listed", 1), ("last_activity_at", -1)),
                            name="discussions_listed_activity")),
    (REPLIES, IndexSpec(fields=(("discussion_id", 1), ("path", 1)), unique=True,
                        name="replies_discussion_path")),
    (REPLIES, IndexSpec(fields=(("created_by", 1), ("created_at", -1)),
                        name="replies_author_time")),
    (RESOURCES, IndexSpec(fields=(("created_by", 1), ("created_at", -1)),
                          name="resources_author_time")),
    (RESOURCES, IndexSpec(fields=(("listed", 1), ("created_at", -1)),
                          name="resources_listed_time")),
    (COMMENTS, IndexSpec(fields=(("target_id", 1), ("created_at", 1)),
                         name="comments_target_time")),
    (COMMENTS, IndexSpec(fields=(("created_by", 1), ("created_at", -1)),
                         name="comments_author_time")),
    (LIKES, IndexSpec(fields=(("user_id", 1), ("active", 1), ("created_at", -1)),
                      name="likes_user_time")),
    (LIKES, IndexSpec(fields=(("target_id", 1), ("active", 1)), name="likes_target")),
)


# -- records -------------------------------------------------------------------------------------
def _common(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "created_by": doc["created_by"], "created_at": doc["created_at"],
            "updated_at": doc["updated_at"], "hidden": bool(doc.get("hidden", False))}


@attrs.frozen(kw_only=True)
class Insight:
    id: str
    title: str
    slug: str
    body: str
    insight_type: str
    tags: tuple[str, ...]
    areas: tuple[str, ...]
    co_authors: tuple[str, ...]
    visibility: str
    status: str
    created_by: str
    created_at: str
    updated_at: str
    published_at: str | None
    view_count: int
    like_count: int
    comment_count: int
    estimated_read_time_minutes: int
    featured: bool
    hidden: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Insight:
        return cls(
            **_common(doc), title=doc["title"], slug=doc["slug"], body=doc["body"],
            insight_type=doc["insight_type"], tags=tuple(doc["tags"]), areas=tuple(doc["areas"]),
            co_authors=tuple(doc["co_authors"]), visibility=doc["visibility"],
            status=doc["status"], published_at=doc["published_at"],
            view_count=doc["view_count"], like_count=doc["like_count"],
            comment_count=doc["comment_count"],
            estimated_read_time_minutes=doc["estimated_read_time_minutes"],
            featured=bool(doc["featured"]),
        )


@attrs.frozen(kw_only=True)
class Discussion:
    id: str
    title: str
    slug: str
    body: str
    tags: tuple[str, ...]
    areas: tuple[str, ...]
    visibility: str
    status: str
    created_by: str
    created_at: str
    updated_at: str
    last_activity_at: str
    reply_count: int
    view_count: int
    like_count: int
    comment_count: int
    hidden: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Discussion:
        return cls(
            **_common(doc), title=doc["title"], slug=doc["slug"], body=doc["body"],
            tags=tuple(doc["tags"]), areas=tuple(doc["areas"]), visibility=doc["visibility"],
            status=doc["status"], last_activity_at=doc["last_activity_at"],
            reply_count=doc["reply_count"], view_count=doc["view_count"],
            like_count=doc["like_count"], comment_count=doc["comment_count"],
        )


@attrs.frozen(kw_only=True)
class Reply:
    """A reply in a discussion's thread; ``path`` orders the thread depth first, oldest first
    among siblings. A hidden reply keeps its place in the thread with its body withheld from
    whoever may not see it."""

    id: str
    discussion_id: str
    parent_reply_id: str | None
    depth: int
    path: str
    body: str
    created_by: str
    created_at: str
    updated_at: str
    reply_count: int
    like_count: int
    hidden: bool
    deleted: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, redact: bool = False) -> Reply:
        return cls(
            **_common(doc), discussion_id=doc["discussion_id"],
            parent_reply_id=doc["parent_reply_id"], depth=doc["depth"], path=doc["path"],
            body="" if redact or doc.get("deleted") else doc["body"],
            reply_count=doc["reply_count"], like_count=doc["like_count"],
            deleted=bool(doc.get("deleted", False)),
        )


@attrs.frozen(kw_only=True)
class FileInfo:
    """A file's metadata (the bytes live in object storage under ``storage_key``)."""

    name: str
    size_bytes: int
    content_type: str
    sha256: str | None = None
    storage_key: str | None = None


@attrs.frozen(kw_only=True)
class Resource:
    id: str
    title: str
    slug: str
    description: str
    resource_type: str
    url: str | None
    file: FileInfo | None
    tags: tuple[str, ...]
    areas: tuple[str, ...]
    visibility: str
    created_by: str
    created_at: str
    updated_at: str
    view_count: int
    like_count: int
    comment_count: int
    download_count: int
    hidden: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Resource:
        file = doc.get("file")
        return cls(
            **_common(doc), title=doc["title"], slug=doc["slug"],
            description=doc["description"], resource_type=doc["resource_type"],
            url=doc.get("url"), file=None if file is None else FileInfo(**file),
            tags=tuple(doc["tags"]), areas=tuple(doc["areas"]), visibility=doc["visibility"],
            view_count=doc["view_count"], like_count=doc["like_count"],
            comment_count=doc["comment_count"], download_count=doc["download_count"],
        )


@attrs.frozen(kw_only=True)
class Comment:
    id: str
    target_type: str
    target_id: str
    body: str
    created_by: str
    created_at: str
    updated_at: str
    like_count: int
    hidden: bool

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], *, redact: bool = False) -> Comment:
        return cls(
            **_common(doc), target_type=doc["target_type"], target_id=doc["target_id"],
            body="" if redact else doc["body"], like_count=doc["like_count"],
        )


# -- validation (pure) ---------------------------------------------------------------------------
def validate_choice(field: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise KnowledgeError(field, "enum", f"{value!r:.60} is not one of {', '.join(choices)}")
    assert isinstance(value, str)
    return value


def validate_file(value: object) -> FileInfo:
    """File metadata: ``name`` (1 to 255 characters, no path or control characters),
    ``size_bytes`` (1 byte to 100 MiB), ``content_type`` (``type/subtype``), and optionally
    ``sha256`` (64 lowercase hex digits) and ``storage_key``."""
    if not isinstance(value, Mapping):
        raise KnowledgeError("file", "type", f"must be an object, got {value!r:.60}")
    allowed = {f.name for f in attrs.fields(FileInfo)}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise KnowledgeError(f"file.{unknown[0]}", "unknown",
                             f"allowed: {', '.join(sorted(allowed))}")
    name = value.get("name")
    if (not isinstance(name, str) or not 1 <= len(name.strip()) <= FILE_NAME_MAX
            or _BAD_FILE_NAME.search(name) or name.strip() in (".", "..")):
        raise KnowledgeError("file.name", "format",
                             f"{name!r:.80} must be 1 to {FILE_NAME_MAX} characters without "
                             "'/', '\\' or control characters")
    size = value.get("size_bytes")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_FILE_BYTES:
        raise KnowledgeError("file.size_bytes", "range",
                             f"must be an int from 1 to {MAX_FILE_BYTES} (100 MiB), got "
                             f"{size!r:.40}")
    content_type = value.get("content_type")
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise KnowledgeError("file.content_type", "format",
                             f"{content_type!r:.80} is not a media type like 'application/pdf'")
    sha256 = value.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
        raise KnowledgeError("file.sha256", "format",
                             f"{sha256!r:.80} is not 64 lowercase hex digits")
    key = value.get("storage_key")
    if key is not None and (not isinstance(key, str) or not _STORAGE_KEY.fullmatch(key)
                            or ".." in key):
        raise KnowledgeError("file.storage_key", "format",
                             f"{key!r:.80} must be 1 to 512 of letters, digits, '/', '_', '.', "
                             "'-' without '..'")
    return FileInfo(name=name.strip(), size_bytes=size, content_type=content_type,
                    sha256=sha256, storage_key=key)


def reply_path(parent_path: str | None, created_at: str, reply_id: str) -> str:
    """The thread key of a reply: its parent's path, ``/``, its time and id. Sorted, the paths
    give the thread depth first with siblings oldest first; a reply's descendants are exactly the
    paths in ``[path, path + "0")`` (``'/'`` sorts just before ``'0'``)."""
    own = f"{created_at}.{reply_id}"
    return own if parent_path is None else f"{parent_path}/{own}"


def subtree_range(path: str) -> dict[str, str]:
    return {"$gte": path, "$lt": path + "0"}


__all__ = [
    "COMMENTS",
    "DISCUSSIONS",
    "INDEXES",
    "INSIGHTS",
    "INSIGHT_TYPES",
    "LIKES",
    "MAX_FILE_BYTES",
    "MAX_REPLY_DEPTH",
    "REPLIES",
    "RESOURCES",
    "RESOURCE_TYPES",
    "Comment",
    "Discussion",
    "FileInfo",
    "Insight",
    "Reply",
    "Resource",
    "reply_path",
    "subtree_range",
    "validate_choice",
    "validate_file",
]

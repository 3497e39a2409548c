"""Domain values as JSON: what each route sends back (the schemas in :mod:`gateway.schemas`)."""

from __future__ import annotations

from typing import Any

from actors.accounts import User
from actors.areas import Area
from actors.content import ContentItem
from actors.content_model import Comment, Discussion, FileInfo, Insight, Resource
from actors.content_model import Reply as DiscussionReply
from actors.knowledge import Answer, Question, Vote
from actors.moderation import Case, ModerationAction, Report
from actors.search import SearchResult

__all__ = ["action_json", "answer_json", "area_json", "case_json", "comment_json",
           "content_item_json", "discussion_json", "insight_json", "private_user",
           "public_user", "question_json", "reply_json", "report_json", "resource_json",
           "search_result_json", "suspension_json", "vote_json"]


def private_user(user: User) -> dict[str, Any]:
    """The user as they see themselves (never the password hash)."""
    return {
        "uid": user.uid, "email": user.email, "email_verified": user.email_verified,
        "handle": user.handle, "first_name": user.first_name, "last_name": user.last_name,
        "avatar": user.avatar, "bio": user.bio, "tier": user.tier, "role": user.role,
        "preferences": dict(user.preferences), "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def public_user(user: User) -> dict[str, Any]:
    """What anyone may see of a user (no email, no preferences, no tier)."""
    return {
        "uid": user.uid, "handle": user.handle, "first_name": user.first_name,
        "last_name": user.last_name, "avatar": user.avatar, "bio": user.bio,
        "role": user.role, "created_at": user.created_at,
    }


def question_json(question: Question) -> dict[str, Any]:
    return {
        "id": question.id, "title": question.title, "slug": question.slug,
        "body": question.body, "tags": list(question.tags), "areas": list(question.areas),
        "visibility": question.visibility, "created_by": question.created_by,
        "created_at": question.created_at, "updated_at": question.updated_at,
        "status": question.status, "accepted_answer_id": question.accepted_answer_id,
        "view_count": question.view_count, "upvote_count": question.upvote_count,
        "downvote_count": question.downvote_count, "score": question.score,
        "answer_count": question.answer_count,
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "id": answer.id, "question_id": answer.question_id, "body": answer.body,
        "created_by": answer.created_by, "created_at": answer.created_at,
        "updated_at": answer.updated_at, "is_accepted": answer.is_accepted,
        "upvote_count": answer.upvote_count, "downvote_count": answer.downvote_count,
        "score": answer.score,
    }


def vote_json(vote: Vote) -> dict[str, Any]:
    return {"voter_id": vote.voter_id, "target_type": vote.target_type,
            "target_id": vote.target_id, "value": vote.value,
            "previous_value": vote.previous_value, "changed": vote.changed}


# -- the content issue's kinds ----------------------------------------------------------------
def area_json(area: Area) -> dict[str, Any]:
    return {
        "id": area.id, "title": area.title, "slug": area.slug, "parent_id": area.parent_id,
        "details": area.details, "tags": list(area.tags),
        "breadcrumbs": [{"id": c.id, "slug": c.slug, "title": c.title}
                        for c in area.breadcrumbs],
        "trail": area.trail, "depth": area.depth, "visibility": area.visibility,
        "created_by": area.created_by, "created_at": area.created_at,
        "updated_at": area.updated_at, "follower_count": area.follower_count,
        "content_count": area.content_count, "child_count": area.child_count,
        "hidden": area.hidden,
    }


def insight_json(insight: Insight) -> dict[str, Any]:
    return {
        "id": insight.id, "title": insight.title, "slug": insight.slug, "body": insight.body,
        "insight_type": insight.insight_type, "tags": list(insight.tags),
        "areas": list(insight.areas), "co_authors": list(insight.co_authors),
        "visibility": insight.visibility, "status": insight.status,
        "created_by": insight.created_by, "created_at": insight.created_at,
        "updated_at": insight.updated_at, "published_at": insight.published_at,
        "view_count": insight.view_count, "like_count": insight.like_count,
        "comment_count": insight.comment_count,
        "estimated_read_time_minutes": insight.estimated_read_time_minutes,
        "featured": insight.featured, "hidden": insight.hidden,
    }


def discussion_json(discussion: Discussion) -> dict[str, Any]:
    return {
        "id": discussion.id, "title": discussion.title, "slug": discussion.slug,
        "body": discussion.body, "tags": list(discussion.tags),
        "areas": list(discussion.areas), "visibility": discussion.visibility,
        "status": discussion.status, "created_by": discussion.created_by,
        "created_at": discussion.created_at, "updated_at": discussion.updated_at,
        "last_activity_at": discussion.last_activity_at,
        "reply_count": discussion.reply_count, "view_count": discussion.view_count,
        "like_count": discussion.like_count, "comment_count": discussion.comment_count,
        "hidden": discussion.hidden,
    }


def reply_json(reply: DiscussionReply) -> dict[str, Any]:
    return {
        "id": reply.id, "discussion_id": reply.discussion_id,
        "parent_reply_id": reply.parent_reply_id, "depth": reply.depth, "path": reply.path,
        "body": reply.body, "created_by": reply.created_by, "created_at": reply.created_at,
        "updated_at": reply.updated_at, "reply_count": reply.reply_count,
        "like_count": reply.like_count, "hidden": reply.hidden, "deleted": reply.deleted,
    }


def _file_json(info: FileInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"name": info.name, "size_bytes": info.size_bytes,
            "content_type": info.content_type, "sha256": info.sha256,
            "storage_key": info.storage_key}


def resource_json(resource: Resource) -> dict[str, Any]:
    return {
        "id": resource.id, "title": resource.title, "slug": resource.slug,
        "description": resource.description, "resource_type": resource.resource_type,
        "url": resource.url, "file": _file_json(resource.file), "tags": list(resource.tags),
        "areas": list(resource.areas), "visibility": resource.visibility,
        "created_by": resource.created_by, "created_at": resource.created_at,
        "updated_at": resource.updated_at, "view_count": resource.view_count,
        "like_count": resource.like_count, "comment_count": resource.comment_count,
        "download_count": resource.download_count, "hidden": resource.hidden,
    }


def comment_json(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id, "target_type": comment.target_type, "target_id": comment.target_id,
        "body": comment.body, "created_by": comment.created_by,
        "created_at": comment.created_at, "updated_at": comment.updated_at,
        "like_count": comment.like_count, "hidden": comment.hidden,
    }


_RENDER: dict[type, Any] = {Question: question_json, Insight: insight_json,
                            Discussion: discussion_json, Resource: resource_json,
                            Area: area_json}


def content_item_json(entry: ContentItem) -> dict[str, Any]:
    """One entry of an area's mixed listing."""
    return {"content_type": entry.content_type, "item": _RENDER[type(entry.item)](entry.item)}


def search_result_json(hit: SearchResult) -> dict[str, Any]:
    return {"content_type": hit.content_type, "score": hit.score,
            "item": _RENDER[type(hit.item)](hit.item)}


def report_json(report: Report) -> dict[str, Any]:
    return {"id": report.id, "case_id": report.case_id, "target_type": report.target_type,
            "target_id": report.target_id, "reporter_id": report.reporter_id,
            "reason": report.reason, "details": report.details,
            "created_at": report.created_at}


def case_json(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "target_type": case.target_type, "target_id": case.target_id,
        "author_id": case.author_id, "status": case.status, "round": case.round,
        "report_count": case.report_count, "reasons": dict(case.reasons),
        "opened_at": case.opened_at, "last_reported_at": case.last_reported_at,
        "resolution": case.resolution, "resolved_by": case.resolved_by,
        "resolved_at": case.resolved_at, "note": case.note,
    }


def action_json(action: ModerationAction) -> dict[str, Any]:
    return {"id": action.id, "action": action.action, "target_type": action.target_type,
            "target_id": action.target_id, "author_id": action.author_id,
            "moderator_id": action.moderator_id, "reason": action.reason, "at": action.at}


def suspension_json(user: User) -> dict[str, Any]:
    """A user's suspension as moderators see it (``suspended`` false: none holds now)."""
    held = user.suspension if user.is_suspended() else None
    return {"user_id": user.uid, "handle": user.handle, "role": user.role,
            "suspended": held is not None,
            "by": None if held is None else held.get("by"),
            "reason": None if held is None else held.get("reason"),
            "at": None if held is None else held.get("at"),
            "until": None if held is None else held.get("until")}

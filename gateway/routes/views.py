"""Domain values as JSON: what each route sends back (the schemas in :mod:`gateway.schemas`)."""

from __future__ import annotations

from typing import Any

from actors.accounts import User
from actors.knowledge import Answer, Question, Vote

__all__ = ["answer_json", "private_user", "public_user", "question_json", "vote_json"]


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

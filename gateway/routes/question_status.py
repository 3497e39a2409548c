"""A question's status beyond acceptance: the asker closes, reopens or resolves it
(``actors.content_questions``; moderators close through ``/moderation``)."""

from __future__ import annotations

from typing import Final

from gateway.api import Call, Reply, RouteTable, path_param
from gateway.routes.views import question_json

__all__ = ["routes"]

routes = RouteTable("question-status", "The asker closes, reopens or resolves a question")

_QID: Final = path_param("question_id", "a question id (`q_...`)")


@routes.post("/questions/{question_id}/close", summary="Close your question",
             params=(_QID,), body="QuestionClose", responses={200: "Question"},
             problems=(401, 403, 404, 409))
async def close_question(call: Call) -> Reply:
    """It takes no more answers; closing a closed question changes nothing."""
    question = await call.gateway.content.questions.close(
        call.path["question_id"], call.user.user_id, reason=call.body.get("reason", ""),
        correlation_id=call.correlation_id)
    return Reply(question_json(question))


@routes.post("/questions/{question_id}/reopen", summary="Reopen your question",
             params=(_QID,), responses={200: "Question"}, problems=(401, 403, 404, 409))
async def reopen_question(call: Call) -> Reply:
    """Back to resolved if it was, else open; one a moderator closed is a moderator's to
    reopen (403)."""
    question = await call.gateway.content.questions.reopen(
        call.path["question_id"], call.user.user_id, correlation_id=call.correlation_id)
    return Reply(question_json(question))


@routes.post("/questions/{question_id}/resolve", summary="Mark your question resolved",
             params=(_QID,), responses={200: "Question"}, problems=(401, 403, 404, 409))
async def resolve_question(call: Call) -> Reply:
    """Without accepting an answer (accepting one resolves it too); a closed question is a
    409 until reopened."""
    question = await call.gateway.content.questions.resolve(
        call.path["question_id"], call.user.user_id, correlation_id=call.correlation_id)
    return Reply(question_json(question))

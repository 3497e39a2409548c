"""Questions, answers, acceptance and votes (``actors.knowledge``).

The content issue's areas, insights, comments, likes, search and moderation routes are in
the modules beside this one (``areas``, ``insights``, ``social``, ``question_status``,
``search``, ``moderation``).
"""

from __future__ import annotations

from typing import Final

from actors.knowledge import STATUSES
from gateway.api import CURSOR, LIMIT, Call, Param, Reply, RouteTable, path_param
from gateway.problems import Problem
from gateway.routes.common import viewer_of
from gateway.routes.views import answer_json, question_json, vote_json

__all__ = ["routes"]

routes = RouteTable("content", "Questions, answers, acceptance and votes")

_QID: Final = path_param("question_id", "a question id (`q_...`)")
_AID: Final = path_param("answer_id", "an answer id (`a_...`)")


@routes.post("/questions", summary="Ask a question", body="QuestionRequest",
             responses={201: "Question"}, problems=(401, 403, 404, 422))
async def post_question(call: Call) -> Reply:
    """Stores the question and emits ``knowledge.question.posted`` (XP to the author)."""
    body = call.body
    question = await call.gateway.knowledge.post_question(
        call.user.user_id, title=body["title"], body=body["body"], tags=body.get("tags", ()),
        area_ids=body.get("area_ids", ()), correlation_id=call.correlation_id)
    return Reply(question_json(question), status=201,
                 headers={"Location": f"/api/v1/questions/{question.id}"})


@routes.get("/questions", summary="List questions", auth="optional", params=(
    Param(name="tag", schema={"type": "string", "maxLength": 30}, description="one tag"),
    Param(name="author_id", schema={"type": "string", "maxLength": 64},
          description="questions of one user"),
    Param(name="status", schema={"type": "string", "enum": list(STATUSES)},
          description="open, closed or resolved"),
    LIMIT, CURSOR), responses={200: "QuestionPage"}, problems=(422,))
async def list_questions(call: Call) -> Reply:
    """Newest first, by cursor; optionally of one tag, author and status."""
    query = call.query
    page = await call.gateway.knowledge.list_questions(
        tag=query.get("tag"), author_id=query.get("author_id"), status=query.get("status"),
        limit=query.get("limit", 20), cursor=query.get("cursor"))
    return Reply({"items": [question_json(q) for q in page.items],
                  "next_cursor": page.next_cursor})


@routes.get("/questions/{question_id}", summary="A question", auth="optional", params=(_QID,),
            responses={200: "Question"}, problems=(404,))
async def get_question(call: Call) -> Reply:
    """The question, with this view counted (a hidden one: its author and moderators
    only)."""
    knowledge = call.gateway.knowledge
    qid = call.path["question_id"]
    await knowledge.view(qid)
    question = await knowledge.get_question(qid, viewer=await viewer_of(call))
    if question is None:
        raise Problem("not-found", f"question_id: no question {qid!r}", field="question_id",
                      rule="exists")
    return Reply(question_json(question))


@routes.post("/questions/{question_id}/answers", summary="Answer a question", params=(_QID,),
             body="AnswerRequest", responses={201: "Answer"},
             problems=(401, 403, 404, 409, 422))
async def post_answer(call: Call) -> Reply:
    """Stores the answer and emits ``knowledge.answer.submitted`` (XP to the author, then the
    leaderboards and the author's notification socket)."""
    answer = await call.gateway.knowledge.submit_answer(
        call.path["question_id"], call.user.user_id, body=call.body["body"],
        correlation_id=call.correlation_id)
    return Reply(answer_json(answer), status=201)


@routes.get("/questions/{question_id}/answers", summary="A question's answers",
            auth="optional", params=(_QID, LIMIT, CURSOR), responses={200: "AnswerPage"},
            problems=(404, 422))
async def list_answers(call: Call) -> Reply:
    """The accepted answer first, then by score, then oldest first; by cursor."""
    page = await call.gateway.knowledge.list_answers(
        call.path["question_id"], limit=call.query.get("limit", 20),
        cursor=call.query.get("cursor"))
    return Reply({"items": [answer_json(a) for a in page.items],
                  "next_cursor": page.next_cursor})


@routes.post("/answers/{answer_id}/accept", summary="Accept an answer", params=(_AID,),
             responses={200: "Answer"}, problems=(401, 403, 404, 409))
async def accept_answer(call: Call) -> Reply:
    """Only the question's author may accept; accepting another answer moves the acceptance."""
    answer = await call.gateway.knowledge.accept_answer(
        call.path["answer_id"], call.user.user_id, correlation_id=call.correlation_id)
    return Reply(answer_json(answer))


@routes.post("/votes", summary="Vote on a question or an answer", body="VoteRequest",
             responses={200: "Vote"}, problems=(401, 403, 404, 409, 422))
async def vote(call: Call) -> Reply:
    """One vote per user and target (changeable; 0 withdraws it), never on your own content."""
    body = call.body
    result = await call.gateway.knowledge.vote(
        call.user.user_id, target_type=body["target_type"], target_id=body["target_id"],
        value=body["value"], correlation_id=call.correlation_id)
    return Reply(vote_json(result))

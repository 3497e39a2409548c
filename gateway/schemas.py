"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every request and response body.

Request schemas check shapes and types at the edge (unknown members are refused by name); the
domain's own rules (lengths, formats, who may do what) stay in ``actors/`` and come back as 422
problems naming the field and the rule. Limits quoted here are read from the domain modules, so
the document never disagrees with the code that enforces them.
"""

from __future__ import annotations

from typing import Any, Final

from actors import accounts, knowledge
from actors.rules import ACHIEVEMENT_CATEGORIES, MAX_FEATURED

__all__ = ["SCHEMAS", "page_of", "ref"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    if name not in SCHEMAS:
        raise KeyError(f"no schema {name!r}; known: {', '.join(sorted(SCHEMAS))}")
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: str) -> Schema:
    """A cursor page of ``item``s."""
    return {
        "type": "object", "required": ["items", "next_cursor"], "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": ["string", "null"],
                            "description": "pass as `cursor` for the next page; null at the end"},
        },
    }


def _object(required: list[str], properties: dict[str, Schema], *, closed: bool = True,
            description: str = "") -> Schema:
    schema: Schema = {"type": "object", "required": required, "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


_STR: Final[Schema] = {"type": "string"}
_INT: Final[Schema] = {"type": "integer"}
_BOOL: Final[Schema] = {"type": "boolean"}
_TIME: Final[Schema] = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final[Schema] = {"type": ["string", "null"], "format": "date-time"}
_NAME: Final[Schema] = {"type": "string", "maxLength": 100}
_HANDLE: Final[Schema] = {"type": "string", "pattern": "^[A-Za-z0-9_]{3,30}$"}
_ROLE: Final[Schema] = {"type": "string", "enum": list(accounts.ROLES)}
_TIER: Final[Schema] = {"type": "string", "enum": list(accounts.TIERS)}
_PREFERENCES: Final[Schema] = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "email_notifications": _BOOL, "digest": {"type": "string", "maxLength": 20},
        "theme": {"type": "string", "maxLength": 20}, "language": {"type": "string",
                                                                   "maxLength": 20},
        "timezone": {"type": "string", "maxLength": 64}, "leaderboard_opt_out": _BOOL,
    },
}
_ENTRY: Final[Schema] = _object(["rank", "user_id", "score"], {
    "rank": {"type": "integer", "minimum": 1}, "user_id": _STR,
    "score": {"type": "integer", "minimum": 0},
    "handle": {"type": ["string", "null"], "description": "null when the user is unknown"},
})

SCHEMAS: Final[dict[str, Schema]] = {
    # -- problems and operations ------------------------------------------------------------
    "Problem": _object(["type", "title", "status", "detail"], {
        "type": {"type": "string", "format": "uri",
                 "description": "stable: branch on this, never on the wording of detail"},
        "title": _STR, "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "names the bad field or the rule"},
        "correlation_id": _STR,
        "field": {"type": "string", "description": "the offending member, when one is"},
        "rule": {"type": "string", "description": "the rule it broke"},
    }, closed=False, description="RFC 9457 problem details"),
    "Health": _object(["status", "node"], {"status": {"const": "ok"}, "node": _STR}),
    "Ready": _object(["status", "checks"], {
        "status": {"const": "ready"},
        "checks": {"type": "object", "additionalProperties": _BOOL},
    }),
    "OpenApiDocument": _object(["openapi", "info", "paths"], {
        "openapi": {"type": "string"}, "info": {"type": "object"},
        "paths": {"type": "object"}}, closed=False, description="this document"),
    "Jwks": _object(["keys"], {"keys": {"type": "array", "items": _object(
        ["kty", "kid", "use", "alg", "n", "e"],
        {"kty": {"const": "RSA"}, "kid": _STR, "use": {"const": "sig"},
         "alg": {"const": "RS256"}, "n": _STR, "e": _STR})}}),
    # -- auth -----------------------------------------------------------------------
    "RegisterRequest": _object(["email", "password", "handle"], {
        "email": {"type": "string", "maxLength": 254, "format": "email"},
        "password": {"type": "string", "minLength": accounts.PASSWORD_MIN,
                     "maxLength": accounts.PASSWORD_MAX},
        "handle": _HANDLE, "first_name": _NAME, "last_name": _NAME,
    }),
    "LoginRequest": _object(["email", "password"], {
        "email": {"type": "string", "maxLength": 254},
        "password": {"type": "string", "maxLength": accounts.PASSWORD_MAX},
    }),
    "RefreshRequest": _object(["refresh_token"], {"refresh_token": {"type": "string",
                                                                    "maxLength": 4096}}),
    "VerifyEmailRequest": _object(["token"], {"token": {"type": "string", "maxLength": 256}}),
    "TokenPair": _object(["access_token", "refresh_token", "token_type", "expires_in"], {
        "access_token": _STR, "refresh_token": _STR, "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer", "description": "seconds the access token lives"},
    }),
    "Registered": _object(["user", "tokens"], {"user": {"$ref": "#/components/schemas/User"},
                                               "tokens": {"$ref":
                                                          "#/components/schemas/TokenPair"}}),
    # -- users -----------------------------------------------------------------------
    "User": _object(
        ["uid", "email", "email_verified", "handle", "first_name", "last_name", "avatar", "bio",
         "tier", "role", "preferences", "created_at", "updated_at"],
        {"uid": _STR, "email": _STR, "email_verified": _BOOL, "handle": _STR,
         "first_name": _STR, "last_name": _STR, "avatar": _STR, "bio": _STR, "tier": _TIER,
         "role": _ROLE, "preferences": {"type": "object"}, "created_at": _TIME,
         "updated_at": _TIME},
        description="the signed-in user, as they see themselves"),
    "PublicUser": _object(
        ["uid", "handle", "first_name", "last_name", "avatar", "bio", "role", "created_at"],
        {"uid": _STR, "handle": _STR, "first_name": _STR, "last_name": _STR, "avatar": _STR,
         "bio": _STR, "role": _ROLE, "created_at": _TIME},
        description="what anyone may see of a user"),
    "ProfileChanges": {**_object([], {
        "first_name": _NAME, "last_name": _NAME, "bio": {"type": "string", "maxLength": 1000},
        "avatar": {"type": "string", "maxLength": 2048,
                   "description": "an https:// URL, or '' to clear it"},
        "preferences": _PREFERENCES,
    }), "minProperties": 1},
    "RoleChange": _object(["role"], {"role": _ROLE}),
    "TierChange": _object(["tier"], {"tier": _TIER}),
    "Gamification": _object(
        ["user_id", "total_xp", "current_level", "xp_to_next_level", "daily_xp_earned",
         "daily_xp_cap", "daily_xp_reset_at", "streak", "achievements",
         "featured_achievements", "weekly_xp", "leaderboard_opt_out"],
        {"user_id": _STR, "total_xp": _INT, "current_level": _INT, "xp_to_next_level": _INT,
         "daily_xp_earned": _INT, "daily_xp_cap": _INT, "daily_xp_reset_at": _TIME,
         "streak": _object(["current", "longest", "last_activity_at", "freezes_available"], {
             "current": _INT, "longest": _INT, "last_activity_at": _TIME_OR_NULL,
             "freezes_available": _INT}),
         "achievements": {"type": "array", "items": _STR},
         "featured_achievements": {"type": "array", "items": _STR},
         "counters": {"type": "object", "additionalProperties": _INT},
         "weekly_xp": _INT, "leaderboard_opt_out": _BOOL, "updated_at": _TIME_OR_NULL},
        description="the seed's gamification profile"),
    "XpTransaction": _object(
        ["transaction_id", "user_id", "amount", "source", "timestamp"],
        {"transaction_id": _STR, "user_id": _STR, "amount": _INT, "requested_amount": _INT,
         "capped_amount": _INT, "capped": _BOOL, "source": _STR,
         "source_event_id": _STR, "daily_total": _INT, "daily_cap": _INT,
         "cap_exempt": _BOOL, "cap_day": {"type": "string", "format": "date"},
         "timestamp": _TIME, "related_entity_type": {"type": ["string", "null"]},
         "related_entity_id": {"type": ["string", "null"]}}, closed=False),
    "Quest": _object(
        ["quest_id", "title", "period", "period_id", "counter", "target", "progress",
         "completed", "xp_reward", "resets_at"],
        {"quest_id": _STR, "title": _STR, "period": {"type": "string",
                                                      "enum": ["daily", "weekly"]},
         "period_id": _STR, "counter": _STR, "target": _INT, "progress": _INT,
         "completed": _BOOL, "xp_reward": _INT, "resets_at": _TIME}),
    "QuestList": _object(["items"], {"items": {"type": "array",
                                               "items": {"$ref": "#/components/schemas/Quest"}}}),
    "FeaturedRequest": _object(["achievement_ids"], {"achievement_ids": {
        "type": "array", "items": {"type": "string", "maxLength": 64},
        "maxItems": MAX_FEATURED}}),
    "Featured": _object(["featured_achievements"], {
        "featured_achievements": {"type": "array", "items": _STR}}),
    # -- content -----------------------------------------------------------------------
    "QuestionRequest": _object(["title", "body"], {
        "title": {"type": "string", "minLength": knowledge.TITLE_MIN,
                  "maxLength": knowledge.TITLE_MAX},
        "body": {"type": "string", "minLength": knowledge.BODY_MIN,
                 "maxLength": knowledge.BODY_MAX},
        "tags": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 30}},
        "area_ids": {"type": "array", "maxItems": 20,
                     "items": {"type": "string", "maxLength": 64}},
    }),
    "Question": _object(
        ["id", "title", "slug", "body", "tags", "areas", "visibility", "created_by",
         "created_at", "updated_at", "status", "accepted_answer_id", "view_count",
         "upvote_count", "downvote_count", "score", "answer_count"],
        {"id": _STR, "title": _STR, "slug": _STR, "body": _STR,
         "tags": {"type": "array", "items": _STR}, "areas": {"type": "array", "items": _STR},
         "visibility": _STR, "created_by": _STR, "created_at": _TIME, "updated_at": _TIME,
         "status": {"type": "string", "enum": list(knowledge.STATUSES)},
         "accepted_answer_id": {"type": ["string", "null"]}, "view_count": _INT,
         "upvote_count": _INT, "downvote_count": _INT, "score": _INT, "answer_count": _INT}),
    "AnswerRequest": _object(["body"], {"body": {"type": "string",
                                                 "minLength": knowledge.BODY_MIN,
                                                 "maxLength": knowledge.BODY_MAX}}),
    "Answer": _object(
        ["id", "question_id", "body", "created_by", "created_at", "updated_at", "is_accepted",
         "upvote_count", "downvote_count", "score"],
        {"id": _STR, "question_id": _STR, "body": _STR, "created_by": _STR,
         "created_at": _TIME, "updated_at": _TIME, "is_accepted": _BOOL,
         "upvote_count": _INT, "downvote_count": _INT, "score": _INT}),
    "VoteRequest": _object(["target_type", "target_id", "value"], {
        "target_type": {"type": "string", "enum": list(knowledge.TARGET_TYPES)},
        "target_id": {"type": "string", "maxLength": 64},
        "value": {"type": "integer", "enum": [1, -1, 0],
                  "description": "1 up, -1 down, 0 withdraws the vote"},
    }),
    "Vote": _object(["voter_id", "target_type", "target_id", "value", "previous_value",
                     "changed"],
                    {"voter_id": _STR, "target_type": _STR, "target_id": _STR,
                     "value": _INT, "previous_value": _INT, "changed": _BOOL}),
    # -- gamification -----------------------------------------------------------------------
    "Achievement": _object(
        ["id", "name", "description", "category", "xp_reward", "criteria"],
        {"id": _STR, "name": _STR, "description": _STR,
         "category": {"type": "string", "enum": list(ACHIEVEMENT_CATEGORIES)},
         "xp_reward": _INT,
         "criteria": _object(["counter", "comparison", "threshold"], {
             "counter": _STR, "comparison": _STR, "threshold": _INT})}),
    "AchievementList": _object(["items"], {"items": {
        "type": "array", "items": {"$ref": "#/components/schemas/Achievement"}}}),
    "LeaderboardEntry": _ENTRY,
    "LeaderboardPage": _object(["board", "limit", "offset", "items", "next_offset"], {
        "board": _STR, "limit": _INT, "offset": _INT,
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/LeaderboardEntry"}},
        "next_offset": {"type": ["integer", "null"],
                        "description": "offset of the next page; null when this one is short"},
    }),
    "LeaderboardRank": _object(["board", "user_id", "rank", "score", "opted_out", "ranked",
                                "around"], {
        "board": _STR, "user_id": _STR, "rank": {"type": ["integer", "null"]},
        "score": {"type": ["integer", "null"]}, "opted_out": _BOOL, "ranked": _INT,
        "around": {"type": "array", "items": {"$ref": "#/components/schemas/LeaderboardEntry"}},
    }),
}

for _name in ("Question", "Answer", "XpTransaction"):
    SCHEMAS[f"{_name}Page"] = page_of(_name)


# -- the content issue: areas, insights, discussions, resources, comments, likes, search,
# moderation (appended; the limits are the domain modules') ---------------------------------
def _content_schemas() -> dict[str, Schema]:
    # Imported here so that this block stays one appended piece of the module.
    from actors import areas, content_model, moderation
    from actors.content_base import CO_AUTHORS_MAX, REASON_MAX
    from actors.content_core import VISIBILITIES
    from actors.content_targets import TARGET_TYPES
    from actors.search import SEARCHED

    ids: Schema = {"type": "array", "items": _STR}
    nullable: Schema = {"type": ["string", "null"]}
    visibility: Schema = {"type": "string", "enum": list(VISIBILITIES)}
    tags: Schema = {"type": "array", "maxItems": 20, "items": {"type": "string",
                                                               "maxLength": 30}}
    area_ids: Schema = {"type": "array", "maxItems": 20,
                        "items": {"type": "string", "maxLength": 64}}
    user_ids: Schema = {"type": "array", "maxItems": CO_AUTHORS_MAX,
                        "items": {"type": "string", "maxLength": 64}}
    title: Schema = {"type": "string", "minLength": content_model.TITLE_MIN,
                     "maxLength": content_model.TITLE_MAX}
    body: Schema = {"type": "string", "minLength": content_model.BODY_MIN,
                    "maxLength": content_model.BODY_MAX}
    insight_body: Schema = {"type": "string", "minLength": content_model.INSIGHT_BODY_MIN,
                            "maxLength": content_model.INSIGHT_BODY_MAX}
    insight_type: Schema = {"type": "string", "enum": list(content_model.INSIGHT_TYPES)}
    description: Schema = {"type": "string", "maxLength": content_model.DESCRIPTION_MAX}
    url: Schema = {"type": "string", "maxLength": 2048, "description": "http:// or https://"}
    reason: Schema = {"type": "string", "minLength": 3, "maxLength": REASON_MAX,
                      "description": "why (recorded with the action and its event)"}
    target_type: Schema = {"type": "string", "enum": list(TARGET_TYPES)}
    comment_body: Schema = {"type": "string", "minLength": content_model.COMMENT_MIN,
                            "maxLength": content_model.COMMENT_MAX}
    area_title: Schema = {"type": "string", "minLength": areas.TITLE_MIN,
                          "maxLength": areas.TITLE_MAX}
    slug: Schema = {"type": "string", "maxLength": areas.SLUG_MAX,
                    "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$"}
    details: Schema = {"type": "string", "maxLength": areas.DETAILS_MAX}
    file: Schema = _object(["name", "size_bytes", "content_type"], {
        "name": {"type": "string", "minLength": 1, "maxLength": content_model.FILE_NAME_MAX},
        "size_bytes": {"type": "integer", "minimum": 1,
                       "maximum": content_model.MAX_FILE_BYTES},
        "content_type": {"type": "string", "maxLength": 128,
                         "description": "a media type, like application/pdf"},
        "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
        "storage_key": {"type": ["string", "null"], "maxLength": 512,
                        "description": "where the bytes are in object storage"},
    }, description="a file's metadata (the bytes live in object storage)")
    common = {"created_by": _STR, "created_at": _TIME, "updated_at": _TIME, "hidden": _BOOL}

    def one_of(*names: str) -> Schema:
        return {"anyOf": [{"$ref": f"#/components/schemas/{n}"} for n in names]}

    out: dict[str, Schema] = {
        # -- areas
        "AreaRequest": _object(["title"], {
            "title": area_title, "slug": slug, "details": details, "tags": tags,
            "visibility": visibility,
            "parent_id": {"type": ["string", "null"], "maxLength": 64,
                          "description": "the parent area (null or absent: top level)"},
        }),
        "AreaChanges": {**_object([], {"title": area_title, "slug": slug, "details": details,
                                       "tags": tags, "visibility": visibility}),
                        "minProperties": 1},
        "AreaMove": _object(["new_parent_id"], {
            "new_parent_id": {"type": ["string", "null"], "maxLength": 64,
                              "description": "the new parent (null: to the top level)"}}),
        "Breadcrumb": _object(["id", "slug", "title"], {"id": _STR, "slug": _STR,
                                                        "title": _STR}),
        "Area": _object(
            ["id", "title", "slug", "parent_id", "details", "tags", "breadcrumbs", "trail",
             "depth", "visibility", "created_by", "created_at", "updated_at",
             "follower_count", "content_count", "child_count", "hidden"],
            {"id": _STR, "title": _STR, "slug": _STR, "parent_id": nullable,
             "details": _STR, "tags": ids,
             "breadcrumbs": {"type": "array", "items": {
                 "$ref": "#/components/schemas/Breadcrumb"}, "description": "root first"},
             "trail": {"type": "string", "description": "\"Programming > Architecture\""},
             "depth": _INT, "visibility": _STR, **common, "follower_count": _INT,
             "content_count": _INT, "child_count": _INT}),
        "Follow": _object(["area_id", "following", "changed"], {
            "area_id": _STR, "following": _BOOL, "changed": _BOOL}),
        # -- insights, discussions, replies, resources
        "InsightRequest": _object(["title", "body"], {
            "title": title, "body": insight_body, "insight_type": insight_type, "tags": tags,
            "area_ids": area_ids, "co_authors": user_ids, "visibility": visibility}),
        "InsightChanges": {**_object([], {
            "title": title, "body": insight_body, "insight_type": insight_type, "tags": tags,
            "area_ids": area_ids, "co_authors": user_ids, "visibility": visibility}),
            "minProperties": 1},
        "CoAuthors": _object(["co_authors"], {"co_authors": user_ids}),
        "FeaturedFlag": _object(["featured"], {"featured": _BOOL}),
        "Insight": _object(
            ["id", "title", "slug", "body", "insight_type", "tags", "areas", "co_authors",
             "visibility", "status", "created_by", "created_at", "updated_at", "published_at",
             "view_count", "like_count", "comment_count", "estimated_read_time_minutes",
             "featured", "hidden"],
            {"id": _STR, "title": _STR, "slug": _STR, "body": _STR, "insight_type": _STR,
             "tags": ids, "areas": ids, "co_authors": ids, "visibility": _STR,
             "status": {"type": "string", "enum": ["draft", "published"]}, **common,
             "published_at": _TIME_OR_NULL, "view_count": _INT, "like_count": _INT,
             "comment_count": _INT, "estimated_read_time_minutes": _INT, "featured": _BOOL}),
        "DiscussionRequest": _object(["title", "body"], {
            "title": title, "body": body, "tags": tags, "area_ids": area_ids,
            "visibility": visibility}),
        "DiscussionChanges": {**_object([], {
            "title": title, "body": body, "tags": tags, "area_ids": area_ids,
            "visibility": visibility}), "minProperties": 1},
        "Discussion": _object(
            ["id", "title", "slug", "body", "tags", "areas", "visibility", "status",
             "created_by", "created_at", "updated_at", "last_activity_at", "reply_count",
             "view_count", "like_count", "comment_count", "hidden"],
            {"id": _STR, "title": _STR, "slug": _STR, "body": _STR, "tags": ids,
             "areas": ids, "visibility": _STR,
             "status": {"type": "string", "enum": ["open", "closed"]}, **common,
             "last_activity_at": _TIME, "reply_count": _INT, "view_count": _INT,
             "like_count": _INT, "comment_count": _INT}),
        "ReplyRequest": _object(["body"], {
            "body": body, "parent_reply_id": {"type": ["string", "null"], "maxLength": 64,
                                              "description": "the reply answered (absent: "
                                                             "the discussion itself)"}}),
        "ReplyChanges": _object(["body"], {"body": body}),
        "DiscussionReply": _object(
            ["id", "discussion_id", "parent_reply_id", "depth", "path", "body", "created_by",
             "created_at", "updated_at", "reply_count", "like_count", "hidden", "deleted"],
            {"id": _STR, "discussion_id": _STR, "parent_reply_id": nullable, "depth": _INT,
             "path": {"type": "string", "description": "sorts the thread depth first"},
             "body": {"type": "string", "description": "empty when withdrawn or withheld"},
             **common, "reply_count": _INT, "like_count": _INT, "deleted": _BOOL}),
        "ResourceRequest": _object(["title", "resource_type"], {
            "title": title, "resource_type": {"type": "string",
                                              "enum": list(content_model.RESOURCE_TYPES)},
            "url": {**url, "description": "a link resource's address"},
            "file": {**file, "description": "a file resource's metadata"},
            "description": description, "tags": tags, "area_ids": area_ids,
            "visibility": visibility}),
        "ResourceChanges": {**_object([], {
            "title": title, "description": description, "url": url, "tags": tags,
            "area_ids": area_ids, "visibility": visibility}), "minProperties": 1},
        "FileInfo": file,
        "Resource": _object(
            ["id", "title", "slug", "description", "resource_type", "url", "file", "tags",
             "areas", "visibility", "created_by", "created_at", "updated_at", "view_count",
             "like_count", "comment_count", "download_count", "hidden"],
            {"id": _STR, "title": _STR, "slug": _STR, "description": _STR,
             "resource_type": {"type": "string", "enum": list(content_model.RESOURCE_TYPES)},
             "url": nullable,
             "file": {"anyOf": [{"$ref": "#/components/schemas/FileInfo"}, {"type": "null"}]},
             "tags": ids, "areas": ids, "visibility": _STR, **common, "view_count": _INT,
             "like_count": _INT, "comment_count": _INT, "download_count": _INT}),
        # -- comments, likes, views
        "CommentRequest": _object(["target_type", "target_id", "body"], {
            "target_type": target_type, "target_id": {"type": "string", "maxLength": 64},
            "body": comment_body}),
        "CommentChanges": _object(["body"], {"body": comment_body}),
        "Comment": _object(
            ["id", "target_type", "target_id", "body", "created_by", "created_at",
             "updated_at", "like_count", "hidden"],
            {"id": _STR, "target_type": _STR, "target_id": _STR,
             "body": {"type": "string", "description": "empty when withheld (hidden)"},
             **common, "like_count": _INT}),
        "Like": _object(["target_type", "target_id", "liked", "changed"], {
            "target_type": _STR, "target_id": _STR, "liked": _BOOL,
            "changed": {"type": "boolean", "description": "false: it already was so"}}),
        "ViewRequest": _object(["target_type", "target_id"], {
            "target_type": {"type": "string",
                            "enum": ["question", "insight", "discussion", "resource"]},
            "target_id": {"type": "string", "maxLength": 64}}),
        "QuestionClose": _object([], {"reason": {"type": "string", "maxLength": REASON_MAX}}),
        "ContentItem": _object(["content_type", "item"], {
            "content_type": {"type": "string",
                             "enum": ["question", "insight", "discussion", "resource"]},
            "item": one_of("Question", "Insight", "Discussion", "Resource")}),
        # -- search
        "SearchResult": _object(["content_type", "score", "item"], {
            "content_type": {"type": "string", "enum": list(SEARCHED)},
            "score": {"type": "number", "description": "relevance: higher is better"},
            "item": one_of("Area", "Question", "Insight")}),
        # -- moderation
        "ReportRequest": _object(["target_type", "target_id", "reason"], {
            "target_type": target_type, "target_id": {"type": "string", "maxLength": 64},
            "reason": {"type": "string", "enum": list(moderation.REPORT_REASONS)},
            "details": {"type": "string", "maxLength": moderation.DETAILS_MAX}}),
        "Report": _object(
            ["id", "case_id", "target_type", "target_id", "reporter_id", "reason", "details",
             "created_at"],
            {"id": _STR, "case_id": _STR, "target_type": _STR, "target_id": _STR,
             "reporter_id": _STR, "reason": _STR, "details": _STR, "created_at": _TIME}),
        "Case": _object(
            ["id", "target_type", "target_id", "author_id", "status", "round",
             "report_count", "reasons", "opened_at", "last_reported_at", "resolution",
             "resolved_by", "resolved_at", "note"],
            {"id": _STR, "target_type": _STR, "target_id": _STR, "author_id": _STR,
             "status": {"type": "string", "enum": list(moderation.CASE_STATUSES)},
             "round": _INT, "report_count": _INT,
             "reasons": {"type": "object", "additionalProperties": _INT},
             "opened_at": _TIME, "last_reported_at": _TIME, "resolution": nullable,
             "resolved_by": nullable, "resolved_at": _TIME_OR_NULL, "note": _STR},
            description="the reports on one piece of content"),
        "CaseResolution": {**_object(["resolution"], {
            "resolution": {"type": "string", "enum": list(moderation.RESOLUTIONS)},
            "action": {"type": "string", "enum": list(moderation.CASE_ACTIONS),
                       "description": "act on the content first (with resolution actioned)"},
            "note": {"type": "string", "maxLength": REASON_MAX,
                     "description": "the reason (required with an action)"}}),
            "if": {"required": ["action"]}, "then": {"required": ["note"]}},
        "ModerationReason": _object(["reason"], {"reason": reason}),
        "ModerationOutcome": _object(
            ["action", "target_type", "target_id", "moderator_id", "reason", "removed"],
            {"action": _STR, "target_type": _STR, "target_id": _STR, "moderator_id": _STR,
             "reason": _STR, "removed": {"type": "integer",
                                         "description": "documents deleted (0 unless "
                                                        "delete)"}}),
        "ModerationAction": _object(
            ["id", "action", "target_type", "target_id", "author_id", "moderator_id",
             "reason", "at"],
            {"id": _STR, "action": _STR, "target_type": _STR, "target_id": _STR,
             "author_id": _STR, "moderator_id": _STR, "reason": _STR, "at": _TIME},
            description="a row of the moderation audit log"),
        "SuspendRequest": _object(["reason"], {
            "reason": reason, "until": {"type": "string", "format": "date-time",
                                        "description": "RFC 3339 with an offset; absent: "
                                                       "until reinstated"}}),
        "Suspension": _object(
            ["user_id", "handle", "role", "suspended", "by", "reason", "at", "until"],
            {"user_id": _STR, "handle": _STR, "role": _ROLE, "suspended": _BOOL,
             "by": nullable, "reason": nullable, "at": _TIME_OR_NULL,
             "until": _TIME_OR_NULL}),
    }
    return out


SCHEMAS.update(_content_schemas())
for _name in ("Area", "Insight", "Discussion", "DiscussionReply", "Resource", "Comment",
              "ContentItem", "SearchResult", "Case", "Report", "ModerationAction"):
    SCHEMAS[f"{_name}Page"] = page_of(_name)


# -- billing (gateway/routes/billing.py) --------------------------------------------------------
_QUOTA: Final[Schema] = _object(["used", "limit", "period", "resets_at"], {
    "used": {"type": "integer", "minimum": 0},
    "limit": {"type": ["integer", "null"], "minimum": 0, "description": "null = unlimited"},
    "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$",
               "description": "the UTC calendar month counted"},
    "resets_at": _TIME,
})
SCHEMAS.update({
    "QuotaUsage": _QUOTA,
    "Subscription": _object(
        ["user_id", "tier", "plan_tier", "status", "billing_cycle", "current_period_end",
         "access_until", "quotas"], {
            "user_id": _STR,
            "tier": {**_TIER, "description": "the tier in force now (limits and quotas)"},
            "plan_tier": {**_TIER, "description": "the tier subscribed to (a canceled plan "
                                                  "keeps it until its period ends)"},
            "status": {"type": "string", "enum": ["active", "trialing", "past_due",
                                                  "canceled"]},
            "billing_cycle": {"type": "string", "enum": ["monthly", "annual"]},
            "polar_subscription_id": {"type": ["string", "null"]},
            "current_period_start": _TIME_OR_NULL, "current_period_end": _TIME_OR_NULL,
            "cancel_at": _TIME_OR_NULL, "canceled_at": _TIME_OR_NULL,
            "access_until": {**_TIME_OR_NULL, "description": "when the paid tier lapses "
                                                             "unless renewed (null: it does "
                                                             "not)"},
            "updated_at": _TIME_OR_NULL,
            "quotas": _object(["questions", "insights", "resource_uploads"], {
                kind: {"$ref": "#/components/schemas/QuotaUsage"}
                for kind in ("questions", "insights", "resource_uploads")}),
        }),
    "WebhookReceipt": _object(["webhook_id", "outcome"], {
        "webhook_id": _STR,
        "outcome": {"type": "string", "enum": ["applied", "duplicate", "ignored"],
                    "description": "duplicate: delivered before, nothing done; ignored: "
                                   "recorded, nothing to change (reason says why)"},
        "reason": _STR,
    }),
})

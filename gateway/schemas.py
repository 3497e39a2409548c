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

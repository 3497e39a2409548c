"""Routes as data: each REST route is declared once, and served and documented from that.

```python
routes = RouteTable("questions")

@routes.post("/questions", summary="Ask a question", auth="user", rate="write",
             body="QuestionRequest", responses={201: "Question"}, problems=(422,))
async def post_question(call: Call) -> Reply:
    question = await call.gateway.knowledge.post_question(call.user.user_id, **call.body)
    return Reply(to_json(question), status=201)
```

A :class:`Route` names its method, path (OpenAPI style, ``{question_id}``), who may call it
(``auth``: ``none``, ``optional`` or ``user``, plus ``role`` for moderator/admin routes), its
rate-limit class, its query parameters, body and response schemas (names in
:data:`gateway.schemas.SCHEMAS`) and the problems it may answer. :func:`install` serves every
route on the app through one dispatcher: authenticate, rate-limit, validate path, query and body,
call the handler, render JSON; :mod:`gateway.openapi` writes the document from the same data.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal, cast

import attrs
import structlog
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from quart import Request, Response, g, request
from quart_trio import QuartTrio

from gateway.auth import Principal, client_address, has_role, principal_from_header, require_user
from gateway.context import Gateway
from gateway.problems import Problem, json_response
from gateway.ratelimit import Decision, add_headers, headers_for
from gateway.schemas import SCHEMAS
from gateway.tiers import RouteClass

__all__ = [
    "API_PREFIX",
    "CURSOR",
    "LIMIT",
    "Call",
    "Param",
    "Reply",
    "Route",
    "RouteTable",
    "current_request",
    "install",
    "path_param",
]

API_PREFIX: Final = "/api/v1"
Auth = Literal["none", "optional", "user"]
Handler = Callable[["Call"], Awaitable["Reply"]]
_log = structlog.get_logger("tektree.gateway")


@attrs.frozen(kw_only=True)
class Param:
    """A query or path parameter: its JSON Schema (``integer`` and ``boolean`` are parsed from
    the text of the query), whether it is required, and what it means."""

    name: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False
    where: Literal["query", "path"] = "query"


def path_param(name: str, description: str, pattern: str = "^[A-Za-z0-9_:.-]{1,128}$") -> Param:
    """A path segment parameter (an id, a handle, a board name)."""
    return Param(name=name, schema={"type": "string", "pattern": pattern},
                 description=description, required=True, where="path")


#: The two parameters of every cursor listing.
LIMIT: Final = Param(name="limit", schema={"type": "integer", "minimum": 1, "maximum": 100,
                                           "default": 20},
                     description="page size (at most 100)")
CURSOR: Final = Param(name="cursor", schema={"type": "string", "maxLength": 512},
                      description="the next_cursor of the previous page")


@attrs.frozen
class Reply:
    """What a handler returns: a JSON body (``None`` for 204; a Quart ``Response`` is sent as
    it is), its status and extra headers."""

    body: Any = None
    status: int = attrs.field(default=200, kw_only=True)
    headers: Mapping[str, str] = attrs.field(factory=dict, kw_only=True)


@attrs.frozen(kw_only=True)
class Route:
    """One REST route (see the module docstring)."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth
    rate: RouteClass | None
    role: str | None = None
    params: tuple[Param, ...] = ()
    body: str | None = None
    responses: Mapping[int, str | None] = attrs.field(factory=dict)
    problems: tuple[int, ...] = ()
    description: str = ""
    prefix: str = API_PREFIX
    media_type: str = "application/json"

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def full_path(self) -> str:
        return self.prefix + self.path

    def quart_rule(self) -> str:
        rule = self.full_path
        for param in self.params:
            if param.where == "path":
                rule = rule.replace("{" + param.name + "}", f"<{param.name}>")
        return rule


class RouteTable:
    """The routes of one resource (one module under ``gateway/routes``)."""

    def __init__(self, tag: str, description: str = "", *, prefix: str = API_PREFIX) -> None:
        self.tag = tag
        self.description = description
        self.prefix = prefix
        self.routes: list[Route] = []

    def route(self, method: str, path: str, *, summary: str, auth: Auth = "user",
              rate: RouteClass | None = "read", role: str | None = None,
              params: Sequence[Param] = (), body: str | None = None,
              responses: Mapping[int, str | None] | None = None,
              problems: Sequence[int] = (), description: str = "",
              media_type: str = "application/json") -> Callable[[Handler], Handler]:
        for name in [body, *(responses or {}).values()]:
            if name is not None and name not in SCHEMAS:
                raise KeyError(f"{method} {path}: no schema {name!r} in gateway.schemas")

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(
                method=method, path=path, handler=handler, summary=summary, tag=self.tag,
                auth=auth, rate=rate, role=role, params=tuple(params), body=body,
                responses=dict({200: None} if responses is None else responses),
                problems=tuple(problems), prefix=self.prefix, media_type=media_type,
                description=description or (handler.__doc__ or "").strip()))
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **{"rate": "write", **kw})

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **{"rate": "write", **kw})

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **{"rate": "write", **kw})


@attrs.define
class Call:
    """One request, as a handler sees it: validated, authenticated, rate-limited."""

    gateway: Gateway
    route: Route
    principal: Principal | None
    path: dict[str, str]
    query: dict[str, Any]
    body: Any
    correlation_id: str

    @property
    def user(self) -> Principal:
        """The caller (the route's ``auth = "user"`` guarantees one)."""
        return require_user(self.principal)

    async def current_role(self) -> str:
        """The caller's role now, read from the accounts (not the token's)."""
        account = await self.gateway.accounts.get(self.user.user_id)
        if account is None:
            raise Problem("invalid-token", "the token's user no longer exists",
                          reason="unknown_user")
        return account.role

    async def require_role(self, needed: str) -> None:
        """403 unless the caller's current role is at least ``needed``."""
        role = await self.current_role()
        if not has_role(role, needed):
            raise Problem("forbidden", f"this needs the {needed} role; you are {role}",
                          rule="role", role=role, required_role=needed)


# -- validation -----------------------------------------------------------------------
def _allowed(error: ValidationError) -> list[str]:
    schema = error.schema
    return list(schema.get("properties", {})) if isinstance(schema, Mapping) else []


def _field_of(error: ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    required = error.validator_value if isinstance(error.validator_value, list) else []
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = next((p for p in required if p not in error.instance), "")
        parts.append(f".{missing}")
    elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(_allowed(error))
        extra = next((p for p in error.instance if p not in allowed), "")
        parts.append(f".{extra}")
    field = "".join(parts).lstrip(".")
    return field or "body"


def _problem_of(error: ValidationError, what: str) -> Problem:
    field = _field_of(error)
    if error.validator == "additionalProperties":
        detail = f"{field}: unknown member; allowed: {', '.join(_allowed(error))}"
    elif error.validator == "required":
        detail = f"{field}: required"
    else:
        detail = f"{field}: {error.message}"
    return Problem("validation-failed", f"{what} {detail}", field=field,
                   rule=str(error.validator))


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    root = {**schema, "components": {"schemas": SCHEMAS}}
    return Draft202012Validator(root)


def _body_validator(name: str) -> Draft202012Validator:
    # The schema itself at the root (a root "$ref" costs a resolution on every request).
    return _validator(SCHEMAS[name])


def _parse_param(param: Param, raw: str) -> Any:
    kind = param.schema.get("type")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise Problem("invalid-parameter", f"{param.name}: {raw!r} is not an integer",
                          field=param.name, rule="type") from None
    if kind == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise Problem("invalid-parameter", f"{param.name}: {raw!r} is not true or false",
                          field=param.name, rule="type")
        return raw.lower() in ("true", "1")
    return raw


@attrs.frozen
class _Check:
    """One parameter's check: its validator, and for a string that only has a ``pattern``
    (the path segments) that pattern compiled, matched as jsonschema does (``re.search``)
    without a validator run; the validator still words a refusal."""

    param: Param
    validator: Draft202012Validator
    pattern: re.Pattern[str] | None

    def ok(self, value: Any) -> bool:
        if self.pattern is not None:
            return isinstance(value, str) and self.pattern.search(value) is not None
        return next(iter(self.validator.iter_errors(value)), None) is None


def _check(param: Param) -> _Check:
    schema = dict(param.schema)
    pattern = schema.get("pattern")
    plain = schema.keys() == {"type", "pattern"} and schema["type"] == "string"
    return _Check(param, _validator(schema), re.compile(str(pattern)) if plain else None)


@attrs.frozen
class _Compiled:
    route: Route
    body: Draft202012Validator | None
    params: tuple[_Check, ...]
    query_names: frozenset[str]


def _compile(route: Route) -> _Compiled:
    return _Compiled(route, None if route.body is None else _body_validator(route.body),
                     tuple(_check(p) for p in route.params),
                     frozenset(p.name for p in route.params if p.where == "query"))


#: The query of a request without one (``request.args`` is not parsed then).
_NO_ARGS: Final[Mapping[str, str]] = {}


def _params(compiled: _Compiled, view_args: Mapping[str, Any],
            args: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    path: dict[str, str] = {}
    query: dict[str, Any] = {}
    known = compiled.query_names
    for name in args:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise Problem("invalid-parameter", f"{name}: unknown query parameter; "
                          f"allowed: {allowed}", field=name, rule="unknown")
    for check in compiled.params:
        param = check.param
        source = view_args if param.where == "path" else args
        if param.name not in source:
            if param.required:
                raise Problem("invalid-parameter", f"{param.name}: required", field=param.name,
                              rule="required")
            continue
        value = _parse_param(param, str(source[param.name]))
        if not check.ok(value):
            error = next(iter(check.validator.iter_errors(value)))
            raise Problem("invalid-parameter", f"{param.name}: {error.message}",
                          field=param.name, rule=str(error.validator))
        (path if param.where == "path" else query)[param.name] = value
    return path, query


async def _body(compiled: _Compiled) -> Any:
    if compiled.body is None:
        return None
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem("unsupported-media-type",
                      f"send the body as application/json, not {mimetype or 'nothing'!r}",
                      field="Content-Type", rule="media_type")
    raw = await request.get_data(as_text=False)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem("invalid-json", f"body: {exc}", field="body", rule="json") from None
    error = next(iter(compiled.body.iter_errors(body)), None)
    if error is not None:
        raise _problem_of(error, "body")
    return body


# -- dispatch -----------------------------------------------------------------------
async def _limit(gateway: Gateway, route: Route, principal: Principal | None,
                 req: Request) -> Decision | None:
    if route.rate is None or not gateway.options.rate_limits:
        return None
    if principal is None or route.rate == "auth":
        hops = gateway.options.trusted_proxy_hops
        subject = "ip:" + client_address(
            req.remote_addr, req.headers.get("X-Forwarded-For") if hops > 0 else None, hops)
        quota = gateway.rates.anonymous()
        key = f"{subject}:{route.rate}"
    else:
        subject = "user:" + principal.user_id
        tier = await gateway.tiers.tier_of(principal.user_id)
        quota = gateway.rates.for_tier(tier)
        # The tier is part of the key: after an upgrade the user starts on a full bucket of
        # the new tier at once, not on the old tier's drained one.
        key = f"{subject}:{tier}:{route.rate}"
    if quota is None:
        return None
    decision = await gateway.limiter.take(key, quota)
    if not decision.allowed:
        gateway.metrics.limited.labels(route.rate).inc()
        raise Problem(
            "rate-limited",
            f"rate limit of the {route.rate} routes reached for {subject.split(':')[0]} "
            f"requests; retry in {headers_for(decision)['Retry-After']} s",
            headers=headers_for(decision), rule="rate_limit", route_class=route.rate)
    return decision


def _dispatcher(gateway: Gateway, compiled: _Compiled) -> Callable[..., Awaitable[Response]]:
    route = compiled.route
    latency = gateway.metrics.latency.labels(route.full_path)
    counted: dict[int, Any] = {}  # status -> the requests counter's child (labels() once)

    def count(status: int) -> None:
        child = counted.get(status)
        if child is None:
            child = counted[status] = gateway.metrics.requests.labels(
                route.method, route.full_path, str(status))
        child.inc()

    async def dispatch(**view_args: Any) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            req = current_request()
            principal = None
            if route.auth != "none":
                principal = principal_from_header(gateway.tokens,
                                                  req.headers.get("Authorization"))
                if route.auth == "user":
                    require_user(principal)
            decision = await _limit(gateway, route, principal, req)
            path, query = _params(compiled, view_args,
                                  req.args if req.query_string else _NO_ARGS)
            body = await _body(compiled)
            call = Call(gateway=gateway, route=route, principal=principal, path=path,
                        query=query, body=body, correlation_id=request_correlation_id())
            if route.role is not None:
                await call.require_role(route.role)
            reply = await route.handler(call)
            # fresh: a response made here, no RateLimit-* header on it yet
            fresh = not isinstance(reply.body, Response)
            response: Response
            if isinstance(reply.body, Response):
                response = reply.body
            elif reply.body is None:
                response = Response("", status=reply.status)
            else:
                response = json_response(reply.body, reply.status)
            if reply.headers:
                response.headers.update(reply.headers)
                fresh = False
            if decision is not None:
                if fresh:
                    add_headers(response.headers, decision)
                else:
                    response.headers.update(headers_for(decision))
            status = response.status_code
            return response
        except Problem as problem:
            status = problem.status
            raise
        finally:
            count(status)
            latency.observe(time.perf_counter() - started)

    dispatch.__name__ = route.operation_id
    return dispatch


def current_request() -> Request:
    """The request being served, itself: one look-up through Quart's ``request`` proxy, where
    each ``request.x`` costs one."""
    found: Request = cast(Any, request)._get_current_object()
    return found


def request_correlation_id() -> str:
    """The correlation id of the request being served (set by the app before dispatch)."""
    value: str = g.correlation_id
    return value


def install(app: QuartTrio, gateway: Gateway, routes: Sequence[Route]) -> None:
    """Serve ``routes`` on ``app`` (one Quart rule per route)."""
    seen: set[tuple[str, str]] = set()
    for route in routes:
        key = (route.method, route.full_path)
        if key in seen:
            raise ValueError(f"route {route.method} {route.full_path} is declared twice")
        seen.add(key)
        compiled = _compile(route)
        app.add_url_rule(route.quart_rule(), endpoint=f"{route.tag}:{route.operation_id}",
                         view_func=_dispatcher(gateway, compiled), methods=[route.method])
    _log.debug("routes installed", count=len(routes))

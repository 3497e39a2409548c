"""The OpenAPI document: valid 3.1, and complete (every route the app serves, with schemas)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gwkit import open_app
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.problems import PROBLEM_TYPES
from gateway.schemas import SCHEMAS

_BODY_METHODS = {"post", "put", "patch"}


async def _document(tmp_path: Path) -> tuple[dict[str, Any], Any]:
    async with open_app(tmp_path) as h:
        response = await h.client.get("/openapi.json")
        assert response.status_code == 200
        return await response.get_json(), h.app


async def test_the_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    document, _ = await _document(tmp_path)
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"
    for name, schema in SCHEMAS.items():
        Draft202012Validator.check_schema(schema), name


async def test_every_served_route_is_documented_with_its_schemas(tmp_path: Path) -> None:
    document, app = await _document(tmp_path)
    paths = document["paths"]
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            served.add((path, method.lower()))
            assert path in paths and method.lower() in paths[path], f"{method} {path}"
            operation = paths[path][method.lower()]
            names = {p["name"] for p in operation["parameters"] if "name" in p}
            assert set(re.findall(r"{([a-z_]+)}", path)) <= names, f"{method} {path}"
            successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
            problems = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
            assert successes or set(problems) >= {"503"}, f"{method} {path}: no response"
            for status, response in successes.items():
                if status != "204":
                    assert response.get("content"), f"{method} {path} {status}: no content"
                    for media in response["content"].values():
                        assert media["schema"], f"{method} {path} {status}: no schema"
            for response in problems.values():
                (media,) = response["content"].values()
                assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
            if method.lower() in _BODY_METHODS and "requestBody" in operation:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert schema["$ref"].split("/")[-1] in SCHEMAS
    documented = {(p, m) for p, item in paths.items() for m in item}
    assert documented == served  # nothing documented that is not served either
    assert len(served) >= 32


async def test_every_reference_resolves_and_every_problem_type_is_listed(
        tmp_path: Path) -> None:
    document, _ = await _document(tmp_path)
    text = str(document)
    for ref in set(re.findall(r"#/components/([a-z]+)/([A-Za-z-]+)", text)):
        assert ref[1] in document["components"][ref[0]], ref
    described = " ".join(r["description"] for item in document["paths"].values()
                         for op in item.values() for r in op["responses"].values())
    missing = [slug for slug in PROBLEM_TYPES
               if slug not in described and slug not in ("http-error", "method-not-allowed")]
    assert missing == [], missing

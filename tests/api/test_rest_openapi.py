"""The OpenAPI document describes exactly the routes and methods Django serves under
/api/v1/, its references resolve, and real answers fit the schemas it gives them."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from jsonschema import Draft202012Validator

from tests.api.test_rest import call, world

CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def served(patterns=None, prefix: str = "") -> dict[str, frozenset[str]]:
    """Each /api/v1/ route as an OpenAPI path, with the methods its view answers."""
    found = {}
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found.update(served(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            path = "/" + CONVERTER.sub(r"{\1}", route)
            found[path] = frozenset(m.lower() for m in pattern.callback.methods)
    return found


async def document() -> dict:
    response = await call("GET", "/openapi.json")  # no token needed
    assert response.status_code == 200
    return response.json()


async def test_the_document_names_every_route_and_method_and_no_other():
    doc = await document()
    assert doc["openapi"].startswith("3.1")
    described = {path: frozenset(operations) for path, operations in doc["paths"].items()}
    assert described == served()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_every_reference_resolves_and_every_schema_is_json_schema():
    doc = await document()
    for ref in set(refs(doc)):
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, ref
            node = node[part]
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def fits(doc: dict, response, path: str, method: str, status: int) -> None:
    declared = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in declared:
        declared = doc["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
    schema = declared["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    validator.validate(json.loads(response.content))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_runs", "thread_connections", "clear_cache")
async def test_real_answers_fit_the_documents_schemas(sim):
    doc = await document()
    w = await world()
    author = w.secrets["author"]
    thread_path = "/api/v1/threads/{thread_id}"
    made = await call("POST", "/threads", author, {"agent_id": w.agent.pk})
    fits(doc, made, "/api/v1/threads", "post", 201)
    fits(doc, await call("GET", "/threads", author), "/api/v1/threads", "get", 200)
    fits(doc, await call("GET", f"/threads/{w.thread.pk}", author), thread_path, "get", 200)
    fits(doc, await call("GET", "/threads/999999", author), thread_path, "get", 404)
    fits(doc, await call("GET", "/agents", author), "/api/v1/agents", "get", 200)
    turn = await call("POST", f"/threads/{w.thread.pk}/messages", author, {"content": "Hi"})
    fits(doc, turn, thread_path + "/messages", "post", 200)
    listed = await call("GET", f"/threads/{w.thread.pk}/messages", author)
    fits(doc, listed, thread_path + "/messages", "get", 200)
    run_id = turn.json()["run"]["run_id"]
    events = await call("GET", f"/threads/{w.thread.pk}/runs/{run_id}/events", author)
    fits(doc, events, thread_path + "/runs/{run_id}/events", "get", 200)
    fits(doc, await call("GET", "/usage", w.secrets["owner"]), "/api/v1/usage", "get", 200)
    fits(doc, await call("GET", "/usage", author), "/api/v1/usage", "get", 403)

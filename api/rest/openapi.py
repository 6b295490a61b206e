"""The JSON API's OpenAPI 3.1 document, written by hand: nine routes do not need a schema
generator, and a test holds its paths to the routes Django serves, both ways."""

from __future__ import annotations

from typing import Any

from api.errors import STATUS

BASE = "/api/v1"
JSON = "application/json"
SSE = "text/event-stream"
RUN_EVENT_TYPES = [
    "run.started",
    "delta",
    "tool.started",
    "tool.finished",
    "sources",
    "run.completed",
    "run.stopped",
    "error",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{description}"}


def _page(item: str, cursor: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "next"],
        "properties": {
            "data": {"type": "array", "items": _ref(item)},
            "next": {**cursor, "description": "The cursor of the next page; null on the last."},
        },
    }


THREAD_ID = {"name": "thread_id", "in": "path", "required": True, "schema": {"type": "integer"}}
RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
}
READ_ERRORS = {"401": _error("Unauthenticated"), "403": _error("Forbidden")}
THREAD_ERRORS = {**READ_ERRORS, "404": _error("NotFound")}


def _schemas(max_message_chars: int) -> dict[str, Any]:
    usage_totals = {
        "type": "object",
        "properties": {
            "calls": {"type": "integer"},
            "failed_calls": {"type": "integer"},
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cached_tokens": {"type": "integer"},
            "cost": {"type": "string", "description": "US dollars, a decimal string."},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": sorted(STATUS)},
                        "message": {"type": "string"},
                    },
                }
            },
        },
        "Agent": {
            "type": "object",
            "required": ["id", "name", "provider", "model"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "provider": {"type": "string"},
                "model": {"type": "string"},
                "tools": {"type": "array", "items": {"type": "string"}},
                "rag_enabled": {"type": "boolean"},
            },
        },
        "Thread": {
            "type": "object",
            "required": ["id", "title", "agent", "status", "writable", "created_at"],
            "properties": {
                "id": {"type": "integer"},
                "title": {"type": "string"},
                "agent": {
                    "type": "object",
                    "properties": {
                        "id": {"type": ["integer", "null"]},
                        "name": {"type": ["string", "null"]},
                    },
                },
                "status": {"type": "string", "enum": ["open", "handed_off", "archived"]},
                "author_id": {"type": ["integer", "null"]},
                "writable": {
                    "type": "boolean",
                    "description": "Whether this token's user wrote the thread (and may post).",
                },
                "created_at": {"type": "string", "format": "date-time"},
                "last_activity_at": {"type": "string", "format": "date-time"},
            },
        },
        "Usage": {
            "type": ["object", "null"],
            "properties": {
                "input_tokens": {"type": "integer"},
                "output_tokens": {"type": "integer"},
                "cost": {"type": "string"},
                "calls": {"type": "integer"},
            },
        },
        "Message": {
            "type": "object",
            "required": ["id", "role", "content", "status", "sources", "usage", "created_at"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "role": {"type": "string", "enum": ["user", "assistant"]},
                "content": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": ["streaming", "complete", "stopped", "error", "interrupted"],
                },
                "client_id": {"type": "string"},
                "parent_id": {
                    "type": ["string", "null"],
                    "description": "The message this one follows (conversations are trees).",
                },
                "run_id": {"type": ["string", "null"], "format": "uuid"},
                "sources": {"type": "array", "items": {"type": "object"}},
                "usage": _ref("Usage"),
                "error_code": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "NewThread": {
            "type": "object",
            "required": ["agent_id"],
            "properties": {
                "agent_id": {"type": "integer"},
                "title": {"type": "string", "maxLength": 200},
            },
        },
        "NewMessage": {
            "type": "object",
            "required": ["content"],
            "properties": {
                "content": {"type": "string", "minLength": 1, "maxLength": max_message_chars},
                "client_id": {"type": "string", "maxLength": 64},
                "agent_id": {
                    "type": "integer",
                    "description": "Answer with this agent of the group, from now on.",
                },
                "stream": {
                    "type": "boolean",
                    "default": False,
                    "description": "Answer with Server-Sent Events instead of waiting.",
                },
            },
        },
        "Run": {
            "type": "object",
            "required": ["run_id", "status", "usage", "cost"],
            "properties": {
                "run_id": {"type": "string", "format": "uuid"},
                "status": {"type": "string", "enum": ["completed", "stopped", "error"]},
                "usage": {
                    "type": ["object", "null"],
                    "properties": {
                        "input_tokens": {"type": "integer"},
                        "output_tokens": {"type": "integer"},
                    },
                },
                "cost": {"type": ["string", "null"]},
                "error": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        "Turn": {
            "type": "object",
            "required": ["question", "answer", "run"],
            "properties": {
                "question": _ref("Message"),
                "answer": {"oneOf": [_ref("Message"), {"type": "null"}]},
                "run": _ref("Run"),
            },
        },
        "RunEvent": {
            "type": "object",
            "required": ["type", "run_id", "seq"],
            "description": "A run event as docs/protocol.md describes it.",
            "properties": {
                "type": {"type": "string", "enum": RUN_EVENT_TYPES},
                "run_id": {"type": "string", "format": "uuid"},
                "seq": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": True,
        },
        "UsageReport": {
            "type": "object",
            "required": ["start", "end", "totals", "budget"],
            "properties": {
                "start": {"type": "string", "format": "date"},
                "end": {"type": "string", "format": "date"},
                "totals": usage_totals,
                "by_day": {"type": "array", "items": usage_totals},
                "by_model": {"type": "array", "items": usage_totals},
                "by_agent": {"type": "array", "items": usage_totals},
                "by_user": {"type": "array", "items": usage_totals},
                "budget": {
                    "type": "object",
                    "properties": {
                        "month": {"type": "string", "format": "date"},
                        "spent": {"type": "string"},
                        "tokens": {"type": "integer"},
                        "budget": {"type": ["string", "null"]},
                        "token_budget": {"type": ["integer", "null"]},
                        "percent": {"type": "integer"},
                        "exhausted": {"type": "boolean"},
                        "resets_on": {"type": "string", "format": "date"},
                    },
                },
            },
        },
    }


SSE_DESCRIPTION = (
    "Server-Sent Events. Each run event is `id: <seq>`, `event: <type>`, `data: <json>`; "
    "the stream ends after the run's final event (run.completed, run.stopped or error). "
    "Reconnect to the events route with `Last-Event-ID` to resume without gaps."
)


def _paths() -> dict[str, Any]:
    return {
        f"{BASE}/agents": {
            "get": {
                "summary": "The organisation's active agents",
                "security": [{"bearer": ["read"]}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"data": {"type": "array", "items": _ref("Agent")}},
                        },
                        "The agents.",
                    ),
                    **READ_ERRORS,
                },
            }
        },
        f"{BASE}/threads": {
            "get": {
                "summary": "Threads this token's user may read, newest first",
                "security": [{"bearer": ["read"]}],
                "parameters": [
                    {"name": "before", "in": "query", "schema": {"type": "integer"}},
                    LIMIT,
                ],
                "responses": {
                    "200": _json(_page("Thread", {"type": ["integer", "null"]}), "A page."),
                    "400": _error("BadRequest"),
                    **READ_ERRORS,
                },
            },
            "post": {
                "summary": "Start a thread with one of the organisation's agents",
                "security": [{"bearer": ["chat"]}],
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("NewThread")}}},
                "responses": {
                    "201": _json(_ref("Thread"), "The new thread."),
                    "400": _error("BadRequest"),
                    **THREAD_ERRORS,
                },
            },
        },
        f"{BASE}/threads/{{thread_id}}": {
            "get": {
                "summary": "One thread",
                "security": [{"bearer": ["read"]}],
                "parameters": [THREAD_ID],
                "responses": {"200": _json(_ref("Thread"), "The thread."), **THREAD_ERRORS},
            }
        },
        f"{BASE}/threads/{{thread_id}}/messages": {
            "get": {
                "summary": "The thread's messages, oldest first",
                "security": [{"bearer": ["read"]}],
                "parameters": [
                    THREAD_ID,
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    LIMIT,
                ],
                "responses": {
                    "200": _json(_page("Message", {"type": ["string", "null"]}), "A page."),
                    "400": _error("BadRequest"),
                    **THREAD_ERRORS,
                },
            },
            "post": {
                "summary": "Ask the thread's agent; wait for the answer or stream it",
                "description": "Only the thread's author may post (others get 403 read_only).",
                "security": [{"bearer": ["chat"]}],
                "parameters": [THREAD_ID],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("NewMessage")}},
                },
                "responses": {
                    "200": {
                        "description": "The run ended (`stream: false`), or its events "
                        "(`stream: true`: first `message.created`, then the run's).",
                        "content": {
                            JSON: {"schema": _ref("Turn")},
                            SSE: {"schema": {"type": "string"}, "description": SSE_DESCRIPTION},
                        },
                    },
                    "400": _error("BadRequest"),
                    "402": _error("QuotaExceeded"),
                    **THREAD_ERRORS,
                    "409": _error("Busy"),
                    "429": _error("RateLimited"),
                },
            },
        },
        f"{BASE}/threads/{{thread_id}}/stop": {
            "post": {
                "summary": "Stop the thread's run, wherever it streams",
                "security": [{"bearer": ["chat"]}],
                "parameters": [THREAD_ID],
                "responses": {
                    "202": _json({"type": "object"}, "A run was streaming: it stops."),
                    "200": _json({"type": "object"}, "Nothing was streaming."),
                    **THREAD_ERRORS,
                },
            }
        },
        f"{BASE}/threads/{{thread_id}}/runs/{{run_id}}/events": {
            "get": {
                "summary": "A run's events after `after_seq`: a JSON list, or a live SSE stream",
                "security": [{"bearer": ["read"]}],
                "parameters": [
                    THREAD_ID,
                    RUN_ID,
                    {
                        "name": "after_seq",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": {
                        "description": "With `Accept: text/event-stream` or `stream=true`, SSE "
                        "until the run's final event; else the logged events so far.",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "data": {"type": "array", "items": _ref("RunEvent")},
                                        "done": {"type": "boolean"},
                                    },
                                }
                            },
                            SSE: {"schema": {"type": "string"}, "description": SSE_DESCRIPTION},
                        },
                    },
                    "400": _error("BadRequest"),
                    **THREAD_ERRORS,
                },
            }
        },
        f"{BASE}/usage": {
            "get": {
                "summary": "The organisation's usage and budget (owners and admins)",
                "security": [{"bearer": ["read"]}],
                "parameters": [
                    {
                        "name": "start",
                        "in": "query",
                        "schema": {"type": "string", "format": "date"},
                    },
                    {"name": "end", "in": "query", "schema": {"type": "string", "format": "date"}},
                ],
                "responses": {
                    "200": _json(_ref("UsageReport"), "The usage."),
                    "400": _error("BadRequest"),
                    **READ_ERRORS,
                },
            }
        },
        f"{BASE}/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    }


def _responses() -> dict[str, Any]:
    error = {JSON: {"schema": _ref("Error")}}
    said = {
        "BadRequest": "bad_json, missing_field, empty, too_long, bad_text or invalid.",
        "Unauthenticated": "No valid token: missing, unknown, revoked, expired, or its user "
        "left the organisation. Always the same body.",
        "Forbidden": "insufficient_scope (the token's scopes), managers_only (a member asking "
        "for usage) or read_only (a thread one may read but not write).",
        "NotFound": "not_found: missing, another member's or another organisation's, alike.",
        "QuotaExceeded": "quota_exceeded: the organisation's monthly budget is used up.",
        "Busy": "busy: an answer is still being written on this thread.",
        "RateLimited": "rate_limited, with a Retry-After header in seconds.",
    }
    return {name: {"description": text, "content": error} for name, text in said.items()}


def document(*, max_message_chars: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley JSON API",
            "version": "1",
            "description": "Threads, messages and runs for programs holding an API token "
            '(docs/api.md). Errors are always `{"error": {"code", "message"}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token, `prl_…`, with the scopes "
                    "`read` and/or `chat`.",
                }
            },
            "schemas": _schemas(max_message_chars),
            "responses": _responses(),
        },
    }

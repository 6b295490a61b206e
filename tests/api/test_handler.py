"""Programs' paths go through api.handler's lean stack over ASGI, pages through the full one:
the API keeps the edge the pages have (allowed hosts, HTTPS redirect, security headers,
the refusal of unstorable characters) and none of the cookie machinery."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator

from api.handler import APIHandler, ByPath
from tests.api.test_openai_requests import bearer

# A request starts this process's runs registry (chat.runs): close it with the loop.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("clear_cache", "close_runs"),
]

HOST = [(b"host", b"testserver")]


def application():
    from config.asgi import application

    return application


async def get(app, path: str, headers=HOST):
    return await HttpCommunicator(app, "GET", path, headers=headers).get_response()


def header(response, name: str) -> str | None:
    for key, value in response["headers"]:
        if key.decode().lower() == name.lower():
            return value.decode()
    return None


async def test_an_api_request_gets_the_security_headers_and_no_cookie_machinery():
    response = await get(application(), "/api/v1/agents")
    assert response["status"] == 401
    assert json.loads(response["body"])["error"]["code"] == "unauthenticated"
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert header(response, "X-Frame-Options") == "DENY"
    assert header(response, "Referrer-Policy") == "same-origin"
    assert header(response, "Set-Cookie") is None
    assert "Cookie" not in (header(response, "Vary") or "")


async def test_a_page_still_goes_through_the_full_stack():
    response = await get(application(), "/login/")
    assert response["status"] == 200
    assert "csrftoken=" in (header(response, "Set-Cookie") or "")  # the CSRF middleware's


async def test_the_api_refuses_an_unstorable_character_and_an_unknown_host(tenant_a):
    token = (await database_sync_to_async(bearer)(tenant_a, "read"))["Authorization"]
    headers = [*HOST, (b"authorization", token.encode())]
    assert (await get(application(), "/v1/models", headers))["status"] == 200
    refused = await get(application(), "/v1/models?name=a%00b", headers)
    assert refused["status"] == 400
    assert b"NUL" in refused["body"]
    stranger = [(b"host", b"evil.example"), *headers[1:]]
    assert (await get(application(), "/v1/models", stranger))["status"] == 400


async def test_plain_http_to_the_api_is_redirected_to_https_in_production(settings):
    settings.SECURE_SSL_REDIRECT = True
    app = ByPath(api=APIHandler(), pages=None)  # the middleware reads settings when built
    response = await get(app, "/v1/models?x=1")
    assert response["status"] == 301
    assert header(response, "Location") == "https://testserver/v1/models?x=1"

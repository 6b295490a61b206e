"""A browser socket's layers: its session read lazily from its cookie, its user left for the
consumer, no wrapper round the frames it sends, and no coroutine of their own kept while
the socket is open."""

import pytest
from channels.auth import UserLazyObject
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.utils.functional import empty

from config.sessions import SessionStore
from config.websocket_auth import BearerTokenOrSession, BrowserSession
from config.websocket_origin import SameOriginValidator

pytestmark = pytest.mark.django_db(transaction=True)


async def server_send(message):
    pass


def scope_with(*headers: tuple[bytes, bytes]) -> dict:
    return {"type": "websocket", "path": "/ws/threads/1/", "headers": list(headers)}


async def test_a_socket_reads_its_session_and_sends_through_the_servers_own_send(clear_cache):
    store = SessionStore()
    store["who"] = "member-7"
    await store.asave()
    seen = {}

    async def inner(scope, receive, send):
        seen["send"], seen["scope"] = send, scope

    cookie = f"theme=dark; {settings.SESSION_COOKIE_NAME}={store.session_key}".encode()
    await BrowserSession(inner)(scope_with((b"cookie", cookie)), None, server_send)
    # channels' SessionMiddleware hands the app a wrapper that looks at the session for
    # every frame; here each frame goes straight to the server.
    assert seen["send"] is server_send
    scope = seen["scope"]
    assert scope["cookies"] == {"theme": "dark", settings.SESSION_COOKIE_NAME: store.session_key}
    session = scope["session"]
    assert isinstance(session, SessionBase)
    assert session.session_key == store.session_key
    assert await session.aget("who") == "member-7"
    # the user is left for the consumer, which reads it with the thread
    assert isinstance(scope["user"], UserLazyObject)
    assert scope["user"]._wrapped is empty


async def test_a_socket_without_a_cookie_has_an_empty_session(clear_cache):
    seen = {}

    async def inner(scope, receive, send):
        seen["scope"] = scope

    await BrowserSession(inner)(scope_with(), None, server_send)
    assert seen["scope"]["cookies"] == {}
    assert seen["scope"]["session"].session_key is None
    assert await seen["scope"]["session"].aget("who") is None


async def test_a_browser_socket_runs_as_the_consumers_own_coroutine_with_no_layer_kept():
    """Every layer of a browser's socket hands it on and is done: what runs while the socket
    is open is the inner application's coroutine itself, so no layer's coroutine or scope
    copy stays in memory for each open socket."""
    seen = {}

    async def consumer(scope, receive, send):
        seen["scope"] = scope

    async def token_app(scope, receive, send):
        raise AssertionError("a browser's socket is not a program's")

    app = BearerTokenOrSession(
        token_app=token_app, session_app=SameOriginValidator(BrowserSession(consumer))
    )
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    running = app(scope_with(*headers), None, server_send)
    assert running.cr_code is consumer.__code__
    await running
    assert seen["scope"]["headers"] == headers
    assert isinstance(seen["scope"]["user"], UserLazyObject)

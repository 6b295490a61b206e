"""A socket's session: read lazily from its cookie, and no wrapper round the frames it sends."""

import pytest
from channels.sessions import CookieMiddleware
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase

from config.sessions import SessionStore
from config.websocket_auth import SocketSession

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_socket_reads_its_session_and_sends_through_the_servers_own_send(clear_cache):
    store = SessionStore()
    store["who"] = "member-7"
    await store.asave()
    seen = {}

    async def inner(scope, receive, send):
        seen["send"], seen["session"] = send, scope["session"]

    async def server_send(message):
        pass

    cookie = f"{settings.SESSION_COOKIE_NAME}={store.session_key}".encode()
    app = CookieMiddleware(SocketSession(inner))
    await app({"type": "websocket", "headers": [(b"cookie", cookie)]}, None, server_send)
    # channels' SessionMiddleware hands the app a wrapper that looks at the session for
    # every frame; here each frame goes straight to the server.
    assert seen["send"] is server_send
    session = seen["session"]
    assert isinstance(session._wrapped, SessionBase)
    assert session.session_key == store.session_key
    assert await session.aget("who") == "member-7"


async def test_a_socket_without_a_cookie_has_an_empty_session(clear_cache):
    seen = {}

    async def inner(scope, receive, send):
        seen["session"] = scope["session"]

    async def server_send(message):
        pass

    await CookieMiddleware(SocketSession(inner))(
        {"type": "websocket", "headers": []}, None, server_send
    )
    assert seen["session"].session_key is None
    assert await seen["session"].aget("who") is None
